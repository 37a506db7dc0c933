"""The provider of a system with no API: plans from the work orders kept in the repository and
the confirmations declared (no server to read), applies by issuing work orders and recording
approved confirmations on them, and reads its own ledger back.  An order issued is not access
granted: the plan shows it pending until its confirmation is recorded, and `reconciler pending`
lists it, overdue or not."""
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
from reconciler.providers.manual.orders import Done, Ledger, Order, ref_name
from reconciler.providers.manual.target import ManualTarget


@dataclass(frozen=True)
class ManualBasis:
    ledger: Ledger
    wanted: dict
    known: dict
    keys: frozenset | None
    state: object  # the DesiredState, for the documents and the confirmations


def overdue(order: Order, today: str) -> bool:
    return today > order.due


def pending_note(order: Order, target: ManualTarget, today: str) -> str:
    """How a plan tells of an open order: pending, never done."""
    age = (dt.date.fromisoformat(today) - dt.date.fromisoformat(manual.issued_day(order))).days
    movement = _("alta") if order.movement == "alta" else _("baja")
    if overdue(order, today):
        return lazy("target {target}: work order {folio} ({movement} of {person}) is OVERDUE: issued {age} days ago, "
                    "due {due}; still pending until its confirmation lands", target=target.name, folio=order.folio,
                    movement=movement, person=order.person, age=age, due=order.due)
    return lazy("target {target}: work order {folio} ({movement} of {person}) pending for {age} of {sla} days, until "
                "its confirmation lands", target=target.name, folio=order.folio, movement=movement,
                person=order.person, age=age, sla=target.sla_days)


class ManualProvider(Provider):
    kind = "manual"
    capabilities = frozenset({Capability.WORK_ORDERS})
    read_back_source = lazy("the work orders kept in the repository")

    def removed_declaration(self, change: Change) -> Declared | None:
        """An order for a person: their employee key, in a unit's file."""
        return Declared(change.key, "users") if change.kind == manual.KIND else None

    def revokes(self, change: Change) -> bool:
        return change.kind == manual.KIND and change.movement is Movement.BAJA

    def _ledger(self, request: PlanRequest) -> Ledger:
        where = request.repository
        if where is None:
            raise ReconcilerError(_("target {target}: work orders are kept in the desired-state repository; plan "
                                    "from a Git repository", target=self.target.name))
        return Ledger(where.repo, where.key, where.commit)

    def plan(self, request: PlanRequest) -> TargetPlan:
        ledger = self._ledger(request)
        orders, notes = ledger.orders(self.target.name)
        state = request.state
        self.target.check_managed_units(state.units)
        manages = self.target.scope(state.units)
        wanted = manual.wanted(state, self.target.system, manages)
        known = manual.declared(state, self.target.system, manages)
        keys = request.keys if request.incremental else None  # only the people a partial load holds
        changes, conflicts = self._changes(ledger, orders, wanted, known, keys, state)
        notes += [pending_note(o, self.target, request.today) for o in manual.pending(orders)]
        return TargetPlan(self.target.name, changes, conflicts, notes, ManualBasis(ledger, wanted, known, keys, state))

    def _changes(self, ledger: Ledger, orders: list[Order], wanted, known, keys, state) -> tuple[list, list]:
        recorded, conflicts = manual.confirmations(state.confirmations, orders, self.target.name,
                                                   self.target.folio_prefix)
        taken = ledger.names | {c.folio for c in state.confirmations}  # a folio is never issued twice
        issued = manual.diff(wanted, orders, self.target.name, self.target.folio_prefix, taken, keys, known)
        return recorded + issued, conflicts

    def apply(self, planned: TargetPlan, changes: Sequence[Change], credentials: CredentialFile,
              advance=lambda n: None) -> list[Outcome]:
        started = time.perf_counter()
        basis: ManualBasis = planned.basis
        outcomes = []
        for change in changes:  # the confirmations first: the plan listed them first
            outcome = Outcome(change)
            outcomes.append(outcome)
            try:
                if change.kind == manual.CONFIRMATION:
                    c = change.desired
                    order = change.actual
                    stored = basis.ledger.confirm(order, Done(c.date, c.by, c.ticket, basis.ledger.commit))
                else:
                    order = self._order(change, basis.ledger.commit)
                    stored = basis.ledger.issue(order, work_order(order, self.target, basis.state, change))
                outcome.evidence = {"ref": ref_name(order.target, order.folio), "commit": stored}
                outcome.status = "applied"
            except ReconcilerError as exc:
                outcome.fail(str(exc))
            advance(1)
        self.timings[lazy("work orders")] = time.perf_counter() - started
        return outcomes

    def _order(self, change: Change, commit: str | None) -> Order:
        """The order `change` issues: for an alta, the person as declared; for a baja, as the
        last order named them (they may be declared no more).  Issued after every earlier order
        of theirs, whatever this runner's clock says: their order is what decides who has access."""
        now = dt.datetime.now(dt.timezone.utc)
        last = change.actual.last if change.actual is not None else None
        if last is not None and dt.datetime.fromisoformat(last.issued) >= now:
            now = dt.datetime.fromisoformat(last.issued) + dt.timedelta(microseconds=1)
        due = (now.astimezone(zone()).date() + dt.timedelta(days=self.target.sla_days)).isoformat()
        folio = next(a.after for a in change.attributes if a.name == "work_order")
        wanted = change.desired
        return Order(folio, self.target.name, self.target.system, change.movement.value, change.key,
                     wanted.person if wanted else (last.person if last else change.key),
                     change.unit or (last.unit if last else None), now.isoformat(timespec="microseconds"), due,
                     change.folio or (last.solicitud if last else None), commit)

    def read_back(self, planned: TargetPlan) -> ReadBack:
        basis: ManualBasis = planned.basis
        orders, _notes = basis.ledger.orders(self.target.name)
        remaining, _conflicts = self._changes(basis.ledger, orders, basis.wanted, basis.known, basis.keys, basis.state)
        return ReadBack(remaining, orders)
