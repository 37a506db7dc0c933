"""Errors a person can act on.  Anything raised as ReconcilerError is printed as a message and
exits non-zero; only a bug in the reconciler itself may ever show a traceback (with --debug)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input file, located precisely enough to fix it."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{_plain(self.file)}:{self.line}" if self.line else _plain(self.file)
        field = f" {_plain(self.field)}:" if self.field else ""
        return f"{where}:{field} {self.message}"


def _plain(text: str, limit: int = 120) -> str:
    """A file name or field path as a message shows it: control characters escaped (they come
    from a hostile file's keys and names: a terminal or CI annotation must not run them), cut."""
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return out if len(out) <= limit else out[:limit - 1] + "…"


class ReconcilerError(Exception):
    """An error caused by input, configuration or the environment, not by a bug."""


class ValidationFailed(ReconcilerError):
    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line or 0, p.field, p.message))
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{len(self.problems)} {noun} found")
