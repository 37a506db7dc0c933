"""The compiled-schema cache: used when it is ours, rebuilt when it is not, never required."""
from __future__ import annotations

import os

import fastjsonschema
import pytest

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
