"""Distinguished names: the fast splitter is the byte-by-byte reference on any text, and
escaping round-trips through it."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import dn as dnlib

# DN-shaped text: the characters that matter (separators, escapes, hex digits, spaces) and the
# ones names carry.
PIECES = st.sampled_from([",", "+", "=", "\\", "\\,", "\\2C", "\\C3\\B1", "\\4", " ", "#", "CN", "OU", "dc",
                          "Ñúñez", "O'Brien", "José", "ü", "a", "F0", "\x00", '"', ";"])


@settings(max_examples=3000)
@given(st.lists(PIECES, max_size=14).map("".join))
def test_the_fast_split_is_the_reference_on_dn_shaped_text(text):
    assert dnlib.split(text) == dnlib._split_bytes(text)


@given(st.text(max_size=40))
def test_the_fast_split_is_the_reference_on_any_text(text):
    assert dnlib.split(text) == dnlib._split_bytes(text)


@given(st.text(min_size=1, max_size=30))
def test_an_escaped_value_splits_back_to_itself(value):
    value = value.strip() or "x"
    dn = dnlib.child("CN", value, "OU=Personal,DC=salud,DC=lab")
    assert dnlib.split(dn)[0] == ("cn", value)
    assert dnlib.escape_value(value) == _escape_slow(value)


def _escape_slow(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;=' or (ch == "#" and i == 0) or (ch == " " and (i == 0 or i == len(value) - 1)):
            out.append("\\" + ch)
        elif ch == "\x00":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


@pytest.mark.parametrize("dn, parts", [
    (r"CN=Ñúñez O'Brien\, José,OU=HG,DC=salud,DC=lab",
     [("cn", "Ñúñez O'Brien, José"), ("ou", "HG"), ("dc", "salud"), ("dc", "lab")]),
    (r"CN=Pe\C3\B1a,DC=x", [("cn", "Peña"), ("dc", "x")]),
    ("", []), ("a=b,", [("a", "b")]), ("a=b,,c=d", [("a", "b"), ("", ""), ("c", "d")]),
])
def test_split_examples(dn, parts):
    assert dnlib.split(dn) == parts
