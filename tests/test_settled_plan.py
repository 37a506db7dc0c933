"""Settled plans without the lab: what counts as a change of what the plan reads, and what a
plan's inputs are (the lab half: tests/test_settled_plan_lab.py)."""
from __future__ import annotations

import git
import pytest

from reconciler.providers.ad.settled import _adoptable, entry_digest
from reconciler.providers.ad.target import ADTarget
from reconciler.run import settled


def test_a_digest_ignores_the_order_of_memberof_and_a_password_changed_by_its_owner():
    attrs = {"sAMAccountName": ["jnunez"], "memberOf": ["CN=A,OU=G", "CN=B,OU=G"], "pwdLastSet": ["1334"]}
    same = {"samaccountname": ["jnunez"], "memberOf": ["CN=B,OU=G", "CN=A,OU=G"], "pwdLastSet": ["9999"],
            "objectCategory": ["CN=Person,CN=Schema"]}
    assert entry_digest("CN=José Ñúñez,OU=X", attrs) == entry_digest("CN=José Ñúñez,OU=X", same)
    must_change = {**attrs, "pwdLastSet": ["0"]}  # "change at next logon" is read by verify
    assert entry_digest("CN=José Ñúñez,OU=X", must_change) != entry_digest("CN=José Ñúñez,OU=X", attrs)
    assert entry_digest("CN=José Ñúñez,OU=Y", attrs) != entry_digest("CN=José Ñúñez,OU=X", attrs)
    assert entry_digest("CN=José Ñúñez,OU=X", {**attrs, "title": ["Jefe"]}) != entry_digest("CN=José Ñúñez,OU=X",
                                                                                         attrs)


def test_the_inputs_change_with_the_commit_the_inventory_the_day_the_targets_and_the_refs(tmp_path):
    repo = git.Repo.init(tmp_path / "repo")
    with repo.config_writer() as config:
        config.set_value("user", "name", "CI").set_value("user", "email", "ci@example.org")
    repo.git.commit("--allow-empty", "-m", "uno")
    first = repo.head.commit.hexsha
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("targets: {}\n", encoding="utf-8")
    base = dict(repo=repo, commit=first, prefix="", inventory=settled.file_digest(inventory), targets=["ad"],
                today="2026-12-03",
                apply_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirst")
    before = settled.inputs(**base)
    assert settled.inputs(**base) == before
    assert settled.inputs(**{**base, "today": "2026-12-04"}) != before
    assert settled.inputs(**{**base, "targets": ["ad", "correo"]}) != before
    assert settled.inputs(**{**base, "apply_key": ""}) != before
    assert settled.inputs(**{**base, "apply_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRotated"}) != before
    repo.git.commit("--allow-empty", "-m", "dos")
    assert settled.inputs(**{**base, "commit": repo.head.commit.hexsha}) != before
    repo.git.update_ref("refs/reconciler/applied/ad", first)  # an apply moved what is applied
    moved = settled.inputs(**base)
    assert moved != before
    inventory.write_text("targets: {ad: {}}\n", encoding="utf-8")
    assert settled.inputs(**{**base, "inventory": settled.file_digest(inventory)}) != moved


def test_a_run_written_to_a_trail_changes_the_inputs(tmp_path):
    """The trails say which password resets were applied: a plan after any run is planned again."""
    repo = git.Repo.init(tmp_path / "repo")
    with repo.config_writer() as config:
        config.set_value("user", "name", "CI").set_value("user", "email", "ci@example.org")
    repo.git.commit("--allow-empty", "-m", "uno")
    inventory, trail = tmp_path / "inventory.yaml", tmp_path / "ad.audit.jsonl"
    inventory.write_text("targets: {}\n", encoding="utf-8")
    base = dict(repo=repo, commit=repo.head.commit.hexsha, prefix="", inventory=settled.file_digest(inventory),
                targets=["ad"],
                today="2026-12-03", apply_key="", trails=[trail])
    missing = settled.inputs(**base)
    trail.write_text('{"kind":"run-start"}\n', encoding="utf-8")
    written = settled.inputs(**base)
    assert written != missing and settled.inputs(**base) == written
    with trail.open("a", encoding="utf-8") as f:
        f.write('{"kind":"run-end"}\n')
    assert settled.inputs(**base) != written


def test_an_account_under_adopt_from_that_takes_a_declared_name_is_a_change():
    target = ADTarget.build("ad", {
        "kind": "active_directory", "host": "dc.example", "base_dn": "DC=salud,DC=lab", "upn_suffix": "salud.lab",
        "ous": {"people": "OU=Personal,DC=salud,DC=lab", "groups": "OU=Grupos,DC=salud,DC=lab",
                "bajas": "OU=Bajas,DC=salud,DC=lab"},
        "adopt_from": ["OU=Usuarios,DC=salud,DC=lab"],
        "bind_dn": "svc@salud.lab", "bind_password": {"file": "/dev/null"}})
    adopting = frozenset({"ssm-000009", "jperez"})
    here = "CN=Juan Pérez,OU=Usuarios,DC=salud,DC=lab"
    assert _adoptable(here, {"employeeID": ["SSM-000009"], "sAMAccountName": ["otro"]}, target, adopting)
    assert _adoptable(here, {"employeeID": [], "sAMAccountName": ["JPerez"]}, target, adopting)
    assert not _adoptable(here, {"employeeID": ["SSM-000010"], "sAMAccountName": ["otro"]}, target, adopting)
    elsewhere = "CN=Juan Pérez,OU=Otros,DC=salud,DC=lab"
    assert not _adoptable(elsewhere, {"employeeID": ["SSM-000009"]}, target, adopting)


def _reminders():
    from reconciler.i18n import lazy, lazy_n
    from reconciler.run import Moment

    return (lazy("collect {type} {number} ({brand} {model}, serial {serial}) from {who} ({key}, baja): "
                 "returned to {unit}, unassigned", type="laptop", number="INV-0001", brand="Dell", model="5440",
                 serial="SN'1", who="José Ñúñez O'Brien", key="SSM-000007", unit="HG-CUERNAVACA"),
            lazy_n("{n} commit landed since the applied {commit} without a signed approval ({commits}): nothing they "
                   "change is applied, and an approved change they undid is not applied either",
                   "{n} commits landed since the applied {commit} without a signed approval ({commits}): nothing they"
                   " change is applied, and an approved change they undid is not applied either", 2,
                   commit="abc", commits="d, e"),
            lazy("target {target}: took over the lock of {holder}", target="ad",
                 holder=Moment("2026-12-03T10:00:00+00:00")))


def test_reminders_kept_with_a_plan_come_back_in_the_language_of_the_run(tmp_path, monkeypatch, speaking):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    kept = _reminders()
    which = settled.selection("the inventory's digest", ["ad-lab"])
    index = settled.Index({"SSM-000007": "users/hg.yaml"})
    assert settled.remember(which, "inputs-1", settled.Kept(kept[:2], kept[2:]), index)
    recalled = settled.recall(which, "inputs-1")
    back = recalled.reminders + recalled.reviewed
    assert len(recalled.reminders) == 2 and settled.recall_index(which, "inputs-1") == index
    assert [str.__str__(w) for w in back] == [str.__str__(w) for w in kept]  # the source text, for JSON
    speaking("es_MX")
    assert [str(w) for w in back] == [str(w) for w in kept]
    assert str(back[0]).startswith("recoja el equipo laptop INV-0001 (Dell 5440, serie SN'1) de José Ñúñez O'Brien")
    assert str(back[1]).startswith("2 commits llegaron") and "abc" in str(back[1])
    assert str(back[2]).startswith("destino ad: se tomó el bloqueo de ") and "2026" in str(back[2])
    assert settled.recall(which, "inputs-2") is None  # another plan's inputs
    assert settled.recall(settled.selection("the inventory's digest", ["ad-lab", "mail-lab"]), "inputs-1") is None
    assert settled.remember(which, "inputs-3", settled.Kept((), ()), settled.Index({}))
    assert settled.recall(which, "inputs-3") == settled.Kept((), ())
    assert settled.recall_index(which, "inputs-1") is None  # the index of another plan


def test_a_reminder_that_cannot_be_kept_means_nothing_is_remembered(tmp_path, monkeypatch):
    from reconciler.i18n import lazy

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    which = settled.selection("the inventory's digest", ["ad-lab"])
    assert not settled.remember(which, "inputs-1", settled.Kept((lazy("odd {value}", value=object()),), ()),
                                settled.Index({}))
    assert settled.recall(which, "inputs-1") is None


def test_a_damaged_or_foreign_memory_of_reminders_is_never_used(tmp_path, monkeypatch):
    import json
    import os

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    which = settled.selection("the inventory's digest", ["ad-lab"])
    assert settled.remember(which, "inputs-1", settled.Kept(_reminders(), ()), settled.Index({}))
    [path] = (tmp_path / "reconciler" / "plans").glob("*[0-9a-f].json")
    good = path.read_bytes()
    for damage in (lambda: path.write_bytes(good[:-5]),
                   lambda: path.write_text(json.dumps({**json.loads(good), "reminders": ["plain text"]})),
                   lambda: path.write_text(json.dumps({**json.loads(good), "reviewed": [{"id": 1}]})),
                   lambda: path.write_text("[" * 100_000 + "]" * 100_000),  # nested past any depth it writes
                   lambda: os.chown(path, 65534, 65534),
                   lambda: path.chmod(0o666)):
        path.write_bytes(good)
        os.chown(path, os.getuid(), os.getgid())
        path.chmod(0o600)
        assert settled.recall(which, "inputs-1") is not None
        damage()
        assert settled.recall(which, "inputs-1") is None


def test_a_plan_of_some_people_loads_their_namesakes_too():
    """Account names of namesakes are known only together (naming.assign_account_names): a
    plan of one loads the others, so names and origins are those of the full plan."""
    index = settled.Index({"A-1": "users/a.yaml", "A-2": "users/b.yaml", "A-3": "users/a.yaml", "B-1": "users/b.yaml"},
                          (("A-1", "A-2", "A-3"),))
    assert index.entries({"A-2"}) == {"users/a.yaml": frozenset({"A-1", "A-3"}), "users/b.yaml": frozenset({"A-2"})}
    assert index.entries({"B-1"}) == {"users/b.yaml": frozenset({"B-1"})}
    assert index.entries({"B-1", "C-9"}) is None  # not declared where the plan found everyone


def test_namesake_groups_are_what_account_names_depend_on(tmp_path):
    import yaml
    from conftest import ENTITLEMENTS, UNITS
    from conftest import person as declared

    from reconciler.desired.load import load_desired_state
    from reconciler.desired.naming import assign_account_names, namesake_groups

    root = tmp_path / "desired_state"
    (root / "users").mkdir(parents=True)
    (root / "units.yaml").write_text(yaml.safe_dump({"units": UNITS}, allow_unicode=True), encoding="utf-8")
    (root / "entitlements.yaml").write_text(yaml.safe_dump({"entitlements": ENTITLEMENTS}, allow_unicode=True),
                                            encoding="utf-8")
    people = [declared("SSM-000001"),
              declared("SSM-000002", curp=None, extension="425", account={"cn": "Ñúñez O'Brien, José (2)"}),
              declared("SSM-000003", curp=None, given_names="Otro", extension="426")]
    (root / "users" / "hg.yaml").write_text(yaml.safe_dump({"unit": "HG-CUERNAVACA", "people": people},
                                                           allow_unicode=True), encoding="utf-8")
    state = load_desired_state(root)
    groups = [sorted(p.employee_key for p in g) for g in namesake_groups(state.people)]
    assert groups == [["SSM-000001", "SSM-000002"]]
    for group in namesake_groups(state.people):  # each group's names, alone, are the full load's
        assert {k: state.account_names[k] for k in (p.employee_key for p in group)} == assign_account_names(group)[0]


def test_a_plan_asks_a_directory_only_when_it_may_remember_the_inputs_and_forgets_on_request(tmp_path, monkeypatch):
    """`remembers` reads no directory: a plan waits for the targets to open before loading the
    YAML only when one of them may hold a memory of its inputs; `unsettle` forgets it."""
    from reconciler.providers.ad import settled as ad_settled
    from reconciler.providers.ad import snapshot
    from reconciler.providers.ad.provider import ADProvider
    from reconciler.providers.ad.snapshot import Snapshot, Watermark

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("RECONCILER_SCHEMA_CACHE", raising=False)
    raw = {"kind": "active_directory", "host": "dc.example", "base_dn": "DC=salud,DC=lab", "upn_suffix": "salud.lab",
           "ous": {"people": "OU=Personal,DC=salud,DC=lab", "groups": "OU=Grupos,DC=salud,DC=lab",
                   "bajas": "OU=Bajas,DC=salud,DC=lab"},
           "bind_dn": "svc@salud.lab", "bind_password": {"file": "/dev/null"}}
    target = ADTarget.build("ad", {**raw, "delta_read_hours": 24})
    without = ADTarget.build("ad", raw)
    assert not ADProvider.remembers(target, "inputs-1")  # nothing remembered yet
    read = Snapshot(snapshot.key_of(target), Watermark("CN=NTDS", "abc", 10), 0.0,
                    {"g1": ("CN=Ana,OU=HG,OU=Personal,DC=salud,DC=lab",
                            {"employeeID": ["SSM-000001"], "adminDescription": ["reconciler applied=x"],
                             "memberOf": ["CN=GG-Internet,OU=Grupos,DC=salud,DC=lab"]})},
                    {"g9": "CN=GG-Internet,OU=Grupos,DC=salud,DC=lab"})
    ad_settled.record(target, read, {}, "inputs-1")
    assert ADProvider.remembers(target, "inputs-1")
    assert not ADProvider.remembers(target, "inputs-2")  # another plan's inputs
    assert not ADProvider.remembers(without, "inputs-1")  # no delta reads: never asked
    kept = ad_settled.load(target, snapshot.key_of(target), "inputs-1")
    detail = ad_settled.load_detail(target, kept)
    assert (detail.guids, detail.keys, detail.dns, detail.marked) == \
        (["g1"], ["SSM-000001"], ["cn=ana,ou=hg,ou=personal,dc=salud,dc=lab"], "1")
    assert detail.groups == {"g9": ("CN=GG-Internet,OU=Grupos,DC=salud,DC=lab", [0])}
    assert detail.members("g9") == frozenset({"g1"}) and detail.members("g0") == frozenset()
    assert detail.shared == frozenset()
    ad_settled.forget(target)
    assert not ADProvider.remembers(target, "inputs-1")
    assert ad_settled.load(target, snapshot.key_of(target), "inputs-1") is None


@pytest.mark.parametrize("damage", [
    {"groups": {"g9": ["CN=GG-Internet,OU=Grupos,DC=salud,DC=lab", [-1]]}},  # Python would read it from the end
    {"groups": {"g9": ["CN=GG-Internet,OU=Grupos,DC=salud,DC=lab", [2]]}},
    {"groups": {"g9": ["CN=GG-Internet,OU=Grupos,DC=salud,DC=lab", ["0"]]}},
    {"groups": {"g9": ["CN=GG-Internet,OU=Grupos,DC=salud,DC=lab", [True]]}},
    {"groups": {"g9": ["CN=GG-Internet,OU=Grupos,DC=salud,DC=lab"]}},
    {"marked": "12"}, {"marked": "2 "}, {"keys": ["SSM-000001"]}, {"guids": ["g1", "g1"]},
    {"dns": [["cn=ana"], "x"]}, {"nonce": "another memory's"}, {"format": 3},
    # Two accounts whose DNs casefold alike (Strauß, Strauss): members could not be told apart.
    {"dns": ["cn=strauss,ou=hg,ou=personal,dc=salud,dc=lab"] * 2},
])
def test_a_damaged_detail_is_never_used(tmp_path, monkeypatch, damage):
    """Whatever a detail holds that its writer could not have written, its memory names no key:
    the plan is a normal one (None), never a crash and never another account's key."""
    import json

    from reconciler.providers.ad import settled as ad_settled
    from reconciler.providers.ad import snapshot
    from reconciler.providers.ad.snapshot import Snapshot, Watermark

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    target = ADTarget.build("ad", {"kind": "active_directory", "host": "dc.example", "base_dn": "DC=salud,DC=lab",
                                   "upn_suffix": "salud.lab", "bind_dn": "svc@salud.lab",
                                   "bind_password": {"file": "/dev/null"}, "delta_read_hours": 24,
                                   "ous": {"people": "OU=Personal,DC=salud,DC=lab", "groups": "OU=Grupos,DC=salud,DC=lab",
                                           "bajas": "OU=Bajas,DC=salud,DC=lab"}})
    entries = {g: (f"CN={g},OU=HG,OU=Personal,DC=salud,DC=lab",
                   {"employeeID": [f"SSM-00000{i}"], "memberOf": ["CN=GG-Internet,OU=Grupos,DC=salud,DC=lab"]})
               for i, g in enumerate(["g1", "g2"], 1)}
    read = Snapshot(snapshot.key_of(target), Watermark("CN=NTDS", "abc", 10), 0.0, entries,
                    {"g9": "CN=GG-Internet,OU=Grupos,DC=salud,DC=lab"})
    ad_settled.record(target, read, {}, "inputs-1")
    kept = ad_settled.load(target, snapshot.key_of(target), "inputs-1")
    path = ad_settled.path_of(target, kept.key, ad_settled.DETAIL)
    good = json.loads(path.read_text(encoding="utf-8"))
    assert ad_settled.load_detail(target, kept).members("g9") == frozenset({"g1", "g2"})
    path.write_text(json.dumps({**good, **damage}), encoding="utf-8")
    detail = ad_settled.load_detail(target, kept)
    assert detail is None or detail.members("g9") is None


def test_a_damaged_index_of_people_is_never_used(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    which = settled.selection("the inventory's digest", ["ad-lab"])
    assert settled.remember(which, "inputs-1", settled.Kept((), ()), settled.Index({"A-1": "users/a.yaml"}, (("A-1",),)))
    [path] = (tmp_path / "reconciler" / "plans").glob("*.keys.json")
    good = json.loads(path.read_text(encoding="utf-8"))
    assert settled.recall_index(which, "inputs-1") == settled.Index({"A-1": "users/a.yaml"}, (("A-1",),))
    for damaged in ("[" * 100_000 + "]" * 100_000, json.dumps({**good, "namesakes": "ab"}),
                    json.dumps({**good, "index": [["A-1", "users/a.yaml"]]}), json.dumps({**good, "index": {"A-1": 1}})):
        path.write_text(damaged, encoding="utf-8")
        assert settled.recall_index(which, "inputs-1") is None


def test_a_pipe_in_place_of_a_directory_memory_never_holds_a_plan_up(tmp_path, monkeypatch):
    """Asking whether a memory may exist reads through the cache's trust gate, and a pipe put
    in its place is no regular file: the answer is no, at once."""
    import os

    from reconciler.providers.ad import settled as ad_settled
    from reconciler.providers.ad.provider import ADProvider

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("RECONCILER_SCHEMA_CACHE", raising=False)
    target = ADTarget.build("ad", {
        "kind": "active_directory", "host": "dc.example", "base_dn": "DC=salud,DC=lab", "upn_suffix": "salud.lab",
        "ous": {"people": "OU=Personal,DC=salud,DC=lab", "groups": "OU=Grupos,DC=salud,DC=lab",
                "bajas": "OU=Bajas,DC=salud,DC=lab"},
        "bind_dn": "svc@salud.lab", "bind_password": {"file": "/dev/null"}, "delta_read_hours": 24})
    from reconciler.providers.ad import snapshot

    path = ad_settled.path_of(target, snapshot.key_of(target))
    path.parent.mkdir(parents=True, mode=0o700)
    os.mkfifo(path, 0o600)
    assert not ADProvider.remembers(target, "inputs-1")
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text('{"format":2,"key":"k","inputs":"inputs-1"}', encoding="utf-8")
    assert not ADProvider.remembers(target, "inputs-1")  # a link is never followed


def test_a_memory_is_found_again_whatever_path_the_inventory_is_read_from(tmp_path):
    """An inventory kept in the repository is read from a new temporary file on every run:
    its memory is chosen by content and targets, not by the file's path."""
    one, other = tmp_path / "a" / "inventory.yaml", tmp_path / "b" / "copy.yaml"
    for path in (one, other):
        path.parent.mkdir()
        path.write_text("targets: {ad: {}}\n", encoding="utf-8")
    digest = settled.file_digest
    assert settled.selection(digest(one), ["ad"]) == settled.selection(digest(other), ["ad"])
    assert settled.selection(digest(one), ["ad"]) != settled.selection(digest(one), ["ad", "correo"])
    other.write_text("targets: {ad: {}, correo: {}}\n", encoding="utf-8")
    assert settled.selection(digest(one), ["ad"]) != settled.selection(digest(other), ["ad"])


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e300", "-1", '"x"'])
def test_a_time_no_clock_gives_is_damage_in_every_cache(value):
    import json

    from reconciler.desired.schemacache import cached_time

    with pytest.raises((ValueError, TypeError)):
        cached_time(json.loads(f"[{value}]")[0])
    assert cached_time(1796365384.3) == 1796365384.3


def test_group_members_are_never_matched_to_an_account_another_casefolds_like(monkeypatch):
    """Members are matched by casefolded DN.  Samba holds `CN=Strauß` and `CN=Strauss` apart,
    Python's casefold does not: an account written since whose DN now casefolds like another
    account's makes the memory unable to tell which of them a group lists, so it names no key
    (a normal plan), never the wrong one or none."""
    from reconciler.providers.ad import delta
    from reconciler.providers.ad import settled as ad_settled
    from reconciler.providers.ad.delta import Kind, Written

    people = "OU=Personal,DC=salud,DC=lab"
    group = "CN=GG-Admins,OU=Grupos,DC=salud,DC=lab"
    detail = ad_settled.Detail(["a0", "a1"], ["E1", "E2"], [f"cn=strauss,{people}".casefold(),
                                                             f"cn=ana,{people}".casefold()], "11", frozenset(),
                               {"g": (group, [0])})
    target = ADTarget.build("ad", {"kind": "active_directory", "host": "dc.example", "base_dn": "DC=salud,DC=lab",
                                   "upn_suffix": "salud.lab", "bind_dn": "svc@salud.lab",
                                   "bind_password": {"file": "/dev/null"},
                                   "ous": {"people": people, "groups": "OU=Grupos,DC=salud,DC=lab",
                                           "bajas": "OU=Bajas,DC=salud,DC=lab"}})
    marked = {"employeeID": ["E2"], "adminDescription": ["reconciler applied=x"]}
    renamed = Written("a1", f"CN=Strauß,{people}", marked, Kind.PERSON, False)  # a1 renamed by hand
    monkeypatch.setattr(delta, "members", lambda conn, dn: [f"CN=Strauß,{people}"])  # a0 out, a1 in
    assert ad_settled._keys_of(None, target, detail, {"a1": renamed}, {"g": group}) is None
    # The same edit with a DN nobody else casefolds like names both keys.
    renamed = Written("a1", f"CN=Ana María,{people}", marked, Kind.PERSON, False)
    monkeypatch.setattr(delta, "members", lambda conn, dn: [f"CN=Ana María,{people}"])
    assert ad_settled._keys_of(None, target, detail, {"a1": renamed}, {"g": group}) == frozenset({"E1", "E2"})


def test_a_settled_plan_imports_no_loader_review_or_apply():
    """Most of a settled plan's fraction of a second is the interpreter importing (README,
    "Scale"): the command, the inventory's kinds and the providers that prove settled plans must
    not bring in what only loading the desired state, reviewing approvals or applying needs."""
    import subprocess
    import sys

    needed = ["reconciler.cli.reconcile", "reconciler.providers.ad.provider", "reconciler.providers.mail.provider",
              "reconciler.providers.sip.provider", "reconciler.providers.nftables.target"]
    loaded = subprocess.run([sys.executable, "-c", f"import sys; import {', '.join(needed)}; print(*sys.modules)"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert set(needed) <= set(loaded)
    not_needed = {"reconciler.desired.load", "reconciler.desired.model", "reconciler.desired.entries",
                  "reconciler.desired.assets", "reconciler.approval.review", "reconciler.approval.solicitudes",
                  "reconciler.providers.ad.apply", "reconciler.providers.ad.existing", "reconciler.providers.found",
                  "reconciler.run.incremental", "reconciler.providers.verify"}
    assert not not_needed & set(loaded)
