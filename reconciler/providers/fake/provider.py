"""The fake provider: a test double for the engine's tests, not a real system.

It keeps one object per declared person (change kind "fake-account") in a JSON file, plans
through the pure `diff` below, and journals every operation as a line
"<target> <op> <movement> <key>" (movement and key "-" where they do not apply):

    read       plan's bulk read (key: the keys an incremental plan asked for, comma-separated)
    read-failed   plan's read failed (unreadable: true)
    open   also when opening fails (unreachable: true)
    apply      a change written
    refuse     a change refused (fail_keys)
    unwritten  a change reported applied but not written (not_converging)
    crash      apply died before this change (crash_after)
    read-back  verification's read
    open, opened, close   the target's lifetime (opened: open_waits_for's file appeared)
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from reconciler.credentials import CredentialFile
from reconciler.desired.model import Person
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy, ngettext
from reconciler.plan import AttributeChange, Change, Movement, Outcome
from reconciler.providers.contract import Declared, PlanRequest, Provider, ReadBack, TargetPlan
from reconciler.providers.fake.target import FakeTarget

KIND = "fake-account"


class FakeCrash(Exception):
    """The fake's apply dying halfway (crash_after): not a ReconcilerError, like a real crash."""


@dataclass(frozen=True)
class FakeObject:
    display_name: str
    unit: str


def read_state(path: str | Path) -> dict[str, FakeObject]:
    """The fake system's objects (a missing file is an empty system)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {key: FakeObject(**value) for key, value in data["objects"].items()}


def write_state(path: str | Path, objects: Mapping[str, FakeObject]) -> None:
    """Replace the fake system's objects (atomically: a crash never leaves half a file)."""
    path = Path(path)
    draft = path.with_name(f"{path.name}.tmp")
    document = {"objects": {key: asdict(obj) for key, obj in sorted(objects.items())}}
    draft.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(draft, path)


def _attributes(want: FakeObject | None, have: FakeObject | None) -> tuple[AttributeChange, ...]:
    return tuple(AttributeChange(name, getattr(have, name) if have else None, getattr(want, name) if want else None)
                 for name in ("display_name", "unit")
                 if (getattr(have, name) if have else None) != (getattr(want, name) if want else None))


def diff(people: Iterable[Person], actual: Mapping[str, FakeObject], target: str,
         keys: frozenset | None = None) -> list[Change]:
    """The changes that make `actual` what `people` declare (a pure function).  An active
    person has an object; a baja, or an object nobody declares, has none.  With `keys` (an
    incremental plan), only those employee keys are judged."""
    declared = {p.employee_key: p for p in people if keys is None or p.employee_key in keys}
    changes = []
    for key, p in sorted(declared.items()):
        have = actual.get(key)
        common = dict(folio=p.solicitud.folio, unit=p.unit, origins=(p.source,), actual=have)
        if p.active:
            want = FakeObject(p.display_name, p.unit)
            if have is None:
                changes.append(Change(Movement.ALTA, target, KIND, key, f"{key} ({p.display_name})",
                                      _attributes(want, None), desired=want, **common))
            elif have != want:
                changes.append(Change(Movement.MODIFICACION, target, KIND, key, f"{key} ({p.display_name})",
                                      _attributes(want, have), desired=want, **common))
        elif have is not None:
            changes.append(Change(Movement.BAJA, target, KIND, key, f"{key} ({p.display_name})",
                                  _attributes(None, have), reason=lazy("baja, folio {folio}", folio=p.solicitud.folio),
                                  **common))
    for key, have in sorted(actual.items()):
        if key not in declared and (keys is None or key in keys):
            changes.append(Change(Movement.BAJA, target, KIND, key, f"{key} ({have.display_name})",
                                  _attributes(None, have), reason=lazy("no longer declared"), unit=have.unit,
                                  actual=have))
    return changes


@dataclass(frozen=True)
class FakeBasis:
    people: tuple[Person, ...]
    keys: frozenset | None


class FakeProvider(Provider):
    """One fake target.  It declares no capability: nothing is approved by implication."""

    read_back_source = lazy("the fake's state file")

    def __init__(self, target: FakeTarget):
        super().__init__(target)
        self.written = 0  # changes written in this run, for crash_after

    @property
    def kind(self) -> str:  # type: ignore[override]  # whichever fake kind the inventory named
        return self.target.kind

    def _journal(self, op: str, movement: str = "-", key: str = "-") -> None:
        if self.target.journal:
            with open(self.target.journal, "a", encoding="utf-8") as f:
                f.write(f"{self.target.name} {op} {movement} {key}\n")

    def _read(self) -> dict[str, FakeObject]:
        try:
            return read_state(self.target.state_file)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReconcilerError(_("target {target}: cannot read the fake system {file}: {error}",
                                    target=self.target.name, file=self.target.state_file, error=exc)) from None

    def open(self) -> None:
        self._journal("open")
        if self.target.unreachable:
            raise ReconcilerError(_("target {target}: cannot reach the fake system (unreachable: true)",
                                    target=self.target.name))
        if self.target.open_waits_for:
            waited = Path(self.target.open_waits_for)
            for _attempt in range(300):
                if waited.exists():
                    break
                time.sleep(0.1)
            self._journal("opened")

    def close(self) -> None:
        self._journal("close")

    def revokes(self, change: Change) -> bool:
        return change.movement is Movement.BAJA

    def removed_declaration(self, change: Change) -> Declared | None:
        """An object is a declared person: their employee key, in a unit's file."""
        return Declared(change.key, "users")

    def plan(self, request: PlanRequest) -> TargetPlan:
        if self.target.unreadable:
            self._journal("read-failed")
            raise ReconcilerError(_("target {target}: cannot read the fake system {file} (unreadable: true)",
                                    target=self.target.name, file=self.target.state_file))
        self._journal("read", key=",".join(sorted(request.keys)) if request.incremental else "-")
        actual = self._read()
        basis = FakeBasis(tuple(request.state.people), request.keys)
        return TargetPlan(self.target.name, diff(basis.people, actual, self.target.name, basis.keys), basis=basis)

    def apply(self, planned: TargetPlan, changes: Sequence[Change], credentials: CredentialFile,
              advance=lambda n: None) -> list[Outcome]:
        started = time.perf_counter()
        objects = self._read()
        outcomes = []
        for c in changes:
            o = Outcome(c)
            outcomes.append(o)
            if self.target.crash_after is not None and self.written >= self.target.crash_after:
                self._journal("crash", c.movement.value, c.key)
                raise FakeCrash(ngettext("target {target} died after writing {n} change",
                                         "target {target} died after writing {n} changes",
                                         self.written, target=self.target.name))
            if c.key in self.target.fail_keys:
                o.fail(lazy("the fake target refused the {movement} of {key} (fail_keys)",
                            movement=c.movement.value, key=c.key))
                self._journal("refuse", c.movement.value, c.key)
            elif c.key in self.target.not_converging:
                o.status = "applied"
                self._journal("unwritten", c.movement.value, c.key)
            else:
                if c.movement is Movement.BAJA:
                    objects.pop(c.key, None)
                else:
                    objects[c.key] = c.desired
                write_state(self.target.state_file, objects)
                self.written += 1
                o.status = "applied"
                self._journal("apply", c.movement.value, c.key)
            advance(1)
        self.timings["apply"] = self.timings.get("apply", 0.0) + time.perf_counter() - started
        return outcomes

    def read_back(self, planned: TargetPlan) -> ReadBack:
        self._journal("read-back")
        basis: FakeBasis = planned.basis
        actual = self._read()
        return ReadBack(diff(basis.people, actual, self.target.name, basis.keys), actual)
