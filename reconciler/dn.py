"""Distinguished names: escaping for building them, a normal form for comparing them.

Names such as "Núñez O'Brien, José" end up in CNs, so every RDN value is escaped (RFC 4514)
and DNs read back from the directory are compared in a normal form (unescaped values,
case-folded), since the server may escape differently from us: ldap3's parse_dn rejects
the raw UTF-8 that Samba returns.
"""
from __future__ import annotations

import re
from functools import lru_cache

_SPECIAL = set(',+"\\<>;=')


_PLAIN = re.compile(r'[^,+"\\<>;=\x00]*')


def escape_value(value: str) -> str:
    if _PLAIN.fullmatch(value) and not value.startswith(("#", " ")) and not value.endswith(" "):
        return value  # nothing to escape: most names
    out = []
    for i, ch in enumerate(value):
        if ch in _SPECIAL or (ch == "#" and i == 0) or (ch == " " and (i == 0 or i == len(value) - 1)):
            out.append("\\" + ch)
        elif ch == "\x00":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def rdn(attribute: str, value: str) -> str:
    return f"{attribute}={escape_value(value)}"


def child(attribute: str, value: str, parent: str) -> str:
    return f"{rdn(attribute, value)},{parent}"


# What a DN is made of: an escape (two hex digits or one character), a separator, or a run of
# anything else.  A lone backslash at the end is itself.
_TOKEN = re.compile(r"\\(?:[0-9A-Fa-f]{2}|.)|\\|[=,+]|[^\\=,+]+", re.S)
_SEPARATORS = re.compile(r"[,+]")


def split(dn: str) -> list[tuple[str, str]]:
    """'CN=A\\, B,OU=X,DC=y' -> [('cn', 'A, B'), ('ou', 'X'), ('dc', 'y')], values unescaped.

    The same as _split_bytes, the reference (tests/test_dn.py holds them equal), by runs of text
    rather than byte by byte: a plan of 100,000 accounts splits as many DNs."""
    if "\\" not in dn:
        parts = []
        pieces = _SEPARATORS.split(dn)
        for i, piece in enumerate(pieces):
            attr, sep, value = piece.partition("=")
            if sep:
                parts.append((attr.strip().lower(), value.strip()))
            elif piece or i < len(pieces) - 1:
                parts.append(("", piece.strip()))
        return parts
    parts = []
    attr, buf = None, bytearray()
    for token in _TOKEN.findall(dn):
        if token == "=" and attr is None:
            attr, buf = buf.decode("utf-8", "replace").strip().lower(), bytearray()
        elif token in (",", "+"):
            parts.append((attr or "", buf.decode("utf-8", "replace").strip()))
            attr, buf = None, bytearray()
        elif token[0] == "\\" and len(token) == 3:
            buf.append(int(token[1:], 16))
        elif token[0] == "\\" and len(token) == 2:
            buf += token[1].encode("utf-8", "surrogatepass")
        else:
            buf += token.encode("utf-8", "surrogatepass")
    if attr is not None or buf:
        parts.append((attr or "", buf.decode("utf-8", "replace").strip()))
    return parts


def _split_bytes(dn: str) -> list[tuple[str, str]]:
    """The reference splitter, byte by byte (see split)."""
    parts: list[tuple[str, str]] = []
    attr, buf, raw = None, bytearray(), dn.encode("utf-8")
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x5C and i + 1 < len(raw):  # backslash
            nxt = raw[i + 1 : i + 3]
            try:
                if len(nxt) == 2 and all(chr(b) in "0123456789abcdefABCDEF" for b in nxt):
                    buf.append(int(nxt.decode(), 16))
                    i += 3
                    continue
            except ValueError:
                pass
            buf.append(raw[i + 1])
            i += 2
            continue
        if c == ord("=") and attr is None:
            attr, buf = buf.decode("utf-8", "replace").strip().lower(), bytearray()
        elif c in (ord(","), ord("+")) :
            parts.append((attr or "", buf.decode("utf-8", "replace").strip()))
            attr, buf = None, bytearray()
        else:
            buf.append(c)
        i += 1
    if attr is not None or buf:
        parts.append((attr or "", buf.decode("utf-8", "replace").strip()))
    return parts


@lru_cache(maxsize=1 << 16)
def key(dn: str) -> tuple[tuple[str, str], ...]:
    """A normal form: equal for DNs the directory considers equal (cached: parents repeat)."""
    return tuple((a, v.casefold()) for a, v in split(dn))


def parent(dn: str) -> str:
    """The parent DN, as written (the first unescaped comma ends the RDN)."""
    if "\\" not in dn:
        return dn.partition(",")[2]
    i, escaped = 0, False
    for i, ch in enumerate(dn):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            return dn[i + 1 :]
    return ""


def first_value(dn: str) -> str:
    parts = split(dn)
    return parts[0][1] if parts else ""


def same(a: str, b: str) -> bool:
    return key(a) == key(b)


def under(dn: str, ancestor: str) -> bool:
    k, a = key(dn), key(ancestor)
    return len(k) >= len(a) and k[len(k) - len(a):] == a
