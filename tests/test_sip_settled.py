"""Settled registrar plans (providers/sip/settled.py) on an SQLite registrar of Kamailio's own
schema (no server needed; the lab's PostgreSQL in test_phone_settled_lab.py): a plan that found
nothing stands exactly while the subscriber table reads the same, and a memory that is not
the runner's own is never trusted."""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import UNTRUSTED, forged_memory, person, untrust
from reconciler.credentials import CredentialFile
from reconciler.desired.load import load_desired_state
from reconciler.providers.contract import PlanRequest
from reconciler.providers.sip import settled
from reconciler.providers.sip.diff import ActualLines, Subscriber
from reconciler.providers.sip.provider import SipProvider
from reconciler.providers.sip.target import DatabaseSettings, SipTarget

SCHEMA = Path("/usr/share/kamailio/db_sqlite/auth_db-create.sql")
TODAY = "2026-11-20"
INPUTS = "inputs-1"

NUMBERS = st.sampled_from(["4401", "4402", "4403"])
HOLDERS = st.none() | st.sampled_from(["SSM-000001", "SSM-000002"])
SUBSCRIBERS = st.lists(st.builds(Subscriber, NUMBERS, st.booleans(), HOLDERS, st.sampled_from(["HG", "CS"]),
                                 st.booleans()), max_size=4)
UNREGISTER = st.dictionaries(NUMBERS, st.sampled_from(["2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00"]),
                             max_size=2)


def table(subscribers, unregister) -> ActualLines:
    return ActualLines({s.number: s for s in subscribers}, unregister)


@given(SUBSCRIBERS, UNREGISTER, SUBSCRIBERS, UNREGISTER)
def test_the_digest_is_equal_exactly_when_the_plan_reads_the_same(one, owed, other, theirs):
    a, b = table(one, owed), table(other, theirs)
    assert (settled.lines_digest(a) == settled.lines_digest(b)) == (a == b)


def line(number: str, holder: str = "SSM-000001") -> dict:
    return {"number": number, "kind": "extension", "unit": "HG-CUERNAVACA", "status": "activa", "person": holder,
            "solicitud": {"folio": f"SSM/STI/2026/{number}", "date": "2026-11-02", "justification": "Extensión",
                          "requested_by": "Dirección del hospital"}}


class Registrar:
    """An SQLite registrar with two declared extensions applied by the provider, and the
    declared state."""

    def __init__(self, tmp_path: Path, repo):
        self.path = tmp_path / "kamailio.db"
        with sqlite3.connect(self.path) as db:
            db.execute("CREATE TABLE version (table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 "
                       "NOT NULL)")
            db.executescript(SCHEMA.read_text(encoding="utf-8"))
        os.chmod(self.path, 0o600)
        self.target = SipTarget(name="phone", domain="salud.lab", database=DatabaseSettings(path=str(self.path)),
                                rpc_url="http://127.0.0.1:1/RPC", audit_dir=str(tmp_path), credentials_dir=str(tmp_path))
        repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None),
                 person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
        repo.lines = [line("4401"), line("4402", "SSM-000002")]
        self.state = load_desired_state(repo.write())
        with SipProvider(self.target) as provider:
            planned = provider.plan(PlanRequest(self.state, TODAY))
            credentials = CredentialFile(tmp_path / "secrets", "run")
            assert all(o.status == "applied" for o in provider.apply(planned, planned.changes, credentials))
            credentials.close()

    def sql(self, statement: str, params=()) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute(statement, params)

    def plan(self, remember: bool = False):
        """A full plan of the reading view; remembered when asked (as the engine does when it finds nothing)."""
        with SipProvider(self.target.for_reading()) as provider:
            planned = provider.plan(PlanRequest(self.state, TODAY))
            if remember:
                assert not planned.changes and not planned.conflicts and not planned.warnings
                provider.settle(planned, INPUTS)
            return planned

    def stands(self, inputs: str = INPUTS) -> bool:
        with SipProvider(self.target.for_reading()) as provider:
            return provider.settled(inputs) is not None

    def memory(self) -> Path:
        [path] = (Path(os.environ["XDG_CACHE_HOME"]) / "reconciler" / "sip").glob("*.settled.json")
        return path


@pytest.fixture
def registrar(tmp_path, repo, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RECONCILER_SCHEMA_CACHE", raising=False)
    bed = Registrar(tmp_path, repo)
    bed.plan(remember=True)
    assert bed.stands()
    return bed


# Each a hand edit the registrar's plan sees, in the database Kamailio reads.
EDITS = {
    "a secret changed": "UPDATE subscriber SET ha1 = 'a-mano' WHERE username = '4401'",
    "a line deleted": "DELETE FROM subscriber WHERE username = '4402'",
    "someone else's line made": "INSERT INTO subscriber (username, domain, ha1) VALUES ('4499', 'salud.lab', 'x')",
    "a holder rewritten": "UPDATE reconciler_line SET holder = 'SSM-000002' WHERE username = '4401'",
    "a registration owed": "INSERT INTO reconciler_unregister (username, domain, since) "
                           "VALUES ('4401', 'salud.lab', '2026-11-01T00:00:00+00:00')",
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_each_hand_edit_is_planned_again(registrar, edit):
    registrar.sql(EDITS[edit])
    assert not registrar.stands()
    planned = registrar.plan()
    # What the memory would have hidden; a line not declared is read (one at a declared number
    # would be adopted) and left alone.
    assert (planned.changes or planned.conflicts) != (edit == "someone else's line made")


def test_what_the_plan_does_not_read_changes_nothing_and_other_inputs_are_planned_again(registrar):
    registrar.sql("INSERT INTO version (table_name, table_version) VALUES ('location', 9)")  # another table
    assert registrar.stands()
    assert not registrar.stands("inputs-2")  # another commit, inventory, day or code


def test_a_database_others_may_read_is_said_and_never_stood_on(registrar):
    os.chmod(registrar.path, 0o644)
    assert not registrar.stands()
    assert registrar.plan().warnings


@pytest.mark.parametrize("forged", ["the runner's own", "damaged", "another target's", "not a time", "nested too deep",
                                    *UNTRUSTED])
def test_a_damaged_or_foreign_memory_is_never_trusted(registrar, forged):
    """Each memory below carries the digest of the table after a hand edit, so trusted it would
    hide that edit.  Only one the runner's own user wrote whole is trusted (the documented limit
    of every cache); any other reads as none."""
    path = registrar.memory()
    registrar.sql(EDITS["a secret changed"])
    raw = json.loads(path.read_text(encoding="utf-8"))
    with SipProvider(registrar.target.for_reading()) as provider:
        raw["lines"] = settled.lines_digest(provider._read())
    path.write_text(forged_memory(raw, forged), encoding="utf-8")
    untrust(path, forged)
    assert registrar.stands() == (forged == "the runner's own")


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.sampled_from([*EDITS.values(), "UPDATE subscriber SET ha1 = ha1"]), max_size=3,
                      unique=True))
def test_a_settled_registrar_plan_never_hides_a_hand_edit(tmp_path_factory, edits, monkeypatch):
    """Random hand edits from the applied state: the memory stands exactly when the full plan
    finds nothing to do and the table reads as it did."""
    from conftest import DesiredRepo

    tmp = tmp_path_factory.mktemp("sip")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
    monkeypatch.delenv("RECONCILER_SCHEMA_CACHE", raising=False)
    bed = Registrar(tmp, DesiredRepo(tmp / "repo"))
    bed.plan(remember=True)
    with SipProvider(bed.target.for_reading()) as provider:
        before = provider._read()
    for statement in edits:
        bed.sql(statement)
    planned = bed.plan()
    with SipProvider(bed.target.for_reading()) as provider:
        same = provider._read() == before
    assert bed.stands() == same
    if same:
        assert not planned.changes and not planned.conflicts
    event("stood" if same else "planned again")


def test_a_username_that_is_not_text_is_told_apart_and_never_crashes_the_plan():
    """SQLite keeps a username inserted as a BLOB as bytes: the digest neither crashes on it
    nor takes it for the text it spells."""
    as_bytes = table([Subscriber(b"4401", False)], {})
    as_text = table([Subscriber("4401", False)], {})
    both = table([Subscriber(b"4401", False), Subscriber("4402", True, "SSM-000001", "HG")], {b"4401": "x"})
    assert settled.lines_digest(as_bytes) != settled.lines_digest(as_text)
    assert settled.lines_digest(both) == settled.lines_digest(both)
