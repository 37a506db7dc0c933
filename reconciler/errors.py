"""Errors a person can act on.  Anything raised as ReconcilerError is printed as a message and
exits non-zero; only a bug in the reconciler itself may ever show a traceback (with --debug)."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.i18n import ngettext


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input file, located precisely enough to fix it."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{plain(self.file)}:{self.line}" if self.line else plain(self.file)
        field = f" {plain(self.field)}:" if self.field else ""
        return f"{where}:{field} {self.message}"


def plain(text: str, limit: int | None = 120, keep: str = "") -> str:
    """Text from a hostile source as a message shows it (a file's name, a field path, a commit
    subject): control characters escaped, never obeyed by a terminal or a CI annotation; cut
    at `limit` (None: whole); the characters in `keep` (a line break) left as they are."""
    out = "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)
    return out if limit is None or len(out) <= limit else out[:limit - 1] + "…"


class ReconcilerError(Exception):
    """An error caused by input, configuration or the environment, not by a bug."""


class ValidationFailed(ReconcilerError):
    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line or 0, p.field, p.message))
        super().__init__(ngettext("{n} problem found", "{n} problems found", len(self.problems)))
