"""Sealed delivery against the lab's DC, opened with the standard tools: an alta's password is
sealed to the unit's recipients the moment it is made, stored in the repository as an envelope,
opened by `age -d` and by `reconciler credentials open`, and it logs in; a wrong key opens
nothing; no clear secret is left on disk, in Git, in the trail or in the output."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ldap3 import SIMPLE, Connection, Server, Tls

from conftest import LAB_DIR, key_of, person, public_key_of, run_cli
from reconciler.delivery.envelopes import envelopes, ref_name

pytestmark = pytest.mark.lab

FOLIO = "SSM/STI/2026/00101"
JOSE = ref_name("SSM-000001", FOLIO)


def _age_identity(path: Path) -> str:
    """A fresh age identity made by the standard age-keygen; returns its public key."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


def _bind_result(user: str, password: str) -> str:
    server = Server("127.0.0.1", port=636, use_ssl=True, tls=Tls(ca_certs_file=str(LAB_DIR / "ca.pem")))
    conn = Connection(server, user=user, password=password, authentication=SIMPLE)
    conn.bind()
    return str(conn.result.get("message"))


@pytest.fixture
def sealed(sandbox, tmp_path):
    """The sandbox with its secrets sealed: to a service desk (age key) for every unit, and to
    an approver's SSH key for HG-CUERNAVACA; plus a stranger's key that receives nothing."""
    desk = _age_identity(tmp_path / "desk.key")
    _age_identity(tmp_path / "stranger.key")
    sandbox.write_inventory(delivery={"mode": "sealed", "recipients": {
        "*": [{"name": "Mesa de servicio", "key": desk}],
        "HG-CUERNAVACA": [{"name": "Soporte HG Cuernavaca", "key": public_key_of("soporte")},
                          {"name": "Mesa de servicio", "key": desk}]}})
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", solicitud={
        "folio": FOLIO, "date": "2026-11-30", "justification": "Alta por contratación",
        "requested_by": "Dra. Ana Lucía Ordóñez"}))
    return sandbox, tmp_path


def _git(sandbox, *args: str, text: bool = True):
    return subprocess.run(["git", "-C", str(sandbox.repo.root), *args], capture_output=True, text=text, check=True).stdout


def test_an_altas_password_is_sealed_to_the_units_recipients_and_opens_with_age(sealed):
    sandbox, tmp = sealed
    out = sandbox.apply()
    assert "1 new secret sealed to its recipients" in out
    refs = _git(sandbox, "for-each-ref", "--format=%(refname)", "refs/reconciler/envelopes/").split()
    assert refs == [JOSE] and JOSE.startswith("refs/reconciler/envelopes/SSM-000001/")
    files = _git(sandbox, "ls-tree", "--name-only", refs[0]).split()
    assert files == ["ad-test.jnunezo.age", "carta.pdf", "envelope.json"]
    sealed_file = _git(sandbox, "show", f"{refs[0]}:ad-test.jnunezo.age", text=False)
    assert sealed_file.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    # The standard age command opens it, with either recipient's key.
    for identity in (tmp / "desk.key", key_of("soporte")):
        opened = subprocess.run(["age", "-d", "-i", str(identity)], input=sealed_file, capture_output=True)
        assert opened.returncode == 0, opened.stderr
        letter = opened.stdout.decode("utf-8")
        assert f"Folio: {FOLIO}" in letter and "José Ñúñez O'Brien (SSM-000001)" in letter
    password = next(line.split(": ", 1)[1] for line in letter.splitlines() if line.startswith("Initial secret: "))
    # The password inside is the account's: AD answers "must change password" (data 773), not
    # "wrong password" (data 52e).
    assert "data 773" in _bind_result("jnunezo@salud.lab", password)
    assert "data 52e" in _bind_result("jnunezo@salud.lab", password + "x")
    # A stranger's key opens nothing.
    refused = subprocess.run(["age", "-d", "-i", str(tmp / "stranger.key")], input=sealed_file, capture_output=True)
    assert refused.returncode != 0 and password.encode() not in refused.stdout
    _no_clear_secret_anywhere(sandbox, password, out)


def _no_clear_secret_anywhere(sandbox, password: str, out: str) -> None:
    """Not in the output, the runner's directories (trail, credentials, before-images), nor in
    any Git object of the repository (notes and refs included: every object, decompressed)."""
    assert password not in out
    for directory in (sandbox.audit_dir, sandbox.credentials_dir, sandbox.repo.root):
        for path in Path(directory).rglob("*"):
            if path.is_file() and ".git" not in path.parts:
                assert password.encode() not in path.read_bytes(), path
    objects = subprocess.run(["git", "-C", str(sandbox.repo.root), "cat-file", "--batch-all-objects", "--batch"],
                             capture_output=True, check=True).stdout
    assert objects and password.encode() not in objects
    assert not list(Path(sandbox.credentials_dir).glob("*.csv"))


def test_the_trail_says_who_received_an_envelope_and_never_what_it_holds(sealed):
    sandbox, _ = sealed
    sandbox.apply()
    records = [json.loads(line) for line in next(Path(sandbox.audit_dir).glob("*.jsonl")).read_text().splitlines()]
    [envelope] = [r for r in records if r["kind"] == "envelope"]
    assert envelope["key"] == "jnunezo" and envelope["folio"] == FOLIO and envelope["employee_key"] == "SSM-000001"
    assert envelope["recipients"] == ["Soporte HG Cuernavaca", "Mesa de servicio"]
    assert envelope["envelope"].startswith("refs/reconciler/envelopes/SSM-000001/")
    # The record names the very commit the envelope is (written before the ref pointed at it).
    assert _git(sandbox, "rev-parse", envelope["envelope"]).strip() == envelope["envelope_commit"]
    assert envelope["recipient_keys"][0].startswith("sha256:") and len(envelope["recipient_keys"]) == 2


def test_a_recipient_opens_the_folio_and_gets_the_carta(sealed):
    sandbox, tmp = sealed
    sandbox.apply()
    code, out, err = run_cli("--repo", str(sandbox.repo.root), "credentials", "open", FOLIO,
                             "--identity", str(tmp / "desk.key"), "--out", str(tmp / "cartas"))
    assert code == 0, err
    password = next(line.split(": ", 1)[1] for line in out.splitlines() if "Initial secret: " in line)
    assert "data 773" in _bind_result("jnunezo@salud.lab", password.strip())
    [carta] = list((tmp / "cartas").glob("*.pdf"))
    text = subprocess.run(["pdftotext", str(carta), "-"], capture_output=True, text=True, check=True).stdout
    assert "José Ñúñez O'Brien" in text and FOLIO in text and "jnunezo" in text and "SSM-000001" in text
    assert "jnunezo@salud.lab" in text  # the sign-in name
    assert password.strip() not in text  # the carta is kept; the secret never goes on it
    # A key the envelope was not sealed to: a clear refusal, nothing printed.
    code, out, err = run_cli("--repo", str(sandbox.repo.root), "credentials", "open", FOLIO,
                             "--identity", str(tmp / "stranger.key"))
    assert code == 1 and "opens no secret in the 1 envelope of folio" in err and password.strip() not in out


def test_a_unit_with_nobody_to_seal_to_stops_the_apply_before_anything_is_made(sandbox, tmp_path):
    sandbox.write_inventory(delivery={"mode": "sealed", "recipients": {
        "CS-JIUTEPEC": [{"name": "Soporte Jiutepec", "key": _age_identity(tmp_path / "k")}]}})
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    code, out, err = sandbox.cli("apply")
    assert code == 1 and "delivery: nobody to seal the secrets of" in err and "HG-CUERNAVACA" in err
    assert sandbox.account("jnunezo") is None


def test_an_inventory_without_a_delivery_block_applies_nothing(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    inventory = yaml.safe_load(sandbox.inventory.read_text())
    del inventory["delivery"]
    sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    code, out, err = sandbox.cli("apply")
    assert code == 1 and "the inventory has no delivery: block" in err
    assert sandbox.account("jnunezo") is None


# Runs the CLI in a process that kills itself with SIGKILL when the AD applier is about to
# create Ana's account: her secret is sealed and recorded, her account never made.
KILLED_BEFORE_ANA = """
import os, signal, sys
from reconciler.providers.ad import apply as ad_apply
real = ad_apply.ADApplier._do
def killed(self, o, what, *args, **kwargs):
    if str(what).startswith("creating CN=") and ", Ana," in str(what):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, o, what, *args, **kwargs)
ad_apply.ADApplier._do = killed
from reconciler.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _letter(sandbox, ref: str, file: str, identity: Path) -> str:
    sealed_file = _git(sandbox, "show", f"{ref}:{file}", text=False)
    return subprocess.run(["age", "-d", "-i", str(identity)], input=sealed_file, capture_output=True,
                          check=True).stdout.decode("utf-8")


def _secret(letter: str) -> str:
    return next(line.split(": ", 1)[1] for line in letter.splitlines() if line.startswith("Initial secret: "))


def test_a_killed_apply_keeps_the_envelopes_in_use_and_takes_back_the_secret_it_never_set(sealed):
    sandbox, tmp = sealed
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000002", given_names="Ana", curp=None))
    sandbox.repo.write()
    sandbox.repo.squash_merge()
    proc = subprocess.run([sys.executable, "-c", KILLED_BEFORE_ANA, "--no-color", "--repo", str(sandbox.repo.root),
                           "apply", "--inventory", str(sandbox.inventory), "--auto-approve"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert sandbox.account("jnunezo") is not None and sandbox.account("anunezo") is None
    jose, ana = JOSE, ref_name("SSM-000002", "SSM/STI/2026/00002")
    unset = _secret(_letter(sandbox, ana, "ad-test.anunezo.age", tmp / "desk.key"))
    jose_before = _git(sandbox, "rev-parse", jose)

    out = sandbox.apply()
    assert "secrets it sealed: 1 in use, kept in their envelopes; 1 never set, taken out of theirs" in out
    assert _git(sandbox, "rev-parse", jose) == jose_before  # José's envelope is the one his password is in
    assert "data 773" in _bind_result("jnunezo@salud.lab", _secret(_letter(sandbox, jose, "ad-test.jnunezo.age",
                                                                           tmp / "desk.key")))
    # Ana's account is made now, with a new secret in a new envelope; the one never set is gone.
    new = _secret(_letter(sandbox, ana, "ad-test.anunezo.age", tmp / "desk.key"))
    assert new != unset and "data 773" in _bind_result("anunezo@salud.lab", new)
    assert "data 52e" in _bind_result("anunezo@salud.lab", unset)
    records = [json.loads(line) for line in (sandbox.audit_dir / "ad-test.audit.jsonl").read_text().splitlines()]
    [removed] = [r for r in records if r["kind"] == "envelope-removed"]
    assert removed["key"] == "anunezo" and removed["reason"] == "never-used" and removed["envelope"] == ana
    sandbox.assert_converged()


def test_the_acknowledgement_closes_the_loop_and_the_envelope_goes(sealed):
    """The signed carta recorded by a pull request (acuse: with its scan's SHA-256): the next
    apply takes the envelope back, and the trail says so with the digest."""
    sandbox, _ = sealed
    sandbox.apply()
    month = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m")
    code, out, err = sandbox.cli("report", "--month", month)
    assert code == 0 and "1 delivery without acknowledgement (acuse)" in out and FOLIO in out, err
    scan = "9f2c" * 16
    sandbox.repo.find("SSM-000001")["acuse"] = {"folio": FOLIO, "date": "2026-12-02", "sha256": scan}
    out = sandbox.apply()
    assert "ad-test: 1 envelope taken back (acknowledged)" in out
    # Emptied, not deleted (the pipeline pushes updates, never deletions), and without history:
    # the sealed secret is no longer reachable from it.
    assert envelopes(sandbox.repo.git) == [] and _git(sandbox, "ls-tree", "--name-only", JOSE).split() == ["envelope.json"]
    assert "ad-test.jnunezo.age" not in _git(sandbox, "rev-list", "--objects", JOSE)
    records = [json.loads(line) for line in (sandbox.audit_dir / "ad-test.audit.jsonl").read_text().splitlines()]
    [removed] = [r for r in records if r["kind"] == "envelope-removed"]
    assert removed["reason"] == "acknowledged" and removed["acuse_sha256"] == scan and removed["folio"] == FOLIO
    assert removed["envelope_file"] == "ad-test.jnunezo.age"
    code, out, err = sandbox.cli("report", "--month", month)
    assert code == 0 and "Every delivered envelope is acknowledged." in out, err
    sandbox.assert_converged()


def _sipp_registers(user: str, secret: str, tmp: Path) -> bool:
    """sipp (Debian's sip-tester), a SIP client of its own, registers `user` with `secret` at the
    lab's Kamailio: REGISTER, 401 challenge, REGISTER with digest credentials, 200."""
    fields = tmp / "sipp.csv"
    fields.write_text(f"SEQUENTIAL\nsalud.lab;{user};\n")
    done = subprocess.run(["sipp", "-sf", str(Path(__file__).parent / "sipp" / "register.xml"), "-inf", str(fields),
                           "-au", user, "-ap", secret, "-i", "127.0.0.1", "-p", "5097", "-m", "1", "-l", "1",
                           "-recv_timeout", "5s", "-timeout", "15s", "-timeout_error", "-nostdin", "127.0.0.1:5060"],
                          capture_output=True, text=True, cwd=tmp, timeout=60)
    fields.unlink()
    return done.returncode == 0


def test_an_extensions_sip_secret_is_sealed_with_the_account_and_registers(sealed):
    """The SIP secret of the person's extension goes into the same envelope (same request) as a
    file of its own; opened with age, it registers with the real Kamailio; the carta lists the
    extension and the equipment in the person's charge."""
    from sip import Phone
    from test_phone_lab import PhoneBed, extension

    sandbox, tmp = sealed
    bed = PhoneBed(sandbox)
    try:
        sandbox.repo.lines = [extension("4401", solicitud={"folio": FOLIO, "date": "2026-11-30",
                                                           "justification": "Extensión", "requested_by": "Dirección"})]
        sandbox.repo.equipment = [{"inventory_number": "SSM-INV-2025-00311", "serial": "5CD3149XQ2", "type": "laptop",
                                   "brand": "Lenovo", "model": "ThinkPad E14", "unit": "HG-CUERNAVACA", "hostname": "HGC-LT-0311",
                                   "person": "SSM-000001", "status": "en_uso"}]
        out = sandbox.apply()
        assert "phone-test: 1 new secret sealed" in out
        ref = JOSE
        assert _git(sandbox, "ls-tree", "--name-only", ref).split() == [
            "ad-test.jnunezo.age", "carta.pdf", "envelope.json", "phone-test.4401.age"]
        secret = _secret(_letter(sandbox, ref, "phone-test.4401.age", tmp / "desk.key"))
        assert _sipp_registers("4401", secret, tmp) and not _sipp_registers("4401", secret + "x", tmp)
        assert Phone("4401", secret).register() == 200 and Phone("4401", secret + "x").register() == 403
        carta = tmp / "carta.pdf"
        carta.write_bytes(_git(sandbox, "show", f"{ref}:carta.pdf", text=False))
        text = subprocess.run(["pdftotext", str(carta), "-"], capture_output=True, text=True, check=True).stdout
        assert "4401" in text and "SSM-INV-2025-00311" in text and "5CD3149XQ2" in text and secret not in text
        _no_clear_secret_anywhere(sandbox, secret, out)
    finally:
        PhoneBed.clear()


def test_the_sealed_password_is_changed_through_kpasswd_and_then_gets_a_kerberos_ticket(sealed):
    """What the person does with the envelope: change the initial password (kpasswd, as at the
    first logon), then log in (kinit) with the new one.  MIT Kerberos clients against the DC."""
    sandbox, tmp = sealed
    sandbox.apply()
    ref = JOSE
    initial = _secret(_letter(sandbox, ref, "ad-test.jnunezo.age", tmp / "desk.key"))
    conf = tmp / "krb5.conf"
    conf.write_text("[libdefaults]\n default_realm = SALUD.LAB\n dns_lookup_kdc = false\n rdns = false\n"
                    "[realms]\n SALUD.LAB = {\n  kdc = 127.0.0.1\n  kpasswd_server = 127.0.0.1\n }\n")
    env = {**os.environ, "KRB5_CONFIG": str(conf), "KRB5CCNAME": f"FILE:{tmp / 'cc'}"}
    chosen = "Nu3va-Clave-Ñandú-2026"
    changed = subprocess.run(["kpasswd", "jnunezo@SALUD.LAB"], input=f"{initial}\n{chosen}\n{chosen}\n",
                             capture_output=True, text=True, env=env, timeout=60)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    ticket = subprocess.run(["kinit", "jnunezo@SALUD.LAB"], input=f"{chosen}\n", capture_output=True, text=True,
                            env=env, timeout=60)
    assert ticket.returncode == 0, ticket.stdout + ticket.stderr
    listed = subprocess.run(["klist"], capture_output=True, text=True, env=env).stdout
    assert "jnunezo@SALUD.LAB" in listed and "krbtgt/SALUD.LAB@SALUD.LAB" in listed
    assert "data 773" not in _bind_result("jnunezo@salud.lab", chosen)  # changed: no longer "must change"


def test_the_requester_the_solicitud_names_opens_the_envelope_with_their_own_key(sandbox, tmp_path):
    """Per request: the unit head who asked for the alta (solicitud.deliver_to), declared with
    her SSH key for her unit in the approved inventory, receives the password too."""
    desk = _age_identity(tmp_path / "desk.key")
    sandbox.write_inventory(delivery={
        "recipients": {"*": [{"name": "Mesa de servicio", "key": desk}]},
        "requesters": {"ana.ordonez@salud.morelos.gob.mx": {"name": "Dra. Ana Lucía Ordóñez",
                                                            "key": public_key_of("ana-ordonez"),
                                                            "units": ["HG-CUERNAVACA"]}}})
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", solicitud={
        "folio": FOLIO, "date": "2026-11-30", "justification": "Alta por contratación",
        "requested_by": "Dra. Ana Lucía Ordóñez", "deliver_to": "ana.ordonez@salud.morelos.gob.mx"}))
    sandbox.apply()
    letter = _letter(sandbox, JOSE, "ad-test.jnunezo.age", key_of("ana-ordonez"))
    assert "data 773" in _bind_result("jnunezo@salud.lab", _secret(letter))
    records = [json.loads(line) for line in (sandbox.audit_dir / "ad-test.audit.jsonl").read_text().splitlines()]
    assert [r["recipients"] for r in records if r["kind"] == "envelope"] == [["Mesa de servicio",
                                                                             "Dra. Ana Lucía Ordóñez"]]
