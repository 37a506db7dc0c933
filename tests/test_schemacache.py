"""The compiled-schema cache: used when it is ours, rebuilt when it is not, never required."""
from __future__ import annotations

import json
import os

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.desired import schemacache

SCHEMA = {"type": "object", "properties": {"folio": {"type": "string", "pattern": "^[A-Z]+/[0-9]+$"}},
          "required": ["folio"]}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "reconciler" / "schemas"


def check(validate, data) -> bool:
    try:
        validate(data)
        return True
    except fastjsonschema.JsonSchemaException:
        return False


def test_a_schema_is_compiled_once_and_validates_the_same_from_the_cache(cache):
    first = schemacache.compiled(SCHEMA, detailed=False)
    [entry] = cache.iterdir()
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    again = schemacache.compiled(SCHEMA, detailed=False)
    assert [entry] == list(cache.iterdir())
    for validate in (first, again):
        assert check(validate, {"folio": "SSM/00123"})
        assert not check(validate, {"folio": "SSM/00123\n"})  # what `$` alone would let through
        assert not check(validate, {})


def test_a_corrupt_entry_is_compiled_again(cache):
    schemacache.compiled(SCHEMA, detailed=False)
    [entry] = cache.iterdir()
    entry.write_bytes(b"\x00not bytecode")
    assert check(schemacache.compiled(SCHEMA, detailed=False), {"folio": "A/1"})


def test_an_entry_others_can_write_is_not_used(cache):
    """A cache entry someone else could have written is never executed."""
    schemacache.compiled(SCHEMA, detailed=False)
    [entry] = cache.iterdir()
    poisoned = compile("def validate(data):\n    return data\n", "<poison>", "exec")
    import marshal
    entry.write_bytes(marshal.dumps(poisoned))
    os.chmod(entry, 0o666)
    validate = schemacache.compiled(SCHEMA, detailed=False)
    assert not check(validate, {})  # the real schema, compiled again; the accept-all one was ignored
    os.chmod(entry, 0o600)
    os.chmod(cache, 0o777)
    assert not check(schemacache.compiled(SCHEMA, detailed=False), {})


def test_a_cache_that_cannot_be_written_only_costs_time(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert check(schemacache.compiled(SCHEMA, detailed=False), {"folio": "A/1"})


def test_a_cache_inside_a_git_work_tree_is_never_used(tmp_path, monkeypatch):
    """A pull request could commit a compiled schema there (XDG_CACHE_HOME=$CI_PROJECT_DIR/.cache):
    once checked out it would be the user's own file.  Such a cache is not read or written."""
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(checkout / ".cache"))
    assert schemacache.cache_dir() is None
    planted = checkout / ".cache" / "reconciler" / "schemas" / f"{schemacache._key(SCHEMA, False)}.bytecode"
    planted.parent.mkdir(parents=True)
    import marshal
    planted.write_bytes(marshal.dumps(compile("def validate(data):\n    return data\n", "<poison>", "exec")))
    os.chmod(planted, 0o600)
    os.chmod(planted.parent, 0o700)
    assert not check(schemacache.compiled(SCHEMA, detailed=False), {})  # the real schema


def test_a_relative_cache_home_is_ignored_and_the_cache_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", ".cache")  # relative: the XDG specification says to ignore it
    assert schemacache.cache_dir() == tmp_path / ".cache" / "reconciler" / "schemas"
    monkeypatch.setenv("RECONCILER_SCHEMA_CACHE", "off")
    assert schemacache.cache_dir() is None
    assert check(schemacache.compiled(SCHEMA, detailed=False), {"folio": "A/1"})


def test_no_home_means_no_cache_not_a_crash(monkeypatch):
    import pathlib

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(pathlib.Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    assert schemacache.cache_dir() is None
    assert check(schemacache.compiled(SCHEMA, detailed=False), {"folio": "A/1"})


@settings(max_examples=200, derandomize=True, deadline=None)
@given(head=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8), max_size=4),
       items=st.lists(st.lists(st.text(max_size=8) | st.integers(), max_size=3), max_size=30),
       batch=st.integers(1, 7))
def test_a_list_written_in_pieces_reads_as_one_document(head, items, batch):
    text = b"".join(schemacache.json_pieces(head, "entries", iter(items), batch=batch)).decode("utf-8", "surrogatepass")
    assert json.loads(text) == {**head, "entries": items}


def test_pieces_that_fail_leave_the_old_file_whole_and_no_temporary(tmp_path):
    path = tmp_path / "kept.json"
    assert schemacache.write_private(path, b'{"old": true}')

    def pieces():
        yield b'{"new": ['
        raise ValueError("a value JSON cannot write")

    with pytest.raises(ValueError):
        schemacache.write_private(path, pieces())
    assert path.read_bytes() == b'{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["kept.json"]
    assert schemacache.write_private(path, iter([b'{"new": ', b"[1]}"]))
    assert json.loads(path.read_bytes()) == {"new": [1]}
