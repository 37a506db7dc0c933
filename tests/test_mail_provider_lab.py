"""Mailboxes on the lab's real Dovecot and Postfix, with logins against the lab's real AD:
altas that receive mail over SMTP and are read over IMAP, bajas that refuse logins and keep
the mailbox, adoption of a hand-made mailbox, address changes, shared mailboxes, password
resets applied once, and purges only after the retention period."""
from __future__ import annotations

import csv
import imaplib
import json
import re
import secrets
import smtplib
import subprocess
import time
from email.header import decode_header, make_header
from pathlib import Path

import pytest
import yaml
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

from conftest import LAB_DIR, person
from test_mail_lab import _send as send

pytestmark = pytest.mark.lab  # every test: the lab's Dovecot and Postfix, and a sandbox in its AD

MAIL_DIR = LAB_DIR / "mail"
REGISTRO = MAIL_DIR / "registro"  # the registry's directory on the mail host, rc-correo's (ci/lab/mail-up)
MAIL_FILES = ("users", "recipients", "aliases", "denied")


class MailBed:
    """A sandbox (private OUs in the lab AD) plus the lab's mail server as a second target."""

    def __init__(self, sandbox, retention_days: int = 365):
        self.sandbox = sandbox
        self.tag = secrets.token_hex(3)
        self.set_retention(retention_days)
        self.clear()

    @staticmethod
    def clear() -> None:
        """The tests own the lab's registry and maps while they run, and leave them empty."""
        for name in MAIL_FILES:
            (REGISTRO / name).write_text("")
        (REGISTRO / "users.kick-pending").unlink(missing_ok=True)
        subprocess.run(["postfix", "reload"], check=True, capture_output=True)

    def set_retention(self, days: int) -> None:
        inventory = yaml.safe_load(self.sandbox.inventory.read_text())
        inventory["targets"]["mail-test"] = {
            "kind": "mail", "domains": ["salud.lab"],
            "doveadm": {"url": "https://127.0.0.1:8080/doveadm/v1", "ca_file": str(LAB_DIR / "ca.pem"),
                        "api_key": {"file": str(MAIL_DIR / "doveadm.key")}},
            # The mail host over SSH, as the lab's inventory reaches it (ci/lab/mailhost-up).
            "ssh": {"host": "192.168.251.2", "user": "rc-correo", "key": str(MAIL_DIR / "ssh" / "id_ed25519"),
                    "known_hosts": str(MAIL_DIR / "ssh" / "known_hosts"),
                    "read": {"user": "rc-correo-lectura", "key": str(MAIL_DIR / "ssh" / "lectura_ed25519")}},
            "reload": "sudo -n postfix reload",
            "registry": str(REGISTRO / "users"),
            "maps": {n: str(REGISTRO / n) for n in ("recipients", "aliases", "denied")},
            "mail_root": str(MAIL_DIR / "vmail"), "quota": {"default": "50M", "max": "1G"},
            "baja": {"new_mail": "bounce", "retention_days": days},
            "audit_dir": str(self.sandbox.audit_dir), "credentials_dir": str(self.sandbox.credentials_dir),
        }
        self.sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))

    def address(self, name: str) -> str:
        return f"{name}.{self.tag}@salud.lab"

    def registry(self) -> list[str]:
        return [line for line in (REGISTRO / "users").read_text().splitlines() if line]

    def passwords(self) -> list[dict]:
        rows = []
        for path in sorted(self.sandbox.credentials_dir.glob("*.csv")):
            with path.open(encoding="utf-8") as f:
                rows += list(csv.DictReader(f))
        return rows

    def first_logon(self, sam: str) -> str:
        """What the person does at first logon: change the password they were given (an LDAP
        password change: the old one deleted, the new one added).  Returns the new one."""
        given = [r["password"] for r in self.passwords() if r["account"] == sam][-1]
        new = f"Nueva-{secrets.token_hex(6)}-A1"  # IMAP LOGIN takes ASCII only
        dn = self.sandbox.account(sam)["dn"]
        ok = self.sandbox.conn.modify(dn, {"unicodePwd": [(MODIFY_DELETE, [f'"{given}"'.encode("utf-16-le")]),
                                                          (MODIFY_ADD, [f'"{new}"'.encode("utf-16-le")])]})
        assert ok, self.sandbox.conn.result
        return new


@pytest.fixture
def bed(sandbox):
    yield MailBed(sandbox)
    MailBed.clear()


def login(address: str, password: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", 143)
    imap.login(address, password)
    return imap


def subjects(imap: imaplib.IMAP4, folder: str = "INBOX", want: int = 1) -> list[str]:
    for _ in range(40):
        typ, _ = imap.select(f'"{folder}"')
        assert typ == "OK", folder
        _, data = imap.search(None, "ALL")
        found = []
        for num in data[0].split():
            _, parts = imap.fetch(num, "(BODY[HEADER.FIELDS (SUBJECT)])")
            raw = parts[0][1].decode().strip().removeprefix("Subject: ")
            found.append(str(make_header(decode_header(raw))))  # Spanish subjects arrive MIME-encoded
        if len(found) >= want:
            return found
        time.sleep(0.25)
    return found


def with_mailbox(key: str, address: str, mailbox: dict | None = None, **fields) -> dict:
    return person(key, **{"curp": None, "entitlements": ["expediente_electronico"],
                          "mailbox": {"address": address, **(mailbox or {})}, **fields})


def changes_in_trail(bed: MailBed, target: str, kind: str) -> list[dict]:
    path = bed.sandbox.audit_dir / f"{target}.audit.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [r for r in records if r["kind"] == "change" and r["object_kind"] == kind]


def changes_of(plan: dict, target: str) -> list[dict]:
    return [c for c in plan["changes"] if c["target"] == target]


def test_an_alta_receives_mail_and_the_person_reads_it_over_imap_with_the_declared_quota(bed):
    address, alias = bed.address("jnunezo"), bed.address("urgencias")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address, {"aliases": [alias], "quota": "20M"}))
    plan = bed.sandbox.plan_json()
    kinds = [(c["target"], c["kind"], c["movement"]) for c in plan["changes"]]
    assert kinds.index(("ad-test", "account", "alta")) < kinds.index(("mail-test", "mailbox", "alta"))
    bed.sandbox.apply()
    account = bed.sandbox.account("jnunezo")
    assert account["mail"] == address
    assert sorted(account["proxyAddresses"]) == [f"SMTP:{address}", f"smtp:{alias}"]
    [line] = bed.registry()
    assert line.startswith(f"{address}::::reconciler owner=SSM-000001 ") and line.endswith("storage=20M")

    password = bed.first_logon("jnunezo")
    send(address, "Alta SSM-000001")
    send(alias, "Por el alias")
    imap = login(address, password)
    try:
        assert sorted(subjects(imap, want=2)) == ["Alta SSM-000001", "Por el alias"]
        _, folders = imap.list()
        assert all(name in b" ".join(folders) for name in (b"Drafts", b"Sent", b"Trash", b"Junk"))
        _, (_, quota) = imap.getquotaroot("INBOX")
        assert re.search(rb"\(STORAGE \d+ 20480\)", b" ".join(q for q in quota if q))  # 20M, in KiB
    finally:
        imap.logout()
    bed.sandbox.assert_converged()  # apply twice: nothing left, for mail as for AD


def test_smtp_refuses_an_address_nobody_declares(bed):
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", bed.address("jnunezo")))
    bed.sandbox.apply()
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(bed.address("nadie"), "no debe llegar")


def test_a_baja_refuses_the_login_at_once_keeps_the_mailbox_and_bounces_new_mail(bed):
    address = bed.address("jnunezo")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    bed.sandbox.apply()
    password = bed.first_logon("jnunezo")
    send(address, "Antes de la baja")
    imap = login(address, password)
    assert subjects(imap) == ["Antes de la baja"]
    imap.logout()

    bed.sandbox.repo.baja("SSM-000001")
    plan = bed.sandbox.plan_json()
    [mail_change] = changes_of(plan, "mail-test")
    assert mail_change["movement"] == "baja" and mail_change["kind"] == "mailbox"
    out = bed.sandbox.apply()
    assert "0 failed" in out
    # Access is revoked before the account is disabled: the mailbox closed in the first step.
    [closed] = changes_in_trail(bed, "mail-test", "mailbox")[-1:]
    [disabled] = changes_in_trail(bed, "ad-test", "account")[-1:]
    assert closed["movement"] == disabled["movement"] == "baja"
    assert (closed["step"], disabled["step"]) == (1, 2) and closed["done_at"] < disabled["done_at"]
    with pytest.raises(imaplib.IMAP4.error):
        login(address, password)
    [line] = bed.registry()
    assert " closed=" in line  # kept in the registry for the retention period
    home = Path(line.split(":")[5])
    assert (home / "Maildir" / "cur").is_dir() or (home / "Maildir" / "new").is_dir()
    assert any((home / "Maildir").rglob("*,S=*")), "the message is still on disk"
    assert f"{address}\n" in (REGISTRO / "denied").read_text()
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(address, "Después de la baja")  # the policy in the inventory: bounce
    bed.sandbox.assert_converged()


def test_a_mailbox_no_longer_declared_refuses_its_login_even_while_the_account_is_enabled(bed):
    address = bed.address("jnunezo")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    bed.sandbox.apply()
    password = bed.first_logon("jnunezo")
    login(address, password).logout()
    del bed.sandbox.repo.find("SSM-000001")["mailbox"]
    bed.sandbox.apply()
    account = bed.sandbox.account("jnunezo")
    assert int(account["userAccountControl"]) & 2 == 0  # the person stays, enabled in AD
    assert "mail" not in account
    # Even if the directory still pointed at the mailbox (a hand edit, a replica behind),
    # Dovecot's deny list refuses the login.
    assert bed.sandbox.conn.modify(account["dn"], {"mail": [(MODIFY_REPLACE, [address])]})
    with pytest.raises(imaplib.IMAP4.error):
        login(address, password)


def test_a_hand_made_mailbox_is_adopted_not_duplicated(bed):
    address = bed.address("jnunezo")
    home = MAIL_DIR / "vmail" / "salud.lab" / f"a-mano-{bed.tag}"
    (REGISTRO / "users").write_text(f"{address}:::::{home}::userdb_quota_rule=*:storage=5M\n")
    (REGISTRO / "recipients").write_text(f"{address} OK\n")
    subprocess.run(["postfix", "reload"], check=True, capture_output=True)
    time.sleep(1.1)
    send(address, "Correo de antes del reconciliador")

    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    plan = bed.sandbox.plan_json()
    [change] = changes_of(plan, "mail-test")[:1]
    assert change["movement"] == "adopcion" and change["reason"].startswith("adopted")
    assert {"name": "owner", "before": None, "after": "SSM-000001"} in change["attributes"]
    bed.sandbox.apply()
    [line] = bed.registry()
    assert line.startswith(f"{address}::::reconciler owner=SSM-000001") and f":{home}:" in line
    password = bed.first_logon("jnunezo")
    imap = login(address, password)
    assert subjects(imap) == ["Correo de antes del reconciliador"]  # the same mailbox, not a new one
    imap.logout()
    bed.sandbox.assert_converged()


def test_an_address_change_keeps_the_old_address_delivering_to_the_same_mailbox(bed):
    old, new = bed.address("jnunezo"), bed.address("jose.nunez")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", old))
    bed.sandbox.apply()
    password = bed.first_logon("jnunezo")
    bed.sandbox.repo.find("SSM-000001")["mailbox"]["address"] = new
    plan = bed.sandbox.plan_json()
    [change] = changes_of(plan, "mail-test")
    assert change["movement"] == "modificacion" and "old address stays as an alias" in change["reason"]
    bed.sandbox.apply()
    assert bed.sandbox.account("jnunezo")["mail"] == new
    send(old, "A la dirección anterior")
    send(new, "A la dirección nueva")
    imap = login(new, password)
    assert sorted(subjects(imap, want=2)) == ["A la dirección anterior", "A la dirección nueva"]
    imap.logout()
    bed.sandbox.assert_converged()


def test_shared_mailbox_access_is_granted_to_members_and_revoked_first(bed):
    repo = bed.sandbox.repo
    ana, luis, shared = bed.address("ana"), bed.address("luis"), bed.address("recepcion")
    repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", ana), with_mailbox(
        "SSM-000002", luis, given_names="Luis Ángel", first_surname="Yáñez", second_surname="Zúñiga"))
    repo.shared = {"HG-CUERNAVACA": [{
        "address": shared, "name": "Recepción", "members": ["SSM-000001"],
        "solicitud": {"folio": "SSM/STI/2026/00412", "date": "2026-10-14", "justification": "Recepción",
                      "requested_by": "Dirección del hospital"}}]}
    bed.sandbox.apply()
    pw_ana, pw_luis = bed.first_logon("jnunezo"), bed.first_logon("lyanezz")
    send(shared, "Cita en recepción")
    imap = login(ana, pw_ana)
    assert subjects(imap, f"shared/{shared}/INBOX") == ["Cita en recepción"]
    imap.logout()
    imap = login(luis, pw_luis)
    assert imap.select(f'"shared/{shared}/INBOX"')[0] == "NO"
    imap.logout()

    repo.shared["HG-CUERNAVACA"][0]["members"] = ["SSM-000002"]
    plan = bed.sandbox.plan_json()
    [change] = changes_of(plan, "mail-test")
    assert {"name": "members", "before": [ana], "after": [luis]} in change["attributes"]
    bed.sandbox.apply()
    imap = login(ana, pw_ana)
    assert imap.select(f'"shared/{shared}/INBOX"')[0] == "NO"
    imap.logout()
    imap = login(luis, pw_luis)
    assert subjects(imap, f"shared/{shared}/INBOX") == ["Cita en recepción"]
    imap.logout()
    bed.sandbox.assert_converged()


def test_a_password_reset_is_applied_exactly_once(bed):
    address = bed.address("jnunezo")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    bed.sandbox.apply()
    old = bed.first_logon("jnunezo")
    bed.sandbox.repo.find("SSM-000001")["password_resets"] = [
        {"folio": "SESVER/STI/2026/0931", "date": "2026-11-21", "requested_by": "La persona, en ventanilla"}]
    plan = bed.sandbox.plan_json()
    [reset] = [c for c in plan["changes"] if c["kind"] == "password-reset"]
    assert reset["folio"] == "SESVER/STI/2026/0931"
    out = bed.sandbox.apply()
    [row] = [r for r in bed.passwords() if r["folio"] == "SESVER/STI/2026/0931"]
    assert row["password"] not in out
    assert str(bed.sandbox.account("jnunezo")["pwdLastSet"]) in ("0", "1601-01-01 00:00:00+00:00")  # change at next logon
    with pytest.raises(imaplib.IMAP4.error):
        login(address, old)
    # The request stays in the YAML; later runs never reset the password again.
    bed.sandbox.assert_converged()
    before = len(bed.passwords())
    bed.sandbox.apply()
    assert len(bed.passwords()) == before
    audit = (bed.sandbox.audit_dir / "ad-test.audit.jsonl").read_text()
    assert row["password"] not in audit


def test_a_purge_waits_for_the_retention_period_then_deletes_the_mailbox(bed):
    address = bed.address("jnunezo")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    bed.sandbox.apply()
    bed.sandbox.repo.baja("SSM-000001")
    bed.sandbox.apply()
    [line] = bed.registry()
    home = Path(line.split(":")[5])
    assert home.is_dir()
    bed.sandbox.repo.find("SSM-000001")["mailbox"]["purge"] = {"folio": "SSM/STI/2027/00012", "date": "2027-11-21"}
    plan = bed.sandbox.plan_json()
    [conflict] = plan["conflicts"]
    assert "before the end of its retention" in conflict["message"]
    assert home.is_dir()

    bed.set_retention(0)
    plan = bed.sandbox.plan_json()
    [purge] = changes_of(plan, "mail-test")
    assert purge["movement"] == "baja" and purge["reason"].startswith("purge")
    bed.sandbox.apply()
    assert bed.registry() == [] and not home.exists()
    bed.sandbox.assert_converged()


def test_an_unreachable_mail_server_or_a_missing_key_is_a_clear_error(bed):
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", bed.address("jnunezo")))
    inventory = yaml.safe_load(bed.sandbox.inventory.read_text())
    mail = inventory["targets"]["mail-test"]
    mail["doveadm"]["url"] = "http://127.0.0.1:1/doveadm/v1"
    bed.sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    code, out, err = bed.sandbox.cli("plan")
    assert code == 1 and "Traceback" not in out + err
    assert "cannot reach the doveadm API http://127.0.0.1:1/doveadm/v1" in err
    mail["doveadm"]["api_key"] = {"file": "/nonexistent/doveadm.key"}
    bed.sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    code, out, err = bed.sandbox.cli("plan")
    assert code == 1 and "cannot read the secret from file /nonexistent/doveadm.key" in err


def test_sessions_a_closing_could_not_end_are_ended_by_the_next_run(bed, monkeypatch):
    """doveadm fails to kick when a mailbox is closed: the person's open IMAP session must not
    outlive the baja.  What is owed is kept next to the registry; the next plan shows it,
    approved as the end of the applied closing, and the next apply ends the session."""
    from reconciler.providers.mail.doveadm import Doveadm, Unanswered

    address = bed.address("jnunezo")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    bed.sandbox.apply()
    imap = login(address, bed.first_logon("jnunezo"))

    real = Doveadm.run

    def kick_fails(self, commands):
        if any(c.name == "kick" for c in commands):
            raise Unanswered("cannot reach the doveadm API: connection refused", {})
        return real(self, commands)
    monkeypatch.setattr(Doveadm, "run", kick_fails)
    bed.sandbox.repo.baja("SSM-000001")
    code, out, _ = bed.sandbox.cli("apply")
    assert code == 1 and "connection refused" in out
    assert (REGISTRO / "users.kick-pending").read_text() == f"{address}\n"
    assert imap.noop()[0] == "OK"  # the session is still open
    monkeypatch.undo()

    [owed] = changes_of(bed.sandbox.plan_json(), "mail-test")
    assert (owed["movement"], owed["kind"], owed["key"]) == ("baja", "mail-sessions", address)
    assert owed["approval"]["approved"]
    bed.sandbox.apply()
    with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError)):
        for _ in range(20):  # Dovecot ends it at once; the client learns on its next command
            imap.noop()
            time.sleep(0.1)
    assert (REGISTRO / "users.kick-pending").read_text() == ""
    bed.sandbox.assert_converged()


def test_with_the_directory_out_of_reach_a_baja_still_closes_the_mailbox_and_an_alta_waits(bed):
    """Issue 13 item 3 against the real servers: the DC cannot be reached; the mailbox of a
    person's baja is closed anyway (access removed wherever it can be), a new person's mailbox
    waits for their account, the run says which target was missing, and once the DC is back
    the next run converges."""
    import yaml

    ana, luis = bed.address("ana"), bed.address("luis")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", ana))
    bed.sandbox.apply()
    bed.sandbox.repo.baja("SSM-000001")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000002", luis, given_names="Luis"))
    inventory = yaml.safe_load(bed.sandbox.inventory.read_text())
    inventory["targets"]["ad-test"]["port"] = 1  # nothing listens there
    bed.sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    code, out, err = bed.sandbox.cli("apply")
    assert code == 1 and "Traceback" not in err
    assert "target ad-test out of reach, nothing applied to it" in out
    assert "target ad-test is out of reach; only changes that remove access" in out  # the alta that waited
    lines = {line.split(":")[0]: line for line in bed.registry()}
    assert " closed=" in lines[ana] and luis not in lines  # closed; not created
    assert f"{ana}\n" in (REGISTRO / "denied").read_text()

    inventory["targets"]["ad-test"]["port"] = 636
    bed.sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    bed.sandbox.apply()
    assert luis in {line.split(":")[0] for line in bed.registry()}
    bed.sandbox.assert_converged()


def test_with_dovecot_stopped_the_account_is_still_disabled_and_the_next_run_converges(bed):
    """The mail server's API is down when a baja is applied: the directory disables the
    account (what removes access goes ahead), the mail target is named as out of reach, and
    once Dovecot is back the next run closes the mailbox."""
    import os
    import signal

    from conftest import LAB_SCRIPTS
    from test_ad_lab import UAC_DISABLED

    address = bed.address("ana")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    bed.sandbox.apply()
    bed.sandbox.repo.baja("SSM-000001")
    master = int((MAIL_DIR / "run" / "master.pid").read_text())
    os.kill(master, signal.SIGTERM)
    try:
        for _ in range(40):
            try:
                os.kill(master, 0)
                time.sleep(0.25)
            except ProcessLookupError:
                break
        code, out, err = bed.sandbox.cli("apply")
        assert code == 1 and "Traceback" not in err
        assert "target mail-test out of reach, nothing applied to it" in out and "doveadm API" in out
        assert int(bed.sandbox.account("jnunezo")["userAccountControl"]) & UAC_DISABLED
    finally:
        subprocess.run([str(LAB_SCRIPTS / "mail-up")], check=True, capture_output=True)
    bed.sandbox.apply()
    [line] = bed.registry()
    assert " closed=" in line
    bed.sandbox.assert_converged()


# A CLI process that kills itself with SIGKILL when the mail apply is about to write the
# registry: the deny list is already written, the registry and the maps are not (apply.py,
# step 2), as a runner lost between the two writes leaves them.
KILLED_BEFORE_THE_REGISTRY = """
import os, signal, sys
from reconciler.providers.mail import host
registry = sys.argv.pop(1)
real = host.SshHost.write
def write(self, path, text):
    if path == registry:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, path, text)
host.SshHost.write = write
from reconciler.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_maps_a_killed_apply_left_half_written_are_not_called_drift_and_the_next_run_converges(bed):
    """Killed between the deny list and the registry: the deny list closes the address, the
    registry still has it open.  The next plan must not call the maps "edited outside the
    reconciler": they are what the stopped run began.  The next apply finishes it."""
    import signal
    import sys

    sandbox = bed.sandbox
    address = bed.address("jnunezo")
    sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    sandbox.apply()
    sandbox.repo.baja("SSM-000001")
    sandbox.repo.write()
    sandbox.repo.squash_merge()
    denied_before = (REGISTRO / "denied").read_text()
    proc = subprocess.run([sys.executable, "-c", KILLED_BEFORE_THE_REGISTRY, str(REGISTRO / "users"), "--no-color",
                           "--repo", str(sandbox.repo.root), "apply", "--inventory", str(sandbox.inventory),
                           "--auto-approve"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert address in (REGISTRO / "denied").read_text() and address not in denied_before  # closed at once
    plan = sandbox.plan_json()
    maps = [c for c in changes_of(plan, "mail-test") if c["kind"] == "mail-maps"]
    assert maps, plan  # the maps still differ from the registry
    assert not [c["key"] for c in plan["changes"] if c["drift"]], plan
    assert "stopped before its end" in maps[0]["reason"]
    sandbox.apply()
    sandbox.assert_converged()
    assert address in (REGISTRO / "denied").read_text()
