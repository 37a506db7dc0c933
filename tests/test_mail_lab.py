"""The lab's mail server works end to end against the lab AD: the ground the mail provider
(issue 4) builds on.  An AD account with a registry entry and a recipient-map entry receives a
message over SMTP and reads it over IMAP, logging in with its AD password."""
from __future__ import annotations

import imaplib
import re
import secrets
import ssl
import smtplib
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from conftest import BASE_DN, LAB_DIR, TREE_DELETE

pytestmark = pytest.mark.lab  # every test: the lab's Dovecot and Postfix (and its AD for logins)

MAIL_DIR = LAB_DIR / "mail"


def lab_tls() -> ssl.SSLContext:
    """Trusting the lab's CA (read when asked: the suite provisions the lab, and its CA, anew)."""
    return ssl.create_default_context(cafile=str(LAB_DIR / "ca.pem"))


def _quoted_password(password: str) -> bytes:
    return f'"{password}"'.encode("utf-16-le")


@pytest.fixture
def mailbox(lab_conn):
    """An enabled AD account whose password needs no change, registered as a mailbox."""
    ou = f"OU=t-mail-{secrets.token_hex(4)},{BASE_DN}"
    sam = f"mt{secrets.token_hex(3)}"
    address = f"{sam}@salud.lab"
    password = f"Lab-{secrets.token_hex(8)}-Aa1"
    assert lab_conn.add(ou, "organizationalUnit")
    dn = f"CN=Peña O'Brien\\, Iñaki,{ou}"
    assert lab_conn.add(dn, ["top", "person", "organizationalPerson", "user"], {
        "sAMAccountName": sam, "userPrincipalName": address, "mail": address, "givenName": "Iñaki",
        "sn": "Peña O'Brien",
        "unicodePwd": _quoted_password(password), "userAccountControl": 0x200}), lab_conn.result
    registry, recipients = MAIL_DIR / "registro" / "users", MAIL_DIR / "registro" / "recipients"
    saved = registry.read_text(), recipients.read_text()
    with registry.open("a") as f:
        f.write(f"{address}:::::::userdb_quota_rule=*:storage=10M\n")
    with recipients.open("a") as f:
        f.write(f"{address} OK\n")
    subprocess.run(["postfix", "reload"], check=True, capture_output=True)
    time.sleep(1.1)  # Dovecot re-reads a passwd-file at most once a second
    yield address, password
    registry.write_text(saved[0])
    recipients.write_text(saved[1])
    subprocess.run(["postfix", "reload"], check=True, capture_output=True)
    lab_conn.delete(ou, controls=[TREE_DELETE])


def _send(to: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = "mesa.servicios@salud.lab"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Bienvenido al correo institucional. Ñandú, pingüino, acción.")
    with smtplib.SMTP("127.0.0.1", 25, timeout=10) as smtp:
        smtp.send_message(msg)


def _wait_for_subject(imap: imaplib.IMAP4, subject: str) -> bool:
    for _ in range(40):
        imap.select("INBOX")
        _, data = imap.search(None, "ALL")
        for num in data[0].split():
            _, parts = imap.fetch(num, "(BODY[HEADER.FIELDS (SUBJECT)])")
            if subject.encode() in parts[0][1]:
                return True
        time.sleep(0.25)
    return False


def test_a_registered_ad_account_receives_mail_over_smtp_and_reads_it_over_imap(mailbox):
    address, password = mailbox
    _send(address, "Alta de correo SSM-STI-2026-0042")
    imap = imaplib.IMAP4("127.0.0.1", 143)
    imap.login(address, password)
    try:
        assert _wait_for_subject(imap, "Alta de correo SSM-STI-2026-0042")
        _, folders = imap.list()
        names = b" ".join(folders)
        assert all(name in names for name in (b"Drafts", b"Sent", b"Trash", b"Junk"))
        typ, (roots, quotas) = imap.getquotaroot("INBOX")
        assert typ == "OK" and re.search(rb"\(STORAGE \d+ 10240\)", b" ".join(q for q in quotas if q))  # 10M in KiB
    finally:
        imap.logout()


def test_imap_checks_the_password_against_ad(mailbox):
    address, _ = mailbox
    imap = imaplib.IMAP4("127.0.0.1", 143)
    with pytest.raises(imaplib.IMAP4.error):
        imap.login(address, "not-the-password")


def test_smtp_refuses_an_address_that_is_not_declared(mailbox):
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        _send("nadie.declarado@salud.lab", "no debe llegar")


def test_the_doveadm_api_is_served_over_tls_with_a_certificate_of_the_labs_ca():
    """Anything else's certificate check fails: the API's key never crosses to a server that
    cannot prove it is the mail server."""
    import socket

    with socket.create_connection(("127.0.0.1", 8080), timeout=3) as raw, \
            lab_tls().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", 8080), timeout=3) as raw:
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


def test_the_doveadm_api_answers_with_its_key_only():
    import base64
    import json
    import urllib.error
    import urllib.request

    key = (MAIL_DIR / "doveadm.key").read_text().strip()
    body = json.dumps([["mailboxList", {"user": "nadie@salud.lab"}, "tag1"]]).encode()

    def call(auth: str) -> int | None:
        request = urllib.request.Request("https://127.0.0.1:8080/doveadm/v1", data=body, method="POST",
                                         headers={"Authorization": auth, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=3, context=lab_tls()) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except TimeoutError:
            return None  # Dovecot holds a failed authentication back (a brute-force penalty)

    assert call("X-Dovecot-API " + base64.b64encode(key.encode()).decode()) == 200
    assert call("X-Dovecot-API " + base64.b64encode(b"wrong").decode()) in (401, None)
    assert Path(MAIL_DIR / "doveadm.key").stat().st_mode & 0o077 == 0
