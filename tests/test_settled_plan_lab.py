"""Settled plans against the lab's Samba (providers/ad/settled.py, run/settled.py): a plan that
found nothing to do stands while nothing it reads changes, and never hides what did."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ldap3 import MODIFY_ADD, MODIFY_REPLACE, SUBTREE

from reconciler import dn as dnlib
from reconciler.desired.source import at_ref
from reconciler.render.plan import plan_json
from reconciler.run.engine import Run
from conftest import UNTRUSTED, untrust
from test_delta_read_lab import EDIT, VALUES, accounts, cache_home, edit_attribute, edit_enabled, edit_group, \
    edit_rename, group_dn, highest_usn, plan, staff  # noqa: F401 (fixtures)

pytestmark = pytest.mark.lab

SETTLED = "nothing it reads has changed since the plan of"
ONLY_THEY = "read otherwise in the targets: only they are planned"


def drift_check(sandbox, inventory=None) -> tuple[dict, str]:
    """`reconciler plan` as the scheduled drift check runs it: (changes, conflicts, warnings), scope."""
    with Run(at_ref(sandbox.repo.root), inventory or sandbox.inventory, settle=True) as run:
        found = json.loads(plan_json(run.plan()))
    return {k: found[k] for k in ("changes", "conflicts", "warnings")}, found["scope"]


def settled_file(cache_home):  # noqa: F811
    [path] = [p for p in (cache_home / "reconciler" / "directory").glob("*.settled.json")
              if not p.name.endswith(".detail.settled.json")]
    return path


def not_read(sandbox, dn: str, value: str) -> None:
    """What a logon or another program writes: attributes the plan does not read, a password
    changed by its owner (pwdLastSet moves, still not 0)."""
    sandbox.conn.modify(dn, {"info": [(MODIFY_REPLACE, [value])], "comment": [(MODIFY_REPLACE, [value])]})


@pytest.fixture
def settled(staff):  # noqa: F811
    """The staff applied and a first drift check that found nothing, remembered."""
    found, scope = drift_check(staff)
    assert found == {"changes": [], "conflicts": [], "warnings": []} and SETTLED not in scope
    return staff


def test_the_plan_stands_while_only_what_it_does_not_read_changes(settled, cache_home):  # noqa: F811
    found, scope = drift_check(settled)
    assert SETTLED in scope and found["changes"] == []  # the same USN: nothing written at all
    for sam, dn in accounts(settled):
        not_read(settled, dn, f"logon {sam}")
    before = json.loads(settled_file(cache_home).read_text(encoding="utf-8"))["usn"]
    found, scope = drift_check(settled)
    assert SETTLED in scope and found == plan(settled, full=True)  # written, but nothing the plan reads
    assert json.loads(settled_file(cache_home).read_text(encoding="utf-8"))["usn"] > before  # brought forward


def test_a_new_commit_or_another_inventory_is_planned_again(settled):
    settled.write_inventory(delta_read_hours=48)
    found, scope = drift_check(settled)
    assert SETTLED not in scope and found == {"changes": [], "conflicts": [], "warnings": []}
    assert SETTLED in drift_check(settled)[1]  # remembered again, for this inventory
    # A commit nobody approved: history is an input (review judges it), so it is planned again.
    settled.repo.git.git.commit("--allow-empty", "-m", "Otro commit")
    found, scope = drift_check(settled)
    assert SETTLED not in scope and found["changes"] == []
    assert any("without a signed approval" in w for w in found["warnings"])


def test_a_reminder_of_the_inputs_stands_with_the_plan_and_a_target_warning_never_does(settled):
    """A warning that follows from the commit alone (here, a commit that landed without
    approval) is kept with the remembered plan and shown again; a warning the directory gave
    (two managed accounts with one employeeID) means the plan is never remembered."""
    settled.repo.git.git.commit("--allow-empty", "-m", "Otro commit")
    first, scope = drift_check(settled)
    assert SETTLED not in scope and any("without a signed approval" in w for w in first["warnings"])
    again, scope = drift_check(settled)
    assert SETTLED in scope and again == first
    settled.conn.search(settled.people_ou, "(employeeID=SSM-000001)", SUBTREE,
                        attributes=["adminDescription", "employeeID"])
    original = settled.conn.response[0]
    twin = f"CN=Gemelo a mano,{dnlib.parent(original['dn'])}"
    assert settled.conn.add(twin, ["top", "person", "organizationalPerson", "user"],
                            {"sAMAccountName": "gemelo.mano", "employeeID": "SSM-000001", "userAccountControl": 514,
                             "adminDescription": original["attributes"]["adminDescription"]}), settled.conn.result
    for _ in range(2):
        found, scope = drift_check(settled)
        assert SETTLED not in scope and found == plan(settled, full=True)
        assert any("two managed accounts carry employeeID SSM-000001" in w for w in found["warnings"])


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.lists(EDIT, max_size=4), logons=st.integers(min_value=0, max_value=3))
def test_a_settled_plan_never_hides_a_hand_edit(settled, edits, logons):
    """Random hand edits, among writes the plan does not read: the drift check is the full plan,
    and it stands on the remembered one only when the full plan is empty.  (The examples share
    the sandbox: one may leave a conflict the next starts from, and a plan that is not empty is
    never remembered.)"""
    converged = drift_check(settled)[0] == {"changes": [], "conflicts": [], "warnings": []}
    for i in range(logons):
        found = accounts(settled)
        not_read(settled, found[i % len(found)][1], f"logon {i}")
    for edit, which, value in edits:
        found = accounts(settled)
        if found:
            edit(settled, found[which % len(found)][1], value)
    checked, scope = drift_check(settled)
    full = plan(settled, full=True)
    assert checked == full
    event("stood on the remembered plan" if SETTLED in scope
          else "planned only the people written" if ONLY_THEY in scope else "planned again")
    if SETTLED in scope:
        assert full == {"changes": [], "conflicts": [], "warnings": []}
    elif converged and not edits:
        pytest.fail(f"only writes the plan does not read, yet planned again: {scope}")
    settled.cli("apply")
    drift_check(settled)  # remembered again when it converged


def test_after_hand_edits_only_the_people_written_are_planned(settled):
    """A title and a disabled flag changed by hand, and someone added to a group by hand: the
    memory proves everyone else unchanged, so only those three are planned, and the plan is
    the full plan.  A changed employee key is judged by a full plan."""
    found = {(k if isinstance(k := e["attributes"]["employeeID"], str) else k[0]): e["dn"] for e in _people(settled)}
    edit_attribute(settled, found["SSM-000001"], "Cambiado a mano")
    edit_enabled(settled, found["SSM-000002"], True)
    settled.conn.modify(group_dn(settled, "GG-VPN-Remoto"), {"member": [(MODIFY_ADD, [found["SSM-000003"]])]})
    checked, scope = drift_check(settled)
    assert ONLY_THEY in scope and "3 people" in scope, scope
    assert checked == plan(settled, full=True)
    assert {c["key"] for c in checked["changes"]} == {"SSM-000001", "SSM-000002", "SSM-000003"}
    settled.conn.modify(found["SSM-000004"], {"employeeID": [(MODIFY_REPLACE, ["SSM-009999"])]})
    checked, scope = drift_check(settled)
    assert ONLY_THEY not in scope and SETTLED not in scope and checked == plan(settled, full=True)


# Hand edits a full plan answers by editing the same accounts back (by their keys).
KEYED = st.tuples(st.sampled_from([edit_attribute, edit_enabled, edit_group, edit_rename]),
                  st.integers(min_value=0, max_value=50), VALUES)


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.lists(KEYED, min_size=1, max_size=4))
def test_a_plan_of_only_the_people_written_is_the_full_plan(settled, edits):
    """Random edits of managed accounts (attributes, groups, names) after a plan that found
    nothing: the drift check plans only the people written, and that plan is the full plan."""
    converged = drift_check(settled)[0] == {"changes": [], "conflicts": [], "warnings": []}
    people = accounts(settled)
    for edit, which, value in edits:
        edit(settled, people[which % len(people)][1], value)
    checked, scope = drift_check(settled)
    full = plan(settled, full=True)
    assert checked == full
    event("planned only the people written" if ONLY_THEY in scope else "planned again")
    if converged and full["changes"]:
        assert ONLY_THEY in scope, scope
    settled.cli("apply")


def test_a_namesake_written_by_hand_is_planned_with_the_name_the_full_plan_gives(staff):  # noqa: F811
    """Two people deriving one account name: the later one's name is known only with the other
    declared (jnunezo, then jnunezo21).  A hand edit of the later one plans just them, named
    as the full plan names them, with the same origins."""
    from conftest import person

    staff.repo.add("CS-JIUTEPEC", person("SSM-000021", given_names="José", first_surname="Ñúñez",
                                         second_surname="O'Brien", curp=None, extension="421"))
    staff.apply()
    assert drift_check(staff)[0] == {"changes": [], "conflicts": [], "warnings": []}
    found = {(k if isinstance(k := e["attributes"]["employeeID"], str) else k[0]): e["dn"] for e in _people(staff)}
    edit_attribute(staff, found["SSM-000021"], "Cambiado a mano")
    edit_enabled(staff, found["SSM-000001"], True)
    checked, scope = drift_check(staff)
    assert ONLY_THEY in scope, scope
    assert checked == plan(staff, full=True)
    assert {c["key"] for c in checked["changes"]} == {"SSM-000001", "SSM-000021"}


def test_a_key_another_account_carries_or_a_marker_gained_is_judged_by_a_full_plan(settled):
    """A plan of some keys reads their own accounts, not every holder of the key: when another
    account in scope carries a written person's key, or an account gains the marker, the full
    plan judges it (a warning of two managed accounts, a name conflict)."""
    found = {(k if isinstance(k := e["attributes"]["employeeID"], str) else k[0]): e["dn"] for e in _people(settled)}
    twin = f"CN=Otra con la clave,{dnlib.parent(found['SSM-000001'])}"
    assert settled.conn.add(twin, ["top", "person", "organizationalPerson", "user"],
                            {"sAMAccountName": "otra.clave", "employeeID": "SSM-000001", "userAccountControl": 514})
    assert drift_check(settled)[0] == plan(settled, full=True)
    drift_check(settled)  # remembered, if the full plan found nothing (the twin is not managed)
    settled.conn.modify(found["SSM-000001"], {"cn": [(MODIFY_REPLACE, ["Renombrada a mano"])]})
    checked, scope = drift_check(settled)
    assert ONLY_THEY not in scope and checked == plan(settled, full=True)
    settled.cli("apply")
    drift_check(settled)
    marker = settled.conn.search(found["SSM-000002"], "(objectClass=*)", attributes=["adminDescription"]) and \
        settled.conn.response[0]["attributes"]["adminDescription"]
    marker = marker if isinstance(marker, str) else marker[0]
    settled.conn.modify(twin, {"adminDescription": [(MODIFY_REPLACE, [marker])],
                               "employeeID": [(MODIFY_REPLACE, ["SSM-000001"])]})
    checked, scope = drift_check(settled)
    assert ONLY_THEY not in scope and checked == plan(settled, full=True)
    assert any("two managed accounts carry employeeID SSM-000001" in w for w in checked["warnings"])


def test_an_account_in_scope_renamed_to_a_name_the_plan_would_adopt_is_judged_by_a_full_plan(staff):  # noqa: F811
    """adopt_from covering the people OU: an account there renamed by hand to the `adopt:` name of
    a declared person without an account would be adopted by a full plan."""
    from conftest import person

    staff.repo.add("HG-CUERNAVACA", person("SSM-000020", curp=None, given_names="Nuria", extension="499",
                                           adopt="nuria.mano"))
    staff.repo.baja("SSM-000020")
    staff.write_inventory(delta_read_hours=24, adopt_from=[staff.people_ou])
    staff.apply()
    assert drift_check(staff)[0] == plan(staff, full=True)
    drift_check(staff)
    found = {(k if isinstance(k := e["attributes"]["employeeID"], str) else k[0]): e["dn"] for e in _people(staff)}
    staff.conn.modify(found["SSM-000003"], {"sAMAccountName": [(MODIFY_REPLACE, ["nuria.mano"])]})
    checked, scope = drift_check(staff)
    assert ONLY_THEY not in scope and checked == plan(staff, full=True)


def test_a_directory_whose_plan_holds_is_planned_from_its_memory_while_other_targets_are_read(settled, kinds,
                                                                                              tmp_path):
    """The drift check of every target: a target whose kind cannot prove a settled plan (here a
    fake one, with altas still to make) is read and planned; the directory, whose own part found
    nothing, is planned from its memory: nothing, or only the people written since."""
    import yaml
    from fakes import FIRST

    from reconciler.providers.fake.provider import read_state

    mixed = settled.inventory.with_name("mixed.yaml")
    raw = yaml.safe_load(settled.inventory.read_text(encoding="utf-8"))
    raw["targets"]["a-first"] = {"kind": FIRST, "state_file": str(tmp_path / "a-first.json"),
                                 "journal": str(tmp_path / "journal.log"), "audit_dir": str(tmp_path / "audit"),
                                 "credentials_dir": str(tmp_path / "credentials")}
    mixed.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    first, scope = drift_check(settled, mixed)
    assert "ad-test:" not in scope and first["changes"] and all(c["target"] == "a-first" for c in first["changes"])
    again, scope = drift_check(settled, mixed)
    assert "ad-test: nothing it reads has changed since its plan of" in scope, scope
    assert again == first == plan(settled, full=True, inventory=mixed)
    found = {(k if isinstance(k := e["attributes"]["employeeID"], str) else k[0]): e["dn"] for e in _people(settled)}
    edit_attribute(settled, found["SSM-000001"], "Cambiado a mano")
    checked, scope = drift_check(settled, mixed)
    assert "ad-test: since its plan of" in scope and "only 1 person read otherwise" in scope, scope
    assert checked == plan(settled, full=True, inventory=mixed)
    assert {c["key"] for c in checked["changes"] if c["target"] == "ad-test"} == {"SSM-000001"}
    assert read_state(tmp_path / "a-first.json") == {}  # plans only: the fake system was read, never written
    assert (tmp_path / "journal.log").read_text(encoding="utf-8").count("read") >= 4


def _people(sandbox):
    sandbox.conn.search(sandbox.people_ou, "(&(objectCategory=person)(employeeID=*))", SUBTREE,
                        attributes=["employeeID"])
    return [e for e in sandbox.conn.response if e.get("type") == "searchResEntry"]


@pytest.mark.parametrize("stale", ["another DC", "a restored DC", "too old", "damaged", *UNTRUSTED])
def test_a_stale_or_foreign_memory_is_never_trusted(settled, cache_home, stale):  # noqa: F811
    path = settled_file(cache_home)
    raw = json.loads(path.read_text(encoding="utf-8"))
    settled.conn.search(settled.people_ou, "(employeeID=SSM-000001)", SUBTREE, attributes=["title"])
    dn = settled.conn.response[0]["dn"]
    settled.conn.modify(dn, {"title": [(MODIFY_REPLACE, ["Director a mano"])]})
    raw["usn"] = highest_usn(settled)  # past the edit: were it trusted, nothing would be asked
    if stale == "another DC":
        raw["server"] = raw["server"].replace("CN=NTDS Settings,CN=", "CN=NTDS Settings,CN=OTRO")
    elif stale == "a restored DC":
        raw["invocation"] = "00" * 16
    elif stale == "too old":
        raw["full_read_at"] -= 25 * 3600
    path.write_text(json.dumps(raw), encoding="utf-8")
    if stale == "damaged":
        path.write_bytes(path.read_bytes()[:-10])
    untrust(path, stale)
    found, scope = drift_check(settled)
    assert SETTLED not in scope and [c["key"] for c in found["changes"]] == ["SSM-000001"]


def test_an_account_made_under_adopt_from_for_someone_without_one_is_never_hidden(staff):  # noqa: F811
    """A baja who never had an account, and adopt_from naming an OU outside the managed ones: an
    account someone makes there with the baja's key would be adopted (and closed) by a full plan;
    the drift check must not stand on the plan remembered before it existed."""
    from conftest import person

    outside = f"OU=Fuera,{staff.root}"
    staff.repo.add("HG-CUERNAVACA", person("SSM-000020", curp=None, given_names="Nuria", extension="499"))
    staff.repo.baja("SSM-000020")  # declared as a baja before any account was made
    staff.write_inventory(delta_read_hours=24, adopt_from=[outside])
    staff.apply()
    found, scope = drift_check(staff)
    assert found == {"changes": [], "conflicts": [], "warnings": []}
    assert SETTLED in drift_check(staff)[1]
    staff.conn.add(f"CN=Nuria a mano,{outside}", ["top", "person", "organizationalPerson", "user"],
                   {"sAMAccountName": "nuria.mano", "employeeID": "SSM-000020", "userAccountControl": 512})
    found, scope = drift_check(staff)
    full = plan(staff, full=True)
    assert SETTLED not in scope and found == full and full["changes"], (scope, full)
