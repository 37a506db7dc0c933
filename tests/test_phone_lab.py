"""Extensions on the lab's real Kamailio: a line's alta registers with the secret it was given
(200), its baja is refused (403) with the live registration gone, a person's baja releases
their extension in the same plan, a new holder gets a new secret, a secret changed by hand is
drift, and a subscriber made by hand at a declared number is adopted with its secret kept
(any other is left alone)."""
from __future__ import annotations

import csv
import json
import sqlite3
from contextlib import contextmanager
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import LAB_DIR, person
from sip import Phone, register

pytestmark = pytest.mark.lab  # every test: the lab's Kamailio, and a sandbox in its AD

# The lab's Kamailio keeps its subscribers on PostgreSQL (ci/lab/phone-up); the reconciler writes
# them as the database account `reconciler`.  Hand edits here go through the same account.
DATABASE = {"url": "postgresql://reconciler@127.0.0.1:5432/kamailio",
            "password": {"file": str(LAB_DIR / "phone" / "reconciler-db.pw")},
            "read": {"url": "postgresql://reconciler_lectura@127.0.0.1:5432/kamailio",  # plans
                     "password": {"file": str(LAB_DIR / "phone" / "reconciler_lectura-db.pw")}}}
RPC = "http://127.0.0.1:5071/RPC"
SQLITE_SCHEMA = "/usr/share/kamailio/db_sqlite/auth_db-create.sql"


@contextmanager
def registrar():
    """The lab registrar's database, as a person with the reconciler's rights edits it."""
    import psycopg

    with psycopg.connect(DATABASE["url"], password=(LAB_DIR / "phone" / "reconciler-db.pw").read_text().strip(),
                         autocommit=True) as db:
        yield db


class PhoneBed:
    def __init__(self, sandbox):
        self.sandbox = sandbox
        inventory = yaml.safe_load(sandbox.inventory.read_text())
        inventory["targets"]["phone-test"] = {
            "kind": "sip", "domain": "salud.lab", "database": DATABASE, "rpc_url": RPC,
            "audit_dir": str(sandbox.audit_dir), "credentials_dir": str(sandbox.credentials_dir)}
        sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
        self.clear()

    @staticmethod
    def clear() -> None:
        """The tests own the lab's registrar while they run, and leave it empty."""
        with registrar() as db:
            db.execute("DELETE FROM subscriber")
            db.execute("DROP TABLE IF EXISTS reconciler_line")
            db.execute("DROP TABLE IF EXISTS reconciler_unregister")

    def secret(self, number: str) -> str:
        rows = []
        for path in sorted(self.sandbox.credentials_dir.glob("phone-test-*.csv"), key=lambda p: p.stat().st_mtime_ns):
            with path.open(encoding="utf-8") as f:
                rows += [r for r in csv.DictReader(f) if r["account"] == number]
        return rows[-1]["password"]

    def secrets_issued(self) -> int:
        return sum(len(path.read_text().splitlines()) - 1
                   for path in self.sandbox.credentials_dir.glob("phone-test-*.csv"))


@pytest.fixture
def bed(sandbox):
    yield PhoneBed(sandbox)
    PhoneBed.clear()


def live(number: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "method": "ul.lookup", "params": ["location", number], "id": 1}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(RPC, data=body, method="POST"), timeout=5) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # "AOR not found": an RPC error comes as HTTP 500
        answer = json.loads(exc.read())
    return bool(answer.get("result", {}).get("Contacts"))


def extension(number: str, holder: str | None = "SSM-000001", **fields) -> dict:
    line = {"number": number, "kind": "extension", "unit": "HG-CUERNAVACA", "status": "activa",
            "solicitud": {"folio": f"SSM/STI/2026/{number}", "date": "2026-11-02", "justification": "Extensión",
                          "requested_by": "Dirección del hospital"}}
    if holder:
        line["person"] = holder
    line.update(fields)
    return line


def changes(plan: dict) -> list[dict]:
    return [c for c in plan["changes"] if c["target"] == "phone-test"]


def test_an_alta_registers_with_its_secret_and_a_baja_is_refused_with_its_registration_gone(bed):
    repo = bed.sandbox.repo
    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    repo.lines = [extension("4401")]
    out = bed.sandbox.apply()
    secret = bed.secret("4401")
    assert secret not in out
    phone = Phone("4401", secret)
    assert phone.register() == 200 and live("4401")
    assert register("4401", "not-the-secret") == 403
    bed.sandbox.assert_converged()

    repo.lines[0].update(status="baja", solicitud={"folio": "SSM/STI/2026/09999", "date": "2026-11-21",
                                                   "justification": "Cancelación", "requested_by": "Dirección"})
    [baja] = changes(bed.sandbox.plan_json())
    assert baja["movement"] == "baja" and baja["reason"] == "baja, folio SSM/STI/2026/09999"
    bed.sandbox.apply()
    assert not live("4401")  # dropped at once, not when it expires
    assert phone.register() == 403
    phone.close()
    bed.sandbox.assert_converged()
    trail = (bed.sandbox.audit_dir / "phone-test.audit.jsonl").read_text()
    assert secret not in trail


def test_a_persons_baja_releases_their_extension_in_the_same_plan(bed):
    repo = bed.sandbox.repo
    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    repo.lines = [extension("4401")]
    repo.equipment = [{"inventory_number": "SSM-INV-2025-00311", "serial": "5CD3149XQ2", "type": "printer",
                       "brand": "HP", "model": "LaserJet", "unit": "HG-CUERNAVACA", "person": "SSM-000001",
                       "status": "en_uso"}]
    bed.sandbox.apply()
    secret = bed.secret("4401")
    assert register("4401", secret) == 200
    repo.baja("SSM-000001")
    plan = bed.sandbox.plan_json()
    [line] = changes(plan)
    assert line["movement"] == "baja" and line["reason"] == "released: its holder SSM-000001 is a baja"
    assert any(c["kind"] == "account" and c["movement"] == "baja" for c in plan["changes"])
    assert any(w.startswith("collect printer SSM-INV-2025-00311") for w in plan["warnings"])
    bed.sandbox.apply()
    assert register("4401", secret) == 403 and not live("4401")
    bed.sandbox.assert_converged()


def test_a_new_holder_gets_a_new_secret_and_the_old_one_stops_working(bed):
    repo = bed.sandbox.repo
    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None),
             person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    repo.lines = [extension("4401")]
    bed.sandbox.apply()
    old = bed.secret("4401")
    phone = Phone("4401", old)
    assert phone.register() == 200
    repo.lines[0]["person"] = "SSM-000002"
    [change] = changes(bed.sandbox.plan_json())
    assert {"name": "holder", "before": "SSM-000001", "after": "SSM-000002"} in change["attributes"]
    bed.sandbox.apply()
    new = bed.secret("4401")
    assert new != old and not live("4401")
    assert phone.register() == 403
    phone.close()
    assert register("4401", new) == 200
    bed.sandbox.assert_converged()


def test_a_secret_changed_by_hand_is_drift_and_gets_a_new_one(bed):
    repo = bed.sandbox.repo
    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    repo.lines = [extension("4401")]
    bed.sandbox.apply()
    with registrar() as db:
        db.execute("UPDATE subscriber SET ha1 = %s WHERE username = '4401'", ("0" * 32,))  # someone's own secret
    [change] = changes(bed.sandbox.plan_json())
    assert change["drift"] and change["reason"].startswith("its secret was changed outside")
    issued = bed.secrets_issued()
    bed.sandbox.apply()
    assert bed.secrets_issued() == issued + 1
    assert register("4401", bed.secret("4401")) == 200
    bed.sandbox.assert_converged()


def test_a_subscriber_made_by_hand_is_adopted_with_its_secret_kept_and_others_left_alone(bed):
    with registrar() as db:
        db.execute("INSERT INTO subscriber (username, domain, ha1) VALUES ('4401', 'salud.lab', 'a-mano')")
        db.execute("INSERT INTO subscriber (username, domain, ha1) VALUES ('4499', 'salud.lab', 'ajena')")
    bed.sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    bed.sandbox.repo.lines = [extension("4401")]
    plan = bed.sandbox.plan_json()
    [adoption] = changes(plan)
    assert adoption["movement"] == "adopcion" and adoption["key"] == "4401" and plan["conflicts"] == []
    issued = bed.secrets_issued()
    bed.sandbox.apply()
    assert bed.secrets_issued() == issued  # no new secret
    with registrar() as db:
        assert dict(db.execute("SELECT username, ha1 FROM subscriber WHERE username IN ('4401', '4499')")) == {
            "4401": "a-mano", "4499": "ajena"}
    bed.sandbox.assert_converged()


def test_an_incremental_plan_falls_back_to_full_when_a_changed_person_holds_an_extension(bed):
    repo = bed.sandbox.repo
    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None),
             person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    repo.lines = [extension("4401")]
    bed.sandbox.apply()
    repo.find("SSM-000002")["title"] = "Jefa de Enfermeras"  # holds nothing: stays incremental
    code, out, _ = bed.sandbox.cli("plan", "--since-applied")
    assert code == 2 and "Scope: incremental" in out
    bed.sandbox.apply("--since-applied")
    repo.baja("SSM-000001")
    code, out, _ = bed.sandbox.cli("plan", "--since-applied")
    assert "Scope: full (a changed person holds an extension)" in out and "- phone line 4401" in out


def test_registrations_a_baja_could_not_drop_are_dropped_by_the_next_run(bed, monkeypatch):
    """Kamailio's RPC fails after the subscriber is deleted: the line's live registration
    must not outlive the baja.  The registrar's database keeps what is owed; the next plan
    shows it, approved as the end of the applied baja, and the next apply drops it."""
    from reconciler.errors import ReconcilerError
    from reconciler.providers.sip.provider import SipProvider

    repo = bed.sandbox.repo
    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    repo.lines = [extension("4401")]
    bed.sandbox.apply()
    phone = Phone("4401", bed.secret("4401"))
    assert phone.register() == 200 and live("4401")

    real = SipProvider._rpc

    def rpc_down(self, method, params):
        if method == "ul.rm":
            raise ReconcilerError(f"Kamailio's JSON-RPC {self.target.rpc_url}: connection refused")
        return real(self, method, params)
    monkeypatch.setattr(SipProvider, "_rpc", rpc_down)
    repo.lines[0].update(status="baja", solicitud={"folio": "SSM/STI/2026/09998", "date": "2026-11-21",
                                                   "justification": "Cancelación", "requested_by": "Dirección"})
    code, out, _ = bed.sandbox.cli("apply")
    assert code == 1 and "its live registrations were not dropped" in out and "the next run drops them" in out
    assert live("4401")  # still registered: the baja is not finished
    monkeypatch.undo()

    [pending] = changes(bed.sandbox.plan_json())
    assert (pending["movement"], pending["kind"], pending["key"]) == ("baja", "sip-registrations", "4401")
    assert pending["approval"]["approved"] and "finishes an applied change" in pending["approval"]["reason"]
    bed.sandbox.apply()
    assert not live("4401") and phone.register() == 403
    phone.close()
    bed.sandbox.assert_converged()


def test_the_labs_secrets_are_their_owners_alone(bed):
    """ha1 values are password-equivalent, and so are the passwords that reach them: every file
    holding a secret is its owner's alone, as on a real host."""
    import os
    import stat

    for name in ("phone/reconciler-db.pw", "phone/reconciler_lectura-db.pw", "phone/kamailio-db.pw", "phone/kamailio.cfg", "bind.pw",
                 "ad/svc-reconciler.pw", "ad/svc-lectura.pw", "ad/svc-dovecot.pw", "mail/doveadm.key",
                 "net/id_ed25519", "delivery/mesa.key"):
        path = LAB_DIR / name
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, name


def test_a_plan_reads_as_the_role_that_may_only_read(bed):
    """The password that writes is not needed to plan; the read-only role cannot write."""
    import psycopg

    repo = bed.sandbox.repo
    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    repo.lines = [extension("4401")]
    bed.sandbox.apply()
    repo.lines = []
    inventory = yaml.safe_load(bed.sandbox.inventory.read_text())
    inventory["targets"]["phone-test"]["database"]["password"] = {"file": "/nonexistent/reconciler-db.pw"}
    bed.sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    assert [(c["key"], c["movement"]) for c in changes(bed.sandbox.plan_json())] == [("4401", "baja")]
    password = (LAB_DIR / "phone" / "reconciler_lectura-db.pw").read_text().strip()
    with psycopg.connect("postgresql://reconciler_lectura@127.0.0.1:5432/kamailio", password=password,
                         autocommit=True) as db:
        assert db.execute("SELECT count(*) FROM reconciler_line").fetchone()[0] == 1
        for statement in ("DELETE FROM subscriber", "DELETE FROM reconciler_line"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)


def test_kamailio_may_only_read_its_subscribers():
    """Kamailio's own database account authenticates; it cannot write a subscriber."""
    import psycopg

    password = (LAB_DIR / "phone" / "kamailio-db.pw").read_text().strip()
    with psycopg.connect("postgresql://kamailio@127.0.0.1:5432/kamailio", password=password, autocommit=True) as db:
        assert db.execute("SELECT count(*) FROM subscriber").fetchone()[0] >= 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("INSERT INTO subscriber (username, domain, ha1) VALUES ('9999', 'salud.lab', 'x')")


def test_a_small_sites_sqlite_registrar_gets_altas_adoptions_and_bajas(sandbox, tmp_path):
    """SQLite stays for small sites: a file of Kamailio's own SQLite schema, written by the same
    provider (the lab's Kamailio answers the unregistrations); a file others may read is said in
    every plan."""
    import os

    database = tmp_path / "kamailio.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE version (table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL)")
        db.executescript(open(SQLITE_SCHEMA, encoding="utf-8").read())
        db.execute("INSERT INTO subscriber (username, domain, ha1) VALUES ('4402', 'salud.lab', 'a-mano')")
    os.chmod(database, 0o600)
    inventory = yaml.safe_load(sandbox.inventory.read_text())
    inventory["targets"]["phone-small"] = {
        "kind": "sip", "domain": "salud.lab", "database": str(database), "rpc_url": RPC,
        "audit_dir": str(sandbox.audit_dir), "credentials_dir": str(sandbox.credentials_dir)}
    sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    sandbox.repo.lines = [extension("4401"), extension("4402")]
    plan = sandbox.plan_json()
    mine = [c for c in plan["changes"] if c["target"] == "phone-small"]
    assert sorted((c["key"], c["movement"]) for c in mine) == [("4401", "alta"), ("4402", "adopcion")]
    sandbox.apply()
    with sqlite3.connect(database) as db:
        rows = dict(db.execute("SELECT username, ha1 FROM subscriber"))
    assert set(rows) == {"4401", "4402"} and rows["4402"] == "a-mano"
    sandbox.repo.lines = [extension("4402")]
    sandbox.apply()  # the baja of 4401
    with sqlite3.connect(database) as db:
        assert [u for (u,) in db.execute("SELECT username FROM subscriber")] == ["4402"]
    sandbox.assert_converged()
    os.chmod(database, 0o644)
    code, out, err = sandbox.cli("plan")
    assert "is readable by others (mode 644)" in out + err


MYSQL_SCHEMA = "/usr/share/kamailio/mysql/auth_db-create.sql"  # Kamailio's own (kamailio-mysql-modules)


@pytest.fixture(scope="module")
def mariadb():
    """A MariaDB server of its own (Debian's mariadb-server, installed by ci/lab/phone-up) on
    127.0.0.1:3307, holding Kamailio's MySQL schema; yields (the URL, the password file).  Its
    reconciler account may use the kamailio database and nothing else; stopped afterwards."""
    import secrets
    import shutil
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="mariadb-", dir=LAB_DIR))
    data, sock = base / "data", base / "mysqld.sock"
    shutil.chown(base, "mysql", "mysql")
    subprocess.run(["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={data}",
                    "--auth-root-authentication-method=socket", "--skip-test-db"], check=True, capture_output=True)
    server = subprocess.Popen(["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={data}", f"--socket={sock}",
                               "--port=3307", "--bind-address=127.0.0.1", f"--pid-file={base / 'pid'}",
                               "--skip-log-bin"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(100):
            if sock.exists():
                break
            time.sleep(0.1)
        password = secrets.token_urlsafe(18)
        (base / "reconciler-db.pw").write_text(password)
        sql = ("CREATE DATABASE kamailio; USE kamailio; "
               "CREATE TABLE version (table_name VARCHAR(32) NOT NULL, table_version INT UNSIGNED DEFAULT 0 NOT NULL);"
               + open(MYSQL_SCHEMA, encoding="utf-8").read()
               + f" CREATE USER reconciler@'127.0.0.1' IDENTIFIED BY '{password}';"
               " GRANT ALL ON kamailio.* TO reconciler@'127.0.0.1';"
               " INSERT INTO subscriber (username, domain, ha1) VALUES ('4402', 'salud.lab', 'a-mano');")
        subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root"], input=sql, text=True,
                       check=True, capture_output=True)
        yield "mysql://reconciler@127.0.0.1:3307/kamailio", base / "reconciler-db.pw", sock
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _mariadb_rows(sock, sql: str) -> list[list[str]]:
    import subprocess

    out = subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root", "-N", "-B", "kamailio",
                          "-e", sql], capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_a_registrar_on_mariadb_gets_altas_adoptions_and_bajas_and_plans_only_read(sandbox, mariadb):
    """Kamailio on MySQL or MariaDB (db_mysql): the same provider, through PyMySQL, on Kamailio's
    own MySQL schema; a plan's session is read-only whatever the account may do."""
    from reconciler.config.inventory import SecretSource
    from reconciler.providers.sip import store
    from reconciler.providers.sip.target import DatabaseSettings

    url, password, sock = mariadb
    inventory = yaml.safe_load(sandbox.inventory.read_text())
    inventory["targets"]["phone-maria"] = {
        "kind": "sip", "domain": "salud.lab", "database": {"url": url, "password": {"file": str(password)}},
        "rpc_url": RPC, "audit_dir": str(sandbox.audit_dir), "credentials_dir": str(sandbox.credentials_dir)}
    sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    sandbox.repo.lines = [extension("4401"), extension("4402")]
    plan = sandbox.plan_json()
    mine = [c for c in plan["changes"] if c["target"] == "phone-maria"]
    assert sorted((c["key"], c["movement"]) for c in mine) == [("4401", "alta"), ("4402", "adopcion")]
    sandbox.apply()
    rows = dict(_mariadb_rows(sock, "SELECT username, ha1 FROM subscriber"))
    assert set(rows) == {"4401", "4402"} and rows["4402"] == "a-mano" and len(rows["4401"]) == 32
    sandbox.repo.lines = [extension("4402")]
    sandbox.apply()  # the baja of 4401
    assert _mariadb_rows(sock, "SELECT username FROM subscriber") == [["4402"]]
    sandbox.assert_converged()
    reading = store.connect(DatabaseSettings(url=url, password=SecretSource(file=str(password))), read_only=True)
    try:
        with pytest.raises(store.DatabaseError, match="READ ONLY"):
            reading.execute("DELETE FROM subscriber")
    finally:
        reading.close()
    assert _mariadb_rows(sock, "SELECT username FROM subscriber") == [["4402"]]
