"""The settings of a fake target (a test double: see the package's docstring)."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.inventory import TargetSettings


@dataclass(frozen=True, kw_only=True)
class FakeTarget(TargetSettings):
    """A JSON file standing for a system, and the faults it is told to show.

    A real kind fixes `kind` as a class attribute; the fake serves whichever fake kinds a test
    registers (several in one inventory), so here `kind` is the entry's own `kind:`."""

    kind: str
    state_file: str  # the "system": {"objects": {employee key: {"display_name", "unit"}}}
    journal: str | None = None  # every operation, one line each; several targets may share it
    unreadable: bool = False  # plan's read fails (ReconcilerError)
    unreachable: bool = False  # opening it fails (ReconcilerError), as for a server out of reach
    fail_keys: frozenset[str] = frozenset()  # apply refuses these changes (failed, with a message)
    crash_after: int | None = None  # apply raises FakeCrash once this many changes are written
    not_converging: frozenset[str] = frozenset()  # apply says applied but writes nothing
    open_waits_for: str | None = None  # opening waits until this file exists (a target slow to answer)

    @classmethod
    def build(cls, name: str, raw: dict) -> "FakeTarget":
        return cls(kind=raw["kind"], state_file=raw["state_file"], journal=raw.get("journal"),
                   unreadable=raw.get("unreadable", False),
                   unreachable=raw.get("unreachable", False), fail_keys=frozenset(raw.get("fail_keys", ())),
                   crash_after=raw.get("crash_after"), not_converging=frozenset(raw.get("not_converging", ())),
                   open_waits_for=raw.get("open_waits_for"),
                   **cls.common(name, raw))
