"""The reconciler needs no domain administrator: bound as a service account whose rights are
delegated on its managed OUs alone (create, change, move and delete objects and reset passwords
there; read the rest, as every authenticated account may), it does its whole job, and it cannot
touch anything outside: an account in CN=Users, the membership of Domain Admins.

The delegation is written with Samba's own tool (`samba-tool dsacl set`), as inheritable ACEs
on the managed root OU; the README gives the same ACEs for a Windows AD."""
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

# The delegation, as ACEs inherited by everything below the managed root OU (SDDL; "{sid}" is the
# service account's).  Create and delete only users, groups, computers and OUs; read and write
# properties, but never the ones that would hand over other accounts (shadow credentials,
# resource-based delegation, service principal names); the one extended right it uses, Reset
# Password, on users only; delete (a move is a delete and a create), list, read permissions.
# Never write permissions or owner, and as owner of what it creates it gets only read
# permissions (OWNER RIGHTS), so it can never rewrite who may do what.  No delete-subtree.
USER, GROUP, COMPUTER, OU = ("bf967aba-0de6-11d0-a285-00aa003049e2", "bf967a9c-0de6-11d0-a285-00aa003049e2",
                             "bf967a86-0de6-11d0-a285-00aa003049e2", "bf967aa5-0de6-11d0-a285-00aa003049e2")
RESET_PASSWORD = "00299570-246d-11d0-a768-00aa006e0529"
KEY_CREDENTIAL_LINK = "5b47d60f-6090-40b2-9f37-2a4de88f3063"
ACT_ON_BEHALF = "3f78c3e5-f79a-46bd-a0b8-9d18116ddc79"
SERVICE_PRINCIPAL_NAME = "f3a64788-5306-11d1-a9c5-0000f80367c1"
DELEGATION = ("".join(f"(OD;CI;WP;{attribute};;{{sid}})" for attribute in
                      (KEY_CREDENTIAL_LINK, ACT_ON_BEHALF, SERVICE_PRINCIPAL_NAME))
              + "".join(f"(OA;CI;CCDC;{kind};;{{sid}})" for kind in (USER, GROUP, COMPUTER, OU))
              + f"(OA;CI;CR;{RESET_PASSWORD};{USER};{{sid}})"
              + "(A;CI;LCRPWPLOSDRC;;;{sid})(A;CI;RC;;;S-1-3-4)")  # not for people: SDDL


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
                           f"--objectdn={sandbox.root}", f"--sddl={DELEGATION.format(sid=sid)}"],
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
    sandbox.repo.find("SSM-000001")["password_resets"] = [{"folio": "SSM/STI/2026/09001", "date": "2026-11-25"}]
    sandbox.repo.baja("SSM-000002")
    sandbox.apply()  # a modificación; a baja: disabled, groups removed, moved to the bajas OU
    assert sandbox.account("jnunezo")["title"] == "Jefe de Urgencias"
    assert int(sandbox.account("jnunezo")["pwdLastSet"]) == 0  # reset: must change it at next logon
    gone = sandbox.account("anunezo")
    assert int(gone["userAccountControl"]) & 2 and gone["dn"].endswith(sandbox.bajas_ou)
    sandbox.assert_converged()
    assert "Traceback" not in out


def test_a_delegated_account_cannot_touch_anything_outside(delegated):
    sandbox, name, password = delegated
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
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
        # No delete-subtree: the managed tree (the bajas OU, the evidence, with it) cannot go at once.
        assert not conn.delete(sandbox.root, controls=[("1.2.840.113556.1.4.805", True, None)])
    finally:
        conn.unbind()
