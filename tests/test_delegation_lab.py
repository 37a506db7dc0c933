"""The reconciler needs no domain administrator: bound as a service account whose rights are
delegated on its managed OUs alone (create, change, move and delete objects and reset passwords
there; read the rest, as every authenticated account may), it does its whole job, and it cannot
touch anything outside: an account in CN=Users, the membership of Domain Admins.

The delegation is written with Samba's own tool (`samba-tool dsacl set`), as one inheritable
ACE on the managed root OU; the README gives the same rights for a Windows AD with `dsacls`."""
from __future__ import annotations

import os
import secrets
import ssl
import subprocess

import pytest
from ldap3 import MODIFY_ADD, NONE, Connection, Server, Tls
from ldap3.protocol.formatters.formatters import format_sid

from conftest import BASE_DN, LAB_DIR, person

pytestmark = pytest.mark.lab

# Create and delete children, list, read and write properties, delete subtrees, list objects,
# extended rights (Reset Password among them), delete, read the security descriptor; inherited
# by everything below.  Not WD or WO: the account can never rewrite who may do what.
DELEGATED = "CCDCLCSWRPWPDTLOCRSDRC"  # not for people: SDDL rights


def _connect(user: str, password: str) -> Connection:
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(LAB_DIR / "ca.pem"))
    return Connection(Server("127.0.0.1", port=636, use_ssl=True, tls=tls, get_info=NONE), user=user,
                      password=password, auto_bind=True)


@pytest.fixture
def delegated(sandbox, tmp_path):
    """A service account in CN=Users with rights on the sandbox's root OU only."""
    name = f"svc-{sandbox.suffix}"
    dn = f"CN={name},CN=Users,{BASE_DN}"
    password = "Svc-" + secrets.token_urlsafe(18)
    admin = sandbox.conn
    assert admin.add(sandbox.root, "organizationalUnit"), admin.result
    assert admin.add(dn, ["top", "person", "organizationalPerson", "user"],
                     {"sAMAccountName": name, "userPrincipalName": f"{name}@salud.lab",
                      "unicodePwd": f'"{password}"'.encode("utf-16-le"), "userAccountControl": 512}), admin.result
    admin.search(dn, "(objectClass=*)", attributes=["objectSid"])
    raw = admin.response[0]["raw_attributes"]["objectSid"][0]
    sid = format_sid(raw)
    proc = subprocess.run(["samba-tool", "dsacl", "set", "-H", str(LAB_DIR / "samba" / "private" / "sam.ldb"),
                           f"--objectdn={sandbox.root}", f"--sddl=(A;CI;{DELEGATED};;;{sid})"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    secret = tmp_path / "svc.pw"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, password.encode())
    os.close(fd)
    sandbox.write_inventory(bind_dn=f"{name}@SALUD.LAB", bind_password={"file": str(secret)})
    yield sandbox, name, password
    admin.delete(dn)


def test_a_delegated_account_does_the_whole_job_under_its_ous(delegated):
    sandbox, _name, _password = delegated
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"), person("SSM-000002", given_names="Ana", curp=None))
    out = sandbox.apply()  # OUs, groups, accounts with their initial passwords
    assert sandbox.account("jnunezo") is not None and sandbox.account("anunezo") is not None
    sandbox.repo.find("SSM-000001")["title"] = "Jefe de Urgencias"
    sandbox.repo.baja("SSM-000002")
    sandbox.apply()  # a modificación; a baja: disabled, groups removed, moved to the bajas OU
    assert sandbox.account("jnunezo")["title"] == "Jefe de Urgencias"
    gone = sandbox.account("anunezo")
    assert int(gone["userAccountControl"]) & 2 and gone["dn"].endswith(sandbox.bajas_ou)
    sandbox.assert_converged()
    assert "Traceback" not in out


def test_a_delegated_account_cannot_touch_anything_outside(delegated):
    sandbox, name, password = delegated
    conn = _connect(f"{name}@SALUD.LAB", password)
    try:
        outsider = f"CN=Intruso {sandbox.suffix},CN=Users,{BASE_DN}"
        assert not conn.add(outsider, ["top", "person", "organizationalPerson", "user"],
                            {"sAMAccountName": f"intruso.{sandbox.suffix}"})
        assert conn.result["description"] == "insufficientAccessRights"
        domain_admins = f"CN=Domain Admins,CN=Users,{BASE_DN}"
        assert not conn.modify(domain_admins, {"member": [(MODIFY_ADD, [f"CN={name},CN=Users,{BASE_DN}"])]})
        assert conn.result["description"] == "insufficientAccessRights"
        assert not conn.modify(f"CN={name},CN=Users,{BASE_DN}", {"description": [(MODIFY_ADD, ["yo mismo"])]})
    finally:
        conn.unbind()
