"""The diff of a system with no API, a pure function: who should have access (the desired
state), against what its operator was asked and confirmed (the work orders and their
confirmations).

A person has access once an alta order of theirs is confirmed, and loses it once a later baja
order is; an order not yet confirmed is pending, and counts as what will be: nobody is asked
twice for the same thing, and the plan shows it pending, never done.  A change here is a work
order to issue."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from reconciler.desired.model import Confirmation, DesiredState, Source
from reconciler.i18n import lazy
from reconciler.plan import AttributeChange, Change, Conflict, Movement
from reconciler.providers.manual.orders import Order, new_folio

KIND = "work-order"  # the change kind: one order to issue


@dataclass(frozen=True)
class Wanted:
    """A person who should have access to the system."""

    employee_key: str
    person: str
    unit: str
    solicitud: str
    source: Source


@dataclass(frozen=True)
class Holder:
    """What the orders say of one person: access confirmed, and the order still open, if any."""

    granted: bool  # the last confirmed order was an alta
    open: Order | None  # the latest order not yet confirmed
    last: Order | None = None  # the latest order, confirmed or not: who the person was, and what backed it

    @property
    def will_have(self) -> bool:
        return self.open.movement == "alta" if self.open is not None else self.granted


def declared(state: DesiredState, manages=lambda unit: True) -> dict[str, Wanted]:
    """Everyone declared in a unit this target manages, active or not: what backs a baja."""
    return {p.employee_key: Wanted(p.employee_key, p.display_name, p.unit, p.solicitud.folio, p.source)
            for p in state.people if manages(p.unit)}


def wanted(state: DesiredState, system: str, manages=lambda unit: True) -> dict[str, Wanted]:
    """The active people an entitlement of theirs gives access to `system`."""
    granting = {key for key, e in state.entitlements.items() if e.system == system}
    people = declared(state, manages)
    return {p.employee_key: people[p.employee_key] for p in state.people
            if p.active and granting.intersection(p.entitlements) and p.employee_key in people}


def holders(orders: list[Order], confirmed: Mapping[str, Confirmation]) -> dict[str, Holder]:
    """Each person the orders name, from their orders in the order they were issued."""
    granted: dict[str, bool] = {}
    latest_open: dict[str, Order] = {}
    last: dict[str, Order] = {}
    for order in orders:
        key = order.employee_key
        last[key] = order
        if order.folio not in confirmed:
            latest_open[key] = order
            continue
        granted[key] = order.movement == "alta"
        if _older(latest_open.get(key), order):  # done after it: what was still open is superseded
            del latest_open[key]
    return {k: Holder(granted.get(k, False), latest_open.get(k), last[k]) for k in last}


def _older(open_order: Order | None, confirmed: Order) -> bool:
    """An open order issued before a confirmed one is superseded by it."""
    return open_order is not None and (open_order.issued, open_order.folio) < (confirmed.issued, confirmed.folio)


def pending(orders: list[Order], confirmed: Mapping[str, Confirmation]) -> list[Order]:
    return [o for o in orders if o.folio not in confirmed]


def diff(want: Mapping[str, Wanted], orders: list[Order], confirmed: Mapping[str, Confirmation], target: str,
         prefix: str, keys: frozenset | None = None, known: Mapping[str, Wanted] | None = None) -> list[Change]:
    """The work orders to issue so that everyone in `want`, and no one else, will have access.
    With `keys` (an incremental plan), only those employee keys are judged.  `known`: everyone
    still declared (a baja of theirs is backed by their declaration and its folio)."""
    known = known or {}
    have = holders(orders, confirmed)
    taken = {o.folio for o in orders}
    changes = []
    for key in sorted(set(want) | set(have)):
        if keys is not None and key not in keys:
            continue
        wanted_here, holder = want.get(key), have.get(key, Holder(False, None))
        if (wanted_here is not None) == holder.will_have:
            continue
        movement = Movement.ALTA if wanted_here is not None else Movement.BAJA
        last = holder.last
        person = wanted_here.person if wanted_here is not None else (last.person if last else key)
        solicitud = wanted_here.solicitud if wanted_here is not None else (last.solicitud if last else None)
        backing = wanted_here or known.get(key)  # a baja of someone still declared: their declaration
        if backing is not None:
            solicitud = backing.solicitud
        folio = new_folio(prefix, key, movement.value, solicitud, taken)
        taken.add(folio)
        change = Change(movement, target, KIND, key, f"{key} ({person})",
                        (AttributeChange("access", holder.will_have, wanted_here is not None),
                         AttributeChange("work_order", None, folio)),
                        reason="" if wanted_here is not None else _why_not(backing),
                        folio=backing.solicitud if backing is not None else None,
                        unit=backing.unit if backing is not None else (last.unit if last else None),
                        origins=(backing.source,) if backing is not None else (),
                        desired=wanted_here, actual=holder)
        changes.append(change)
    return changes


def _why_not(backing: Wanted | None) -> str:
    if backing is None:
        return lazy("no longer declared")
    return lazy("no entitlement to it any more, folio {folio}", folio=backing.solicitud)


def unknown_confirmations(confirmations: tuple[Confirmation, ...], orders: list[Order], target: str,
                          prefix: str) -> list[Conflict]:
    """Confirmations of this system's folios (by their prefix) that name no order it issued."""
    issued = {o.folio for o in orders}
    return [Conflict(target, c.folio, c.folio,
                     lazy("{where}: confirmado: no work order {folio} was issued on target {target} (a folio "
                          "mistyped, or confirmed before its order was issued)", where=str(c.source), folio=c.folio,
                          target=target))
            for c in confirmations if c.folio.startswith(prefix) and c.folio not in issued]
