"""The parse cache (reconciler/desired/parsecache.py): unit files read before are not parsed
again, and an entry is never trusted unless it is exactly this program's reading of exactly that
file, kept by this user alone."""
from __future__ import annotations

import json
import os
import threading

import pytest
from conftest import UNTRUSTED, person, untrust

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
    assert len(_kept_files(cache)) == 1  # one unit file, kept (and what crosses files)
    second = load_desired_state(at_ref(repo.root).files)
    assert _people(second) == _people(first) and dict(second.account_names) == dict(first.account_names)
    # The same file on disk is another reading (its sources say desired_state/, not the commit).
    on_disk = load_desired_state(repo.root / "desired_state")
    assert [p for p, _ in _people(on_disk)] == [p for p, _ in _people(first)]


def _head(path: Path) -> dict:
    """A cache file's document: a unit file's reading has its head on the first line."""
    return json.loads(path.read_text(encoding="utf-8").split("\n", 1)[0])


def _kept_files(cache) -> list[Path]:
    """The entries of unit files (not those of what crosses them)."""
    return [p for p in cache.iterdir() if "keys" in _head(p)]


def _planted(repo, cache, item: dict) -> Path:
    """An entry under the key the loader will look for, holding someone else."""
    files = at_ref(repo.root).files
    rel = f"users/{UNIT.lower()}.yaml"
    state = load_desired_state(files)
    entry = parsecache.key(rel, f"{files.label}/{rel}", files.identity(rel), state.units, state.entitlements)
    parsecache.put(entry, UNIT, [(0, item)], [])
    return cache / entry


@pytest.mark.parametrize("how", ["foreign owner", "group-writable", "garbage", "another entry's name",
                                 "a link", "a linked folder", "a folder others may write"])
def test_an_entry_not_this_users_own_or_not_this_files_is_never_used(repo, cache, how, tmp_path):
    _two_people(repo)
    load_desired_state(at_ref(repo.root).files)
    impostor = person("SSM-000666", curp=None, given_names="Intruso")  # said to be the only one
    path = _planted(repo, cache, impostor)
    if how == "foreign owner":
        os.chown(path, 12345, 12345)
    elif how == "group-writable":
        os.chmod(path, 0o664)
    elif how == "garbage":
        path.write_bytes(b"\x80\x05not json")
    elif how == "another entry's name":
        parsecache.put("0" * 64, UNIT, [(0, impostor)], [])
        (cache / ("0" * 64)).replace(path)
    elif how == "a link":
        elsewhere = tmp_path / "elsewhere.json"
        path.rename(elsewhere)
        path.symlink_to(elsewhere)
    elif how == "a linked folder":  # the folder swapped for a link to one a pull request writes
        moved = tmp_path / "checkout-cache"
        cache.rename(moved)
        cache.symlink_to(moved)
    else:
        os.chmod(cache.parent, 0o777)
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
    load_desired_state(at_ref(repo.root).files)
    people = [(i, person(f"SSM-{i:06d}", curp=None)) for i in range(4000)]  # a large entry (its data, not read)
    entry = "e" * 64
    seen = []

    def write():
        for _ in range(20):
            parsecache.put(entry, UNIT, people, [])

    def read():
        for _ in range(200):
            found = parsecache.get(entry)
            seen.append(found is None or len(found["people"]) == len(people))

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


def test_a_load_keeps_what_it_used_and_the_others_used_most_recently(repo, cache, monkeypatch):
    """More unit files than KEPT: each load still finds every one of them (an LRU trimmed at
    every write would evict each before its turn)."""
    monkeypatch.setattr(parsecache, "KEPT", 1)
    for n, unit in enumerate(("HG-CUERNAVACA", "CS-JIUTEPEC", "OC-DGPE")):
        repo.add(unit, person(f"SSM-{n + 1:06d}", curp=None, given_names=("Ana", "Iñaki", "Begoña")[n]))
    repo.squash_merge("Tres unidades")
    load_desired_state(at_ref(repo.root).files)
    kept = sorted(p.name for p in cache.iterdir())
    assert len(_kept_files(cache)) == 3 and len(kept) == 4  # and the names of the three together
    for n in range(3):  # older entries of other files: only KEPT of them stay
        (cache / f"{n:064d}").write_text("{}", encoding="utf-8")
        os.utime(cache / f"{n:064d}", (1000 + n, 1000 + n))
    (cache / ".tmp-killed").write_text("", encoding="utf-8")
    os.utime(cache / ".tmp-killed", (1000, 1000))
    load_desired_state(at_ref(repo.root).files)
    assert sorted(p.name for p in cache.iterdir()) == sorted([*kept, f"{2:064d}"])


def test_what_crosses_files_is_kept_for_the_very_same_files_and_checked_again_otherwise(repo, cache, monkeypatch):
    from reconciler.desired import load

    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    repo.add("CS-JIUTEPEC", person("SSM-000002", curp=None))  # the same name: jnunezo and jnunezo2
    repo.squash_merge("Dos unidades")
    first = load_desired_state(at_ref(repo.root).files)  # parses both files
    second = load_desired_state(at_ref(repo.root).files)  # both from the cache: checks across, then kept
    calls = []
    checks = load._cross_checks
    monkeypatch.setattr(load, "_cross_checks", lambda people: calls.append(1) or checks(people))
    third = load_desired_state(at_ref(repo.root).files)
    assert calls == []  # the account names and checks of the very same files, kept
    names = lambda state: sorted(state.account_names.items())  # noqa: E731
    assert names(first) == names(second) == names(third)
    # A damaged entry, or one file changed: checked again, never a crash.
    [whole] = [p for p in cache.iterdir() if "names" in _head(p)]
    whole.write_text('{"entry": "x"}')
    load_desired_state(at_ref(repo.root).files)
    assert calls == [1]
    repo.find("SSM-000002")["given_names"] = "Ana"
    repo.squash_merge("Otro nombre")
    load_desired_state(at_ref(repo.root).files)  # the changed file parsed: checked across again
    load_desired_state(at_ref(repo.root).files)  # kept from the load before
    assert calls == [1, 1]


def test_files_with_a_problem_across_them_keep_nothing_across(repo, cache, monkeypatch):
    from reconciler.desired import load  # noqa: F401

    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    repo.add("CS-JIUTEPEC", person("SSM-000001", curp=None, given_names="Ana"))  # one key, declared twice
    repo.squash_merge("Dos veces")
    for _ in range(3):
        with pytest.raises(ValidationFailed) as failed:
            load_desired_state(at_ref(repo.root).files)
        assert ["already declared" in p.message for p in failed.value.problems] == [True]
    assert not [p for p in cache.iterdir() if "names" in _head(p)]


def test_a_committed_file_is_known_by_its_blob_and_read_only_for_a_line(repo, cache, monkeypatch):
    from reconciler.desired.files import CommitFiles

    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None), person("SSM-000002", curp=None, given_names="Ana"))
    repo.squash_merge("Dos personas")
    load_desired_state(at_ref(repo.root).files)
    reads = []
    read = CommitFiles.read_text
    monkeypatch.setattr(CommitFiles, "read_text", lambda self, rel: reads.append(rel) or read(self, rel))
    load_desired_state(at_ref(repo.root).files)
    assert not [r for r in reads if r.startswith("users/")]  # the people files: not read at all
    # A new file declares a key the kept one holds: the kept file's line is named, read for it.
    repo.add("CS-JIUTEPEC", person("SSM-000002", curp=None, given_names="Otra"))
    repo.squash_merge("Otra vez")
    with pytest.raises(ValidationFailed) as failed:
        load_desired_state(at_ref(repo.root).files)
    [problem] = failed.value.problems
    first = (repo.root / "desired_state" / "users" / "hg-cuernavaca.yaml").read_text(encoding="utf-8")
    line = first.splitlines().index("- employee_key: SSM-000002") + 1
    # The kept file comes second (files in name order): the problem is its own, at its line.
    assert (problem.file, problem.line) == ("desired_state/users/hg-cuernavaca.yaml", line)
    assert "already declared at desired_state/users/cs-jiutepec.yaml:3" in problem.message


def test_no_text_passes_for_a_blob():
    blob = "blob:" + "ab" * 20
    assert parsecache.text_identity(blob) != blob
    assert parsecache.key("users/a.yaml", "d/users/a.yaml", blob, [], []) != \
        parsecache.key("users/a.yaml", "d/users/a.yaml", parsecache.text_identity(blob), [], [])


def _three_people(repo) -> tuple:
    repo.add(UNIT, person("SSM-000001"), person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"),
             person("SSM-000003", curp=None, given_names="Iván", first_surname="O'Gorman"))
    repo.squash_merge("Altas")
    files = at_ref(repo.root).files
    rel = f"users/{UNIT.lower()}.yaml"
    return files.identity(rel), files.read_text(rel)


@pytest.mark.parametrize("kept", ["the runner's own", "damaged", "not following", "past the end", "keys swapped",
                                  "empty", "one stretched over the next", "the last dropped", "the first dropped",
                                  "another file's", *UNTRUSTED])
def test_a_kept_split_is_used_only_when_it_fits_the_file(repo, cache, monkeypatch, kept):
    """A plan of some people splits files of thousands by their blob id once; a kept split that
    is damaged, does not fit the text or is not the runner's own is split again, never used:
    it would hand one person's lines to another's load and provenance."""
    from reconciler.desired import entries

    identity, text = _three_people(repo)
    right = entries.split_entries(text)
    entries.split_known.cache_clear()  # what this process split before, by blob id
    assert entries.split_known(identity, text) == right  # split, and kept
    path = cache / parsecache.split_key(identity)
    raw = json.loads(path.read_text(encoding="utf-8"))
    forged = [list(e) for e in raw["split"]]
    if kept == "damaged":
        path.write_text(path.read_text(encoding="utf-8")[:-5], encoding="utf-8")
    elif kept == "not following":
        forged[1][1] += 1
    elif kept == "past the end":
        forged[2][2] = len(text) + 10
    elif kept == "keys swapped":
        forged[0][0], forged[1][0] = forged[1][0], forged[0][0]
    elif kept == "empty":
        forged = []
    elif kept == "one stretched over the next":  # the first person's lines run over the second's
        forged = [[forged[0][0], forged[0][1], forged[1][2]], forged[2]]
    elif kept == "the last dropped":
        forged = forged[:2]
    elif kept == "the first dropped":
        forged = forged[1:]
    elif kept == "another file's":
        path.rename(cache / parsecache.split_key("0" * 40))
        path = cache / parsecache.split_key(identity)
        path.write_text(json.dumps({"entry": "0" * 64, "split": forged}), encoding="utf-8")
    if kept in ("not following", "past the end", "keys swapped", "the runner's own", "empty",
                "one stretched over the next", "the last dropped", "the first dropped"):
        path.write_text(json.dumps({"entry": raw["entry"], "split": forged}), encoding="utf-8")
    untrust(path, kept)
    entries.split_known.cache_clear()
    calls = []
    real = entries.split_entries
    monkeypatch.setattr(entries, "split_entries", lambda t: calls.append(t) or real(t))
    assert entries.split_known(identity, text) == right
    assert bool(calls) == (kept != "the runner's own")  # only the runner's own fitting split is used
