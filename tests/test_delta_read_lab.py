"""The AD delta read (delta_read_hours) against the lab's Samba: a plan that reads only what
changed since the last read must be the plan a full read gives, whatever was done by hand."""
from __future__ import annotations

import json
import os
import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, SUBTREE

from conftest import BASE_DN, LAB_DIR, person
from reconciler.desired.source import at_ref
from reconciler.providers.ad import delta
from reconciler.render.plan import plan_json
from reconciler.run.engine import Run

pytestmark = pytest.mark.lab

NAMES = [("José", "Ñúñez", "O'Brien"), ("María José", "Peña", "Güemes"), ("Ángel", "Ibáñez", "Ordóñez"),
         ("Zoé", "D'Acosta", "Muñoz"), ("Iván", "de la Cruz", "Zúñiga"), ("Begoña", "Argüelles", "Treviño"),
         ("Raúl", "Castañeda", "Núñez"), ("Inés", "del Río", "Yáñez")]


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """The snapshots of this test alone (the user's cache directory)."""
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("RECONCILER_SCHEMA_CACHE", raising=False)
    return home


@pytest.fixture
def delta_reads(monkeypatch):
    """How each read went: "delta" (the snapshot brought forward) or the reason of a full read."""
    seen: list[str] = []
    forward = delta.bring_forward

    def counted(*args, **kwargs):
        try:
            result = forward(*args, **kwargs)
        except delta.FullReadNeeded as exc:
            seen.append(str(exc.why))
            raise
        seen.append("delta")
        return result

    monkeypatch.setattr(delta, "bring_forward", counted)
    return seen


@pytest.fixture
def staff(sandbox, cache_home):
    """Eight people in two units and one baja, applied, with delta reads on."""
    for i, (given, first, second) in enumerate(NAMES, start=1):
        unit = "HG-CUERNAVACA" if i % 2 else "CS-JIUTEPEC"
        entitlements = [["expediente_electronico", "internet"], ["internet"], ["expediente_electronico"]][i % 3]
        sandbox.repo.add(unit, person(f"SSM-{i:06d}", given_names=given, first_surname=first, second_surname=second,
                                      curp=None, extension=str(400 + i), entitlements=entitlements))
    sandbox.repo.baja("SSM-000008")
    sandbox.write_inventory()
    sandbox.classic = sandbox.inventory.with_name("classic.yaml")  # no delta reads: the plain full read
    sandbox.classic.write_text(sandbox.inventory.read_text(encoding="utf-8"), encoding="utf-8")
    sandbox.write_inventory(delta_read_hours=24)
    sandbox.apply()
    outside = f"OU=Fuera,{sandbox.root}"  # in the sandbox, outside the managed OUs
    sandbox.conn.add(outside, "organizationalUnit")
    plan(sandbox, full=True)  # the snapshot starts after the hand-made OU
    return sandbox


def plan(sandbox, full: bool = False, inventory=None) -> dict:
    with Run(at_ref(sandbox.repo.root), inventory or sandbox.inventory, full_read=full) as run:
        found = json.loads(plan_json(run.plan()))
    return {k: found[k] for k in ("changes", "conflicts", "warnings")}


def accounts(sandbox) -> list[tuple[str, str]]:
    """(sAMAccountName, DN) of every user under the sandbox's root, hand-made ones too."""
    sandbox.conn.search(sandbox.root, "(&(objectCategory=person)(objectClass=user))", SUBTREE,
                        attributes=["sAMAccountName"])
    return sorted((e["attributes"]["sAMAccountName"], e["dn"]) for e in sandbox.conn.response
                  if e.get("type") == "searchResEntry")


def group_dn(sandbox, name: str) -> str:
    return f"CN={sandbox.group(name)},{sandbox.groups_ou}"


# -- hand edits: what an administrator may do in the directory ----------------------------------

def edit_attribute(sandbox, dn, value):
    sandbox.conn.modify(dn, {"title": [(MODIFY_REPLACE, [value])] if value else [(MODIFY_DELETE, [])]})


def edit_enabled(sandbox, dn, value):
    sandbox.conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [512 | (2 if value else 0)])]})


def edit_group(sandbox, dn, value):
    name = ["GG-SIEMPRE-Usuarios", "GG-Internet", "GG-VPN-Remoto"][len(value) % 3]
    operation = MODIFY_ADD if len(value) % 2 else MODIFY_DELETE
    sandbox.conn.modify(group_dn(sandbox, name), {"member": [(operation, [dn])]})


def edit_rename(sandbox, dn, value):
    sandbox.conn.modify_dn(dn, f"CN=Renombrada {value or 'x'} {secrets.token_hex(2)}")


def edit_move(sandbox, dn, value):
    places = [f"OU=HG-CUERNAVACA,{sandbox.people_ou}", f"OU=CS-JIUTEPEC,{sandbox.people_ou}", sandbox.bajas_ou,
              f"OU=Fuera,{sandbox.root}"]
    cn = dn.split(",OU=")[0]
    sandbox.conn.modify_dn(dn, cn, new_superior=places[len(value) % len(places)])


def edit_delete(sandbox, dn, value):
    sandbox.conn.delete(dn)


def edit_unmark(sandbox, dn, value):
    sandbox.conn.modify(dn, {"adminDescription": [(MODIFY_REPLACE, [value or "hecho a mano"])]})


def edit_new_account(sandbox, dn, value):
    """A hand-made account in a unit OU: with someone's employee key or none, in a group or not."""
    sam = f"mano{secrets.token_hex(3)}"
    new = f"CN=Hecha a mano {sam},OU=HG-CUERNAVACA,{sandbox.people_ou}"
    attrs = {"sAMAccountName": sam, "userAccountControl": 514}
    if len(value) % 2:
        attrs["employeeID"] = "SSM-000003"
    sandbox.conn.add(new, ["top", "person", "organizationalPerson", "user"], attrs)
    if len(value) % 3 == 0:
        sandbox.conn.modify(group_dn(sandbox, "GG-Internet"), {"member": [(MODIFY_ADD, [new])]})


def edit_new_group(sandbox, dn, value):
    """A group made by hand in the groups OU, holding the account."""
    name = f"GG-Mano-{secrets.token_hex(3)}"
    sandbox.conn.add(f"CN={name},{sandbox.groups_ou}", ["top", "group"], {"sAMAccountName": name, "member": [dn]})


def edit_container(sandbox, dn, value):
    """A container made by hand in a unit OU, the account moved into it (still in scope for a
    full read): a container changed, so the read is full."""
    container = f"CN=Caja {secrets.token_hex(2)},OU=HG-CUERNAVACA,{sandbox.people_ou}"
    sandbox.conn.add(container, "container")
    sandbox.conn.modify_dn(dn, dn.split(",OU=")[0], new_superior=container)


EDITS = [edit_attribute, edit_enabled, edit_group, edit_rename, edit_move, edit_delete, edit_unmark,
         edit_new_account, edit_new_group, edit_container]

VALUES = st.text(st.sampled_from("abcñÑáéü' -"), max_size=6).map(str.strip)
EDIT = st.tuples(st.sampled_from(EDITS), st.integers(min_value=0, max_value=50), VALUES)


@settings(max_examples=14, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.lists(EDIT, max_size=5))
def test_the_delta_plan_is_the_full_plan_after_any_hand_edits(staff, delta_reads, edits):
    for edit, which, value in edits:
        found = accounts(staff)
        if found:
            edit(staff, found[which % len(found)][1], value)
    delta_reads.clear()
    by_delta = plan(staff)
    if any(edit is edit_container for edit, _, _ in edits):
        assert delta_reads == ["an organizational unit or container changed since the last read"]
    else:
        assert delta_reads == ["delta"], delta_reads  # the snapshot was brought forward, not read again
    assert by_delta == plan(staff, full=True) == plan(staff, inventory=staff.classic)
    staff.cli("apply")  # converges as far as conflicts let it; its read-back goes through the delta too
    assert plan(staff) == plan(staff, full=True)


def test_nothing_written_means_no_search_at_all(staff, delta_reads, monkeypatch):
    searched = []
    monkeypatch.setattr(delta, "paged_search", lambda *a, **k: searched.append(a[2]) or iter(()))
    first = plan(staff)
    assert delta_reads == ["delta"] and searched == []
    assert first["changes"] == []


@pytest.mark.parametrize("asked", ["by their USNs", "as the range"])
def test_what_was_written_is_asked_by_its_usns_or_as_the_range_and_read_alike(staff, delta_reads, monkeypatch,
                                                                                 asked):
    """On Samba `(uSNChanged>=N)` walks the whole domain and `(uSNChanged=N)` is an index
    lookup: a few writes are asked USN by USN, many as the range; the plan is the same."""
    if asked == "as the range":
        monkeypatch.setattr(delta, "EQUALITIES", 0)
    filters = []
    real = delta._written
    monkeypatch.setattr(delta, "_written", lambda conn, target, usns, attrs: filters.append(usns) or real(
        conn, target, usns, attrs))
    _title(staff, "SSM-000001", "Cambiado a mano")
    edit_group(staff, accounts(staff)[1][1], "x")  # a membership added by hand
    by_delta = plan(staff)
    assert delta_reads == ["delta"] and filters
    assert all(f.startswith("(|(uSNChanged=") for f in filters) == (asked == "by their USNs")
    assert all(f.startswith("(uSNChanged>=") for f in filters) == (asked == "as the range")
    assert by_delta == plan(staff, full=True) != {"changes": [], "conflicts": [], "warnings": []}


def test_an_account_written_again_during_the_read_is_read_as_it_is_after(staff, delta_reads, monkeypatch):
    """Asked USN by USN, an account written again while the read goes on leaves the USN it was
    found by for one past the watermark: the read asks again up to a new watermark, until no
    write came in between, so the plan sees its last state, as a full read then does."""
    dn = _title(staff, "SSM-000001", "Primera mano")
    real, calls = delta._written, []

    def racing(conn, target, usns, attrs):
        found = list(real(conn, target, usns, attrs))
        if not calls:  # after the first search: the same account, written again by hand
            staff.conn.modify(dn, {"title": [(MODIFY_REPLACE, ["Segunda mano"])]})
        calls.append(usns)
        return iter(found)
    monkeypatch.setattr(delta, "_written", racing)
    by_delta = plan(staff)
    assert delta_reads == ["delta"] and len(calls) >= 2 and all(c.startswith("(|") for c in calls)
    assert "Segunda mano" in json.dumps(by_delta) and "Primera mano" not in json.dumps(by_delta)
    assert by_delta == plan(staff, full=True)


def test_a_managed_group_renamed_or_an_ou_made_means_a_full_read(staff, delta_reads):
    staff.conn.add(f"OU=Nueva,{staff.people_ou}", "organizationalUnit")
    assert plan(staff) == plan(staff, full=True)
    assert delta_reads[0] == "an organizational unit or container changed since the last read"
    delta_reads.clear()
    internet = group_dn(staff, "GG-Internet")
    staff.conn.modify_dn(internet, f"CN={staff.group('GG-Internet')}-renombrado")
    by_delta = plan(staff)
    assert delta_reads[0].startswith("the managed group") and "renamed or moved" in delta_reads[0]
    assert by_delta == plan(staff, full=True)


def highest_usn(sandbox) -> int:
    sandbox.conn.search("", "(objectClass=*)", BASE, attributes=["highestCommittedUSN"])
    return int(sandbox.conn.response[0]["attributes"]["highestCommittedUSN"][0])


def _snapshot_file(cache_home):
    [path] = [p for p in (cache_home / "reconciler" / "directory").glob("*.json") if not p.name.endswith(".settled.json")]
    return path


def _title(sandbox, key: str, title: str) -> str:
    sandbox.conn.search(sandbox.people_ou, f"(employeeID={key})", SUBTREE, attributes=["sAMAccountName"])
    dn = sandbox.conn.response[0]["dn"]
    sandbox.conn.modify(dn, {"title": [(MODIFY_REPLACE, [title])]})
    return dn


def _tampered(path, **changes) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.update(changes)
    path.write_text(json.dumps(raw), encoding="utf-8")


@pytest.mark.parametrize("stale", ["another DC", "a restored DC", "a DC behind the snapshot", "too old",
                                   "another target's", "damaged"])
def test_a_stale_snapshot_is_never_trusted(staff, delta_reads, cache_home, stale):
    path = _snapshot_file(cache_home)
    # The snapshot says SSM-000001 is as declared; by hand, the directory now says otherwise.  Its
    # watermark is moved past the edit: were it trusted, nothing would be read again.
    _title(staff, "SSM-000001", "Director a mano")
    _tampered(path, usn=highest_usn(staff))
    raw = json.loads(path.read_text(encoding="utf-8"))
    if stale == "another DC":
        _tampered(path, server="CN=NTDS Settings,CN=DC2,CN=Servers,CN=Default-First-Site-Name,CN=Sites,"
                                f"CN=Configuration,{BASE_DN}")
    elif stale == "a restored DC":
        _tampered(path, invocation="00" * 16)
    elif stale == "a DC behind the snapshot":
        _tampered(path, usn=raw["usn"] + 10 ** 6)  # a DC rolled back: its USNs will be given again
    elif stale == "too old":
        _tampered(path, full_read_at=raw["full_read_at"] - 25 * 3600)
    elif stale == "another target's":
        _tampered(path, key="0" * 64)
    else:
        path.write_bytes(path.read_bytes()[:-100])
    found = plan(staff)
    assert [c["key"] for c in found["changes"]] == ["SSM-000001"]  # the hand edit is seen: read in full
    assert found == plan(staff, full=True)
    assert "delta" not in delta_reads


@pytest.mark.parametrize("foreign", ["someone else's", "writable by others", "in a folder others may write",
                                     "a link"])
def test_a_foreign_snapshot_is_never_read(staff, delta_reads, cache_home, foreign):
    path = _snapshot_file(cache_home)
    raw = json.loads(path.read_text(encoding="utf-8"))
    dn = _title(staff, "SSM-000001", "Director a mano")
    # Someone else's snapshot claims the edit is how things are: were it read, the drift would hide.
    for guid, held_dn, attrs in raw["entries"]:
        if held_dn == dn:
            attrs["title"] = ["Director a mano"]
    raw["usn"] = highest_usn(staff)  # past the edit: were it trusted, nothing would be read again
    path.write_text(json.dumps(raw), encoding="utf-8")
    if foreign == "someone else's":
        os.chown(path, 65534, 65534)
    elif foreign == "writable by others":
        path.chmod(0o666)
    elif foreign == "in a folder others may write":
        path.parent.chmod(0o777)
    else:
        moved = path.with_suffix(".elsewhere")
        path.rename(moved)
        path.symlink_to(moved)
    found = plan(staff)
    assert [c["key"] for c in found["changes"]] == ["SSM-000001"]
    assert "delta" not in delta_reads


def test_full_read_reads_everything_and_keeps_the_fresh_read(staff, delta_reads):
    _title(staff, "SSM-000002", "Jefa a mano")
    forced = plan(staff, full=True)
    assert delta_reads == [] and [c["key"] for c in forced["changes"]] == ["SSM-000002"]
    assert plan(staff) == forced and delta_reads == ["delta"]


def test_a_read_account_that_cannot_see_deletions_reads_in_full_and_says_why(staff, delta_reads):
    # svc-dovecot is an ordinary account: it was not granted the listing of CN=Deleted Objects.
    staff.write_inventory(delta_read_hours=24, read_bind={
        "bind_dn": "svc-dovecot@SALUD.LAB", "bind_password": {"file": str(LAB_DIR / "ad" / "svc-dovecot.pw")}})
    plan(staff, full=True)
    [sam, dn] = accounts(staff)[0]
    staff.conn.delete(dn)
    found = plan(staff)
    assert any("sees no deleted object" in w and "svc-dovecot" in w for w in found["warnings"])
    assert found["changes"] == plan(staff, full=True)["changes"] and found["changes"]
    assert delta_reads[-1].startswith("the account svc-dovecot@SALUD.LAB sees no deleted object")
