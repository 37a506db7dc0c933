"""A plan of some people reads their entries, and what provenance asks of their files, from the
parse cache's reading of each whole file (parsecache.get_some, entries.Outline), never from the
files: the same people, sources and landings as reading the files, and a kept reading that is
damaged, forged or not the runner's own is never used."""
from __future__ import annotations

import json
import os

import pytest
import yaml
from conftest import UNTRUSTED, person, two_long_files, untrust
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_entries import people as people_lists

from reconciler.approval.solicitudes import History
from reconciler.desired import entries, files, parsecache
from reconciler.desired.load import load_desired_state
from reconciler.desired.source import at_ref


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RECONCILER_SCHEMA_CACHE", raising=False)
    return tmp_path / "cache" / "reconciler" / "parsed"


def _people_file(people: list[dict], indent: int) -> str:
    head, _, body = yaml.safe_dump({"unit": "HG-CUERNAVACA", "people": people}, allow_unicode=True,
                                   sort_keys=False).partition("people:\n")
    body = "\n".join(f"# baja pendiente\n{line}" if line.startswith("- ") else line for line in body.split("\n"))
    return f"{head}people:\n" + "\n".join(" " * indent + line if line else line for line in body.split("\n"))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=people_lists.filter(bool), indent=st.sampled_from([0, 2, 4]), keep=st.data())
def test_a_kept_reading_gives_back_the_people_asked_for_and_their_lines(cache, people, indent, keep):
    """Entries with Ñ, á and ü (more bytes than characters) and comments between them: each
    person asked for comes back with their index, and the outline's lines are the scanner's."""
    text = _people_file(people, indent)
    split = entries.split_entries(text)
    outline = entries.outline(text, split)
    assert [outline.span(i) for i in range(len(split))] == [entries.lines_of(text, e) for e in split]
    assert outline.unit_line == text.split("\n").index("unit: HG-CUERNAVACA") + 1
    assert outline.newlines == text.count("\n") and outline.span(len(split)) is None and outline.span(-1) is None
    items = yaml.safe_load(text)["people"]
    parsecache.put("e" * 64, "HG-CUERNAVACA", list(enumerate(items)), [(0, {"address": "a@b"})], outline)
    wanted = frozenset(keep.draw(st.lists(st.sampled_from([p["employee_key"] for p in people]), unique=True)))
    reading, found = parsecache.get_some("e" * 64, wanted)
    assert reading["people"] == [[i, item] for i, item in enumerate(items) if item["employee_key"] in wanted]
    assert found == outline and reading["shared"] == [[0, {"address": "a@b"}]] and reading["unit"] == "HG-CUERNAVACA"
    assert parsecache.get("e" * 64)["people"] == [[i, item] for i, item in enumerate(items)]


def test_a_key_declared_twice_in_a_file_comes_back_twice(cache):
    items = [person("SSM-000001"), person("SSM-000002"), person("SSM-000001", given_names="Otra")]
    parsecache.put("d" * 64, "HG-CUERNAVACA", list(enumerate(items)), [])
    reading, outline = parsecache.get_some("d" * 64, frozenset({"SSM-000001"}))
    assert reading["people"] == [[0, items[0]], [2, items[2]]] and outline is None


def _history(repo) -> None:
    """Two people files of 120 people; then a title changed, an entitlement taken away (a
    removed line: no blame shows it), and a baja."""
    two_long_files(repo)
    repo.find("SSM-000007")["entitlements"] = ["internet"]
    repo.squash_merge("Sin expediente")
    repo.find("SSM-000200")["status"] = "baja"
    repo.squash_merge("Baja")


ONLY = {"users/hg-cuernavaca.yaml": frozenset({"SSM-000007", "SSM-000100"}),
        "users/cs-jiutepec.yaml": frozenset({"SSM-000200", "SSM-000121"})}


def _partial(repo, reads: list) -> tuple[list, list]:
    """A partial load of ONLY, and what provenance says of each person: (people with their
    sources, [(landings, silent changes, the baja's landing)]).  Read as a new run would."""
    entries._OUTLINES.clear()
    entries._BLOB_TEXTS.clear()
    entries.split_known.cache_clear()
    source = at_ref(repo.root, "main")
    state = load_desired_state(source.files, only=ONLY)
    history = History(source.repo, source.commit)
    sources = [p.source for p in state.people]
    history.prefetch(sources)
    told = [(history.written_by(s), history.silent_changes(s), history.status_landing(s)) for s in sources]
    return [(p, p.source) for p in state.people], told


@pytest.fixture
def reads(monkeypatch) -> list:
    """The files the loader reads, and those provenance reads to find lines in them."""
    seen: list[str] = []
    read_text, text = files.CommitFiles.read_text, History._text
    monkeypatch.setattr(files.CommitFiles, "read_text", lambda self, rel: seen.append(rel) or read_text(self, rel))
    monkeypatch.setattr(History, "_text", lambda self, path: seen.append(path) or text(self, path))
    return seen


def test_a_plan_of_some_people_reads_no_people_file_and_tells_what_reading_them_tells(repo, cache, monkeypatch, reads):
    _history(repo)
    load_desired_state(at_ref(repo.root, "main").files)  # a full plan: each file's reading kept, with its outline
    reads.clear()
    kept = _partial(repo, reads)
    assert not [r for r in reads if "users/" in r], reads
    monkeypatch.setenv("RECONCILER_SCHEMA_CACHE", "off")
    read = _partial(repo, reads)
    assert kept == read
    people, told = kept
    assert [p.employee_key for p, _ in people] == ["SSM-000121", "SSM-000200", "SSM-000007", "SSM-000100"]
    by_key = {p.employee_key: t for (p, _), t in zip(people, told)}
    head = repo.git.head.commit
    assert by_key["SSM-000007"][1] == [head.parents[0].hexsha]  # the entitlement taken away: a silent change
    assert by_key["SSM-000200"][2] == head.hexsha  # the baja's landing, found by the value


FORGED = ("a place moved onto the next person", "keys swapped", "lines out of order", "lines past the end",
          "cut short", "an index that is no number", "another entry's", *UNTRUSTED)


@pytest.mark.parametrize("how", FORGED)
def test_a_damaged_or_foreign_reading_is_never_used(repo, cache, reads, how):
    """The loader then reads the file as before: the same people, each with their own lines."""
    _history(repo)
    load_desired_state(at_ref(repo.root, "main").files)
    right = _partial(repo, reads)
    files_ = at_ref(repo.root, "main").files
    state = load_desired_state(files_)
    rel = "users/hg-cuernavaca.yaml"
    path = cache / parsecache.key(rel, f"{files_.label}/{rel}", files_.identity(rel), state.units, state.entitlements)
    text = path.read_bytes()
    head, body = json.loads(text[:text.index(b"\n")]), text[text.index(b"\n") + 1:]
    if how == "a place moved onto the next person":  # SSM-000007's slice made SSM-000008's
        head["at"][6] = head["at"][7]
        head["at"][7] = head["at"][8]
    elif how == "keys swapped":
        head["keys"][6], head["keys"][7] = head["keys"][7], head["keys"][6]
    elif how == "lines out of order":
        head["outline"]["lines"][12], head["outline"]["lines"][14] = head["outline"]["lines"][14], 3
    elif how == "lines past the end":
        head["outline"]["lines"][-1] = head["outline"]["newlines"] + 5
    elif how == "cut short":
        body = body[:-20]
    elif how == "an index that is no number":
        head["index"][6] = "6"
    elif how == "another entry's":
        head["entry"] = "0" * 64
    if how not in UNTRUSTED:
        path.write_bytes(json.dumps(head, ensure_ascii=False).encode() + b"\n" + body)
    untrust(path, how)
    assert parsecache.get_some(path.name, ONLY[rel]) is None
    assert _partial(repo, reads) == right


def _land(repo, path, text: str, title: str, signed: bool) -> str:
    """Commit `text` as the file, as a squash merge whose approvers sign it, or as a push nobody approved."""
    from conftest import APPROVER_1, APPROVER_2, actor, sign_approvals, trailers

    base = repo.git.head.commit.hexsha
    path.write_text(text, encoding="utf-8")
    repo.git.git.add("-A")
    message = f"{title} (#9)\n\n{trailers(APPROVER_1, APPROVER_2)}" if signed else title
    sha = repo.git.index.commit(message, author=actor(("Mallory", "m@x.mx")), committer=actor(("Mallory", "m@x.mx")))
    if signed:
        sign_approvals(repo.git, base, sha.hexsha, (APPROVER_1, APPROVER_2))
    return sha.hexsha


@pytest.mark.parametrize("value", ['"Médico\nGeneral"', "'Médico\n  - employee_key: SSM-000009\nGeneral'",
                                   '"Médico\nunit: CS-JIUTEPEC\nGeneral"'])
def test_a_value_that_goes_on_at_the_left_never_hides_a_later_grant_from_provenance(repo, cache, value):
    """YAML lets a quoted or flow value go on over lines at any indentation.  An approved
    request writes one whose next line starts at the left edge (where the scanner would end the
    list, or start an item); then an unapproved push grants vpn below it.  Provenance must
    blame the grant's line on the push, as YAML places the person's lines, never leave it to
    nobody's lines or credit it to the approved request."""
    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None), person("SSM-000002", curp=None, given_names="Ana"))
    repo.squash_merge("Altas")
    path = repo.root / "desired_state" / "users" / "hg-cuernavaca.yaml"
    text = path.read_text(encoding="utf-8")
    title = text.rindex("title: Médico General")
    _land(repo, path, text[:title] + "title: " + value + text[title + len("title: Médico General"):], "Título", True)
    text = path.read_text(encoding="utf-8")
    assert entries.split_entries(text) is None  # not the scanner's to place
    grant = text.rindex("- internet")
    push = _land(repo, path, text[:grant] + "- internet\n  - vpn" + text[grant + len("- internet"):], "vpn", False)
    text = path.read_text(encoding="utf-8")
    gone = text.rindex("  - internet\n")  # then a line taken away: no blame shows it
    taken = _land(repo, path, text[:gone] + text[gone + len("  - internet\n"):], "sin internet", False)
    load_desired_state(at_ref(repo.root, "main").files)  # a full plan keeps the reading (no outline)
    for cached in (True, False):
        entries._OUTLINES.clear()
        entries._BLOB_TEXTS.clear()
        entries.split_known.cache_clear()
        source = at_ref(repo.root, "main")
        state = load_desired_state(source.files, only={"users/hg-cuernavaca.yaml": frozenset({"SSM-000002"})})
        [ana] = [p for p in state.people if p.employee_key == "SSM-000002"]  # the file is read whole
        assert ana.entitlements == ("expediente_electronico", "vpn")
        assert entries.known(source.files.identity("users/hg-cuernavaca.yaml")) is None
        history = History(source.repo, source.commit)
        history.prefetch([ana.source])
        assert push in history.written_by(ana.source) and history.last_change((ana.source,)) == push, cached
        assert history.silent_changes(ana.source) == [taken], cached
        os.environ["RECONCILER_SCHEMA_CACHE"] = "off"
    del os.environ["RECONCILER_SCHEMA_CACHE"]


def test_a_file_with_no_people_is_read_back(cache):
    parsecache.put("c" * 64, "HG-CUERNAVACA", [], [(0, {"address": "a@b"})])
    assert parsecache.get("c" * 64) == {"unit": "HG-CUERNAVACA", "people": [], "shared": [[0, {"address": "a@b"}]]}
    assert parsecache.get_some("c" * 64, frozenset({"SSM-000001"}))[0]["people"] == []
