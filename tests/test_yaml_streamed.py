"""Files built from libyaml's events as they are parsed (yamlfile._streamed) give exactly what
the composed nodes give (yamlfile._composed): the same data, or the same error with the same
line, for well-formed, damaged and hostile YAML alike.  The streamed path holds a fraction of
the memory (the nodes of a file of 100,000 phone lines took 840 MB); nothing else may differ."""
from __future__ import annotations

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.desired import yamlfile


def typed(value):
    """`value` compared strictly: types, and the order of keys (== holds 1, 1.0 and True alike)."""
    if isinstance(value, dict):
        return "dict", [(typed(k), typed(v)) for k, v in value.items()]
    if isinstance(value, list):
        return "list", [typed(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return "set", sorted(repr(typed(v)) for v in value)
    return type(value).__name__, repr(value)


def outcome(load, text: str):
    """What a loader makes of `text`: ("ok", data) or the error as a reader of it would see it."""
    try:
        return "ok", typed(load(text))
    except Exception as exc:  # noqa: BLE001 - the error itself is the outcome compared
        return ("error", type(exc).__name__, str(exc), getattr(exc, "line", None), getattr(exc, "first_line", None))


def same(text: str) -> None:
    assert outcome(yamlfile.fast_load, text) == outcome(yamlfile._composed, text), text


scalars = st.one_of(
    st.text(max_size=12), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False),
    st.sampled_from(["2025-03-06", "0x1f", "0o17", "1_000", "yes", "No", "~", "null", ".inf", "-", "'", "#", ": ",
                     "Ñúñez O'Gorman", "SSM-000012", "100001", "1e3", "=1+1", "a\tb", "<<", "?"]))
keys = st.one_of(st.text(min_size=1, max_size=8), st.integers(-3, 3), st.booleans(),
                 st.sampled_from(["people", "unit", "1", "true", "null", "<<", "a b", "employee_key"]))
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                         max_leaves=20)
# Raw YAML put anywhere in a dumped document: tags, anchors (no alias: a `*` takes the composed
# path anyway), merge and complex keys, flow damage, another document, directives, tabs.
FRAGMENTS = ["&a ", "&a x\n", "!!int ", "!!binary ", "!!set ", "!!str ", "!foo ", "!!float ", "!!bool ", "<<: ",
             "<<: {k: 1}\n", "? ", "? [a]\n: 1\n", "---\n", "...\n", "%YAML 1.1\n", "[", "]", "{", "}", ": ", "- ",
             "\t", "a: 1\n", "a: 1\na: 2\n", "x: " + "9" * 1200 + "\n", "[" * 70, "'", '"', "|\n", ">-\n", "#", ",",
             "\n  ", "!!null ", "!!timestamp ", "&b [1]\n", "\u00a0", "\x00", "\ufeff"]


@st.composite
def texts(draw) -> str:
    text = yaml.safe_dump(draw(documents), allow_unicode=draw(st.booleans()),
                          default_flow_style=draw(st.sampled_from([False, True, None])), width=draw(st.integers(8, 80)))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(FRAGMENTS)) + text[at:]
    return text


@settings(max_examples=1500, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts())
@example("a: 1\n---\nb: 2\n")
@example("a: !!int q\n---\nx\n")  # an error while building, then a second document: the second one is said
@example("a: !!int q\nb: &y 1\nc: &y 2\n")  # then an anchor defined twice: that is said
@example("a: 1\na: 2\nb: [\n")  # a key written twice, then a syntax error: the syntax error is said
@example("a:\n b:\n  c: [1, 2, {d: e}]\n")
@example("<<: {a: 1}\nb: 2\n")
@example("? [a]\n: 1\n")
@example("[" * 70 + "]" * 70)
@example("1: a\n1: b\n")
@example("")
@example("# only a comment\n")
@example("---\n")
@example("!!seq x: 1\n")  # a key Python cannot hold: a problem on both paths, never a crash
@example("a: 1\nb: 1.0\nc: true\nd: 0o17\n")
def test_streamed_equals_composed(text: str) -> None:
    same(text)


def test_the_streamed_path_is_the_one_taken(monkeypatch) -> None:
    """Without this, the property above could compare the composed path with itself."""
    monkeypatch.setattr(yamlfile, "_composed", lambda text: (_ for _ in ()).throw(AssertionError("composed")))
    assert yamlfile.fast_load("people:\n- employee_key: SSM-1\n  quota: 10\n") == \
        {"people": [{"employee_key": "SSM-1", "quota": 10}]}
