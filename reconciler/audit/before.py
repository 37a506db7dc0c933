"""Before-images: what every object a run will touch looked like before its first operation
(SESVER 002 and REPSS 003 ask for a backup before a change).

Each target's provider renders its own objects (`Provider.before_image`): LDIF for the
directory, so `ldapmodify` or Samba's `ldbmodify` can put an entry back by hand; JSON Lines
of the object as read for the other kinds.  The file is written next to the audit trail,
mode 0600 in a 0700 directory, before the run's first record, and the run's `run-start`
record carries its path and SHA-256: the trail vouches for the file.  Objects an alta will
create have no before-image.  No secret is in it: providers read no password.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from reconciler.errors import ReconcilerError
from reconciler.i18n import _


def jsonable(value: Any) -> Any:
    """An object as read (dataclasses, tuples, sets, mappings) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name not in ("origins",)}  # where it was declared is not what the target held
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (frozenset, set)):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def json_lines(changes: Iterable) -> tuple[str, bytes]:
    """The default image: one JSON line per object the changes touch, as the plan read it."""
    lines = [json.dumps({"kind": c.kind, "key": c.key, "label": c.label, "before": jsonable(c.actual)},
                        ensure_ascii=False, sort_keys=True) for c in changes if c.actual is not None]
    return "jsonl", "".join(line + "\n" for line in lines).encode("utf-8")


def ldif_line(name: str, value: str) -> str:
    """`name: value`, or `name:: base64` where LDIF (RFC 2849) requires it (ldap3's test,
    imported here: only the directory's before-image needs it)."""
    from ldap3.protocol.rfc2849 import safe_ldif_string

    if safe_ldif_string(value.encode("utf-8")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode('utf-8')).decode('ascii')}"


def ldif_comment(text: str) -> str:
    """A comment line: whatever the text holds (a display name someone typed), never a line
    break or control character that would start a record of its own when the file is applied."""
    return "# " + "".join(ch if ch.isprintable() else "?" for ch in text)


def write(directory: str | Path, target: str, run: str, image: tuple[str, bytes] | None) -> dict | None:
    """Write one target's before-image; {path, sha256, bytes} for the run-start record, or None
    when the run touches nothing that exists."""
    if image is None or not image[1]:
        return None
    suffix, content = image
    folder = Path(directory) / "before"
    path = folder / f"{target}-{run}.{suffix}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ReconcilerError(_("cannot write the before-image {path}: {error}; nothing was changed",
                                path=path, error=exc.strerror)) from None
    return {"path": str(path), "sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
