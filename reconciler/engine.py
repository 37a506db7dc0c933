"""One reconcile run: load and validate the desired state, plan every target, apply safely.

The CLI only parses arguments and renders; everything a run decides is here.
"""
from __future__ import annotations

import datetime as dt
import gc
import secrets
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from .credentials import CredentialFile
from .desired import DesiredState, load_desired_state
from .errors import ReconcilerError
from .inventory import ADTarget, load_inventory
from .journal import Journal
from .plan import Change, Movement, Plan
from .providers.ad import ADProvider, Outcome
from .source import describe


class DeletionGuard(ReconcilerError):
    """More bajas than the target allows in one run, and no explicit override."""


def today_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass
class ApplyReport:
    outcomes: list[Outcome]
    credentials_files: list[tuple[str, int]] = field(default_factory=list)  # (path, passwords in it)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per apply phase, all targets
    journals: list[str] = field(default_factory=list)  # the run journal of each target

    def counts(self) -> dict[str, Counter]:
        table: dict[str, Counter] = {m.plural: Counter() for m in Movement}
        for o in self.outcomes:
            row = table[o.change.movement.plural]
            row[o.status] += 1
            row["verified"] += o.verified
        return table

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed" or (o.status == "applied" and not o.verified)]

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class Run:
    """Desired state plus open connections to the selected targets."""

    repo: Path
    inventory: Path
    only: tuple[str, ...] = ()
    today: str = field(default_factory=today_utc)
    state: DesiredState | None = None
    providers: dict[str, ADProvider] = field(default_factory=dict)
    _stack: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> "Run":
        try:
            self._open()
        except BaseException:
            self._stack.close()  # __exit__ is not called when __enter__ fails
            raise
        return self

    def _open(self) -> None:
        # Loading YAML and decoding LDAP create millions of short-lived objects and no reference
        # cycles; the cyclic collector would rescan the whole growing heap again and again
        # (half the time of a 10,000-person plan).  Refcounting still frees everything.
        if gc.isenabled():
            gc.disable()
            self._stack.callback(gc.enable)
        targets = load_inventory(self.inventory)
        unknown = [t for t in self.only if t not in targets]
        if unknown:
            raise ReconcilerError(f"unknown target {', '.join(unknown)} (the inventory {self.inventory} has "
                                  f"{', '.join(targets)})")
        # Connect and start reading the directories first, then load the YAML while they read.
        # A problem in the YAML is reported before a problem reaching a target.
        unreachable: ReconcilerError | None = None
        try:
            for name, target in targets.items():
                if not self.only or name in self.only:
                    provider = self._stack.enter_context(ADProvider(target))
                    self.providers[name] = provider
                    provider.prefetch()
        except ReconcilerError as exc:
            unreachable = exc
        self.state = load_desired_state(self.repo / "desired_state")
        if unreachable is not None:
            raise unreachable

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def plan(self) -> Plan:
        changes, conflicts, warnings = [], [], []
        for provider in self.providers.values():
            c, k, w = provider.plan(self.state, self.today)
            changes += c
            conflicts += k
            warnings += w
            warnings += self._guard_warning(provider.target, c)
        return Plan(tuple(changes), tuple(conflicts), describe(self.repo), tuple(warnings))

    @staticmethod
    def _excess_bajas(target: ADTarget, changes: list[Change]) -> int:
        """How many account bajas the plan has for `target`, when that is over its guard (else 0)."""
        bajas = sum(1 for c in changes if c.movement is Movement.BAJA and c.kind == "account")
        return bajas if bajas > target.max_bajas else 0

    def _guard_warning(self, target: ADTarget, changes: list[Change]) -> list[str]:
        if bajas := self._excess_bajas(target, changes):
            return [f"target {target.name}: {bajas} bajas exceed the deletion guard (max_bajas: "
                    f"{target.max_bajas}); apply refuses them unless given --allow-mass-baja"]
        return []

    def apply(self, plan: Plan, allow_mass_baja: bool = False, progress=None) -> ApplyReport:
        """Apply `plan` target by target; `progress(target, total)` returns an advance(n) callable."""
        for name, changes in plan.by_target().items():
            target = self.providers[name].target
            if (bajas := self._excess_bajas(target, changes)) and not allow_mass_baja:
                raise DeletionGuard(
                    f"refusing to apply: {bajas} bajas on target {name} exceed max_bajas ({target.max_bajas}). "
                    "Nothing was changed. Review the plan; if these bajas are intended, run apply again with "
                    "--allow-mass-baja.")
        run_id = new_run_id()
        report = ApplyReport([])
        for name, changes in plan.by_target().items():
            provider = self.providers[name]
            credentials = CredentialFile(provider.target.credentials_dir, f"{name}-{run_id}")
            journal = Journal(provider.target.journal_dir, f"{name}-{run_id}")
            journal.start(run_id, name, plan.source, changes)
            report.journals.append(str(journal.path))
            advance = progress(name, len(changes)) if progress else (lambda n: None)
            aborted: BaseException | None = None
            try:
                outcomes = provider.apply(changes, credentials, advance)
                provider.verify(outcomes, self.today)
                journal.results(outcomes)
            except BaseException as exc:
                aborted = exc
                raise
            finally:
                credentials.close()
                journal.close(aborted)
            report.outcomes += outcomes
            for phase, seconds in provider.timings.items():
                report.timings[phase] = report.timings.get(phase, 0.0) + seconds
            if credentials.count:
                report.credentials_files.append((str(credentials.path), credentials.count))
        return report
