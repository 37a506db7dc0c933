"""The provider of a system with no API: plans from the work orders it issued and their
confirmations (no server to read), applies by issuing work orders, and reads back its own
ledger.  An order issued is not access granted: the plan shows it pending until its
confirmation lands, and `reconciler pending` lists it, overdue or not."""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Sequence

from reconciler.credentials import CredentialFile
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy, zone
from reconciler.plan import Change, Movement, Outcome
from reconciler.providers.contract import Capability, Declared, PlanRequest, Provider, ReadBack, TargetPlan
from reconciler.providers.manual import diff as manual
from reconciler.providers.manual.document import work_order
from reconciler.providers.manual.orders import Ledger, Order
from reconciler.providers.manual.target import ManualTarget


@dataclass(frozen=True)
class ManualBasis:
    ledger: Ledger
    wanted: dict
    known: dict
    confirmed: dict
    keys: frozenset | None
    state: object  # the DesiredState, for the documents


def overdue(order: Order, today: str) -> bool:
    return today > order.due


def pending_note(order: Order, target: ManualTarget, today: str) -> str:
    """How a plan tells of an open order: pending, never done."""
    age = (dt.date.fromisoformat(today) - dt.datetime.fromisoformat(order.issued).astimezone(zone()).date()).days
    if overdue(order, today):
        return lazy("target {target}: work order {folio} ({movement} of {person}) is OVERDUE: issued {age} days ago, "
                    "due {due}; still pending until its confirmation lands", target=target.name, folio=order.folio,
                    movement=order.movement, person=order.person, age=age, due=order.due)
    return lazy("target {target}: work order {folio} ({movement} of {person}) pending for {age} of {sla} days, until "
                "its confirmation lands", target=target.name, folio=order.folio, movement=order.movement,
                person=order.person, age=age, sla=target.sla_days)


class ManualProvider(Provider):
    kind = "manual"
    capabilities = frozenset({Capability.WORK_ORDERS})
    read_back_source = lazy("the work orders issued")

    def __init__(self, target: ManualTarget):
        super().__init__(target)

    def removed_declaration(self, change: Change) -> Declared | None:
        """An order for a person: their employee key, in a unit's file."""
        return Declared(change.key, "users")

    def revokes(self, change: Change) -> bool:
        return change.movement is Movement.BAJA

    def _ledger(self, request: PlanRequest) -> Ledger:
        where = request.repository
        if where is None:
            raise ReconcilerError(_("target {target}: work orders are kept in the desired-state repository; plan "
                                    "from a Git repository", target=self.target.name))
        return Ledger(where.repo, where.key, where.commit)

    def _orders(self, ledger: Ledger) -> tuple[list[Order], list[str]]:
        return ledger.orders(self.target.name)

    def plan(self, request: PlanRequest) -> TargetPlan:
        ledger = self._ledger(request)
        orders, notes = self._orders(ledger)
        state = request.state
        self.target.check_managed_units(state.units)
        manages = self.target.scope(state.units)
        wanted, known = manual.wanted(state, self.target.system, manages), manual.declared(state, manages)
        confirmed = {c.folio: c for c in state.confirmations}
        keys = (request.keys | request.previous_keys) if request.incremental else None
        changes = manual.diff(wanted, orders, confirmed, self.target.name, self.target.folio_prefix, keys, known)
        conflicts = manual.unknown_confirmations(state.confirmations, orders, self.target.name,
                                                 self.target.folio_prefix)
        notes += [pending_note(o, self.target, request.today) for o in manual.pending(orders, confirmed)]
        return TargetPlan(self.target.name, changes, conflicts, notes,
                          ManualBasis(ledger, wanted, known, confirmed, keys, state))

    def apply(self, planned: TargetPlan, changes: Sequence[Change], credentials: CredentialFile,
              advance=lambda n: None) -> list[Outcome]:
        started = time.perf_counter()
        basis: ManualBasis = planned.basis
        now = dt.datetime.now(dt.timezone.utc)
        due = (now.astimezone(zone()).date() + dt.timedelta(days=self.target.sla_days)).isoformat()
        outcomes = []
        for change in changes:
            outcome = Outcome(change)
            outcomes.append(outcome)
            order = self._order(change, now, due, basis.ledger.commit)
            try:
                basis.ledger.issue(order, work_order(order, self.target, basis.state, change))
                outcome.status = "applied"
            except ReconcilerError as exc:
                outcome.fail(str(exc))
            advance(1)
        self.timings[lazy("work orders")] = time.perf_counter() - started
        return outcomes

    def _order(self, change: Change, now: dt.datetime, due: str, commit: str | None) -> Order:
        """The order `change` issues: for an alta, the person as declared; for a baja, as the
        last order named them (they may be declared no more)."""
        folio = next(a.after for a in change.attributes if a.name == "work_order")
        wanted, last = change.desired, change.actual.last if change.actual is not None else None
        return Order(folio, self.target.name, self.target.system, change.movement.value, change.key,
                     wanted.person if wanted else (last.person if last else change.key),
                     change.unit or (last.unit if last else None), now.isoformat(timespec="microseconds"), due,
                     wanted.solicitud if wanted else (last.solicitud if last else None), commit)

    def read_back(self, planned: TargetPlan) -> ReadBack:
        basis: ManualBasis = planned.basis
        orders, _notes = self._orders(basis.ledger)
        remaining = manual.diff(basis.wanted, orders, basis.confirmed, self.target.name, self.target.folio_prefix,
                                basis.keys, basis.known)
        return ReadBack(remaining, orders)
