"""The parse cache (reconciler/desired/parsecache.py): unit files read before are not parsed
again, and an entry is never trusted unless it is exactly this program's reading of exactly that
file, kept by this user alone."""
from __future__ import annotations

import os
import pickle
import threading

import pytest
from conftest import person

from reconciler.desired import parsecache
from reconciler.desired.load import load_desired_state
from reconciler.desired.source import at_ref
from reconciler.errors import ValidationFailed

UNIT = "HG-CUERNAVACA"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RECONCILER_SCHEMA_CACHE", raising=False)
    return tmp_path / "cache" / "reconciler" / "parsed"


def _people(state) -> list:
    return [(p, p.source) for p in state.people]


def _two_people(repo):
    repo.add(UNIT, person("SSM-000001"), person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    repo.squash_merge("Altas")


def test_a_cached_reading_is_the_reading(repo, cache):
    _two_people(repo)
    first = load_desired_state(at_ref(repo.root).files)
    assert len(list(cache.iterdir())) == 1  # one unit file, kept
    second = load_desired_state(at_ref(repo.root).files)
    assert _people(second) == _people(first) and dict(second.account_names) == dict(first.account_names)
    # The same file on disk is another reading (its sources say desired_state/, not the commit).
    on_disk = load_desired_state(repo.root / "desired_state")
    assert [p for p, _ in _people(on_disk)] == [p for p, _ in _people(first)]


def _planted(repo, cache, people) -> None:
    """An entry under the key the loader will look for, holding other people."""
    files = at_ref(repo.root).files
    rel = f"users/{UNIT.lower()}.yaml"
    state = load_desired_state(files)
    entry = parsecache.key(rel, f"{files.label}/{rel}", files.read_text(rel), state.units, state.entitlements)
    forged = [(people, 0)]
    (cache / entry).write_bytes(pickle.dumps((entry, forged, []), protocol=pickle.HIGHEST_PROTOCOL))
    return cache / entry


@pytest.mark.parametrize("how", ["foreign owner", "group-writable", "garbage", "another entry's name"])
def test_an_entry_not_this_users_own_or_not_this_files_is_never_used(repo, cache, how):
    _two_people(repo)
    load_desired_state(at_ref(repo.root).files)
    impostor = load_desired_state(at_ref(repo.root).files).people[1]  # Zoé, said to be the only one
    path = _planted(repo, cache, impostor)
    if how == "foreign owner":
        os.chown(path, 12345, 12345)
    elif how == "group-writable":
        os.chmod(path, 0o664)
    elif how == "garbage":
        path.write_bytes(b"\x80\x05not a pickle")
    else:
        path.write_bytes(pickle.dumps(("0" * 64, [(impostor, 0)], [])))
    state = load_desired_state(at_ref(repo.root).files)
    assert [p.employee_key for p in state.people] == ["SSM-000001", "SSM-000002"]


def test_a_file_with_a_problem_is_not_kept_and_a_cross_file_problem_names_its_line(repo, cache):
    _two_people(repo)
    load_desired_state(at_ref(repo.root).files)
    repo.add("HG-CUAUTLA", person("SSM-000001", curp=None))  # the same key in another unit's file
    repo.squash_merge("Otra vez")
    with pytest.raises(ValidationFailed) as raised:
        load_desired_state(at_ref(repo.root).files)
    said = [str(p) for p in raised.value.problems]
    assert any("hg-cuautla.yaml:" in s and "already declared at" in s and "hg-cuernavaca.yaml:" in s for s in said), said


def test_concurrent_runs_never_read_half_an_entry(repo, cache):
    _two_people(repo)
    state = load_desired_state(at_ref(repo.root).files)
    people = [(p, i) for i, p in enumerate(state.people)] * 2000  # a large entry
    entry = "e" * 64
    seen = []

    def write():
        for _ in range(20):
            parsecache.put(entry, people, [])

    def read():
        for _ in range(200):
            found = parsecache.get(entry)
            seen.append(found is None or len(found[1]) == len(people))

    threads = [threading.Thread(target=f) for f in (write, write, read, read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(seen) and parsecache.get(entry) is not None
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]


def test_turned_off_or_inside_a_work_tree_nothing_is_kept(repo, cache, monkeypatch, tmp_path):
    _two_people(repo)
    monkeypatch.setenv("RECONCILER_SCHEMA_CACHE", "off")
    load_desired_state(at_ref(repo.root).files)
    assert not cache.exists()
    monkeypatch.delenv("RECONCILER_SCHEMA_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(repo.root / ".cache"))  # a pull request could commit entries there
    load_desired_state(at_ref(repo.root).files)
    assert not (repo.root / ".cache").exists()


def test_only_the_entries_used_most_recently_are_kept(repo, cache, monkeypatch):
    monkeypatch.setattr(parsecache, "KEPT", 3)
    _two_people(repo)
    state = load_desired_state(at_ref(repo.root).files)
    first = next(cache.iterdir()).name
    for n in range(5):
        parsecache.put(f"{n:064d}", [(state.people[0], 0)], [])
        os.utime(cache / first)  # the first one keeps being used
    assert len(list(cache.iterdir())) == 3 and (cache / first).exists()
