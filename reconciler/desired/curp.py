"""CURP (Clave Única de Registro de Población): structure, birth date and check digit.

Layout (RENAPO): 4 letters from the names, birth date YYMMDD, sex (H, M, or X), the two-letter
state of birth (NE for born abroad), 3 internal consonants, a homoclave character that
distinguishes births before (digit) and after (letter) 2000, and a check digit.
"""
from __future__ import annotations

import datetime as _dt
import re

from reconciler.desired.checks import shown
from reconciler.i18n import _

_STATES = ("AS BC BS CC CL CM CS CH DF DG GT GR HG JC MC MN MS NT NL OC PL QT QR SP SL SR TC "  # state codes: not for people
           "TS TL VZ YN ZS NE").split()
_PATTERN = re.compile(
    r"^[A-Z][AEIOUX][A-Z]{2}(\d{2})(\d{2})(\d{2})[HMX]([A-Z]{2})[B-DF-HJ-NP-TV-Z]{3}([A-Z\d])(\d)$"
)
_ALPHABET = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"


def check_digit(first17: str) -> int:
    total = sum(_ALPHABET.index(ch) * (18 - i) for i, ch in enumerate(first17))
    return (10 - total % 10) % 10


def curp_problem(curp: str) -> str | None:
    """None when the CURP is valid, otherwise what is wrong with it."""
    match = _PATTERN.match(curp)
    if not match:  # of any length (the schema says only "text"): shown cut short
        return _("{value} is not a CURP (18 characters: 4 letters, birth date, sex H/M/X, state, 3 consonants, "
                 "2 characters)", value=shown(curp))
    yy, mm, dd, state, homoclave, digit = match.groups()
    if state not in _STATES:
        return _("{curp!r} has an unknown state of birth {state!r}", curp=curp, state=state)
    century = 1900 if homoclave.isdigit() else 2000
    try:
        _dt.date(century + int(yy), int(mm), int(dd))
    except ValueError:
        return _("{curp!r} has an impossible birth date {yy}-{mm}-{dd}", curp=curp, yy=yy, mm=mm, dd=dd)
    expected = check_digit(curp[:17])
    if int(digit) != expected:
        return _("{curp!r} has a wrong check digit (expected {expected})", curp=curp, expected=expected)
    return None
