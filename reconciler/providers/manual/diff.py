"""The diff of a system with no API, a pure function: who should have access (the desired
state), against what its operator was asked and what they confirmed (the work orders kept in the
repository, with the confirmations recorded on them).

A person has access once their last confirmed order is an alta, and loses it once their last
confirmed order is a baja; an order not yet confirmed is pending, and counts as what will be:
nobody is asked twice for the same thing, and the plan shows it pending, never done.  Two kinds
of change: a work order to issue, and an approved confirmation to record on its order (a
confirmation counts only once an apply, which applies only what was approved, recorded it)."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from reconciler.desired.model import Confirmation, DesiredState, Source
from reconciler.i18n import lazy, zone
from reconciler.plan import AttributeChange, Change, Conflict, Movement
from reconciler.providers.manual.orders import Order, new_folio

KIND = "work-order"  # the change kind: one order to issue
CONFIRMATION = "work-order-confirmation"  # the change kind: one confirmation to record


@dataclass(frozen=True)
class Wanted:
    """A person declared in a unit the target manages, and what their access rests on."""

    employee_key: str
    person: str
    unit: str
    solicitud: str
    sources: tuple[Source, ...]  # their entry, their unit, the entitlements that grant the system
    grants_system: str = ""  # the system their access is to: the approval policy may hold it privileged


@dataclass(frozen=True)
class Holder:
    """What the orders say of one person: access confirmed, and the order still open, if any."""

    granted: bool  # their last confirmed order was an alta
    open: Order | None  # their latest order not yet confirmed, issued after the last confirmed one
    last: Order | None = None  # their latest order, confirmed or not: who the person was, and what backed it

    @property
    def will_have(self) -> bool:
        return self.open.movement == "alta" if self.open is not None else self.granted


def declared(state: DesiredState, system: str, manages=lambda unit: True) -> dict[str, Wanted]:
    """Everyone declared in a unit this target manages, active or not (what backs a baja), with
    the sources their access to `system` rests on."""
    granting = {key for key, e in state.entitlements.items() if e.system == system}
    out = {}
    for p in state.people:
        if not manages(p.unit):
            continue
        unit = state.units.get(p.unit)
        sources = (p.source, *((unit.source,) if unit is not None and unit.source else ()),
                   *(state.entitlements[e].source for e in p.entitlements
                     if e in granting and state.entitlements[e].source))
        out[p.employee_key] = Wanted(p.employee_key, p.display_name, p.unit, p.solicitud.folio, sources, system)
    return out


def wanted(state: DesiredState, system: str, manages=lambda unit: True) -> dict[str, Wanted]:
    """The active people an entitlement of theirs gives access to `system`."""
    granting = {key for key, e in state.entitlements.items() if e.system == system}
    people = declared(state, system, manages)
    return {p.employee_key: people[p.employee_key] for p in state.people
            if p.active and granting.intersection(p.entitlements) and p.employee_key in people}


def _issued(order: Order) -> tuple:
    return order.issued, order.folio


def holders(orders: Iterable[Order]) -> dict[str, Holder]:
    """Each person the orders name, from their orders in the order they were issued: an order
    confirmed supersedes every order of theirs issued before it."""
    granted: dict[str, bool] = {}
    latest_open: dict[str, Order] = {}
    last: dict[str, Order] = {}
    for order in sorted(orders, key=_issued):
        key = order.employee_key
        last[key] = order
        if order.done is None:
            latest_open[key] = order
            continue
        granted[key] = order.movement == "alta"
        latest_open.pop(key, None)  # issued before it (the orders are in issue order): superseded
    return {k: Holder(granted.get(k, False), latest_open.get(k), last[k]) for k in last}


def pending(orders: Iterable[Order]) -> list[Order]:
    """The orders still waiting for their confirmation: not confirmed, and not superseded by a
    later order of the same person that was."""
    ordered = sorted(orders, key=_issued)
    settled = {}
    for order in ordered:
        if order.done is not None:
            settled[order.employee_key] = _issued(order)
    return [o for o in ordered if o.done is None and _issued(o) > settled.get(o.employee_key, ("", ""))]


def diff(want: Mapping[str, Wanted], orders: list[Order], target: str, prefix: str, taken: set[str],
         keys: frozenset | None = None, known: Mapping[str, Wanted] | None = None) -> list[Change]:
    """The work orders to issue so that everyone in `want`, and no one else, will have access.
    With `keys` (an incremental plan), only those employee keys are judged.  `known`: everyone
    still declared (a baja of theirs is backed by their declaration); `taken`: every folio no new
    order may have."""
    known = known or {}
    have = holders(orders)
    taken = set(taken) | {o.folio for o in orders}
    changes = []
    for key in sorted(set(want) | set(have)):
        if keys is not None and key not in keys:
            continue
        wanted_here, holder = want.get(key), have.get(key, Holder(False, None))
        if (wanted_here is not None) == holder.will_have:
            continue
        movement = Movement.ALTA if wanted_here is not None else Movement.BAJA
        last, backing = holder.last, wanted_here or known.get(key)
        person = backing.person if backing is not None else (last.person if last else key)
        solicitud = backing.solicitud if backing is not None else (last.solicitud if last else None)
        folio = new_folio(prefix, key, movement.value, solicitud, taken)
        taken.add(folio)
        changes.append(Change(
            movement, target, KIND, key, f"{key} ({person})",
            (AttributeChange("access", holder.will_have, wanted_here is not None),
             AttributeChange("work_order", None, folio)),
            reason="" if wanted_here is not None else _why_not(backing),
            folio=solicitud if backing is not None else None,
            unit=backing.unit if backing is not None else (last.unit if last else None),
            origins=backing.sources if backing is not None else (), desired=wanted_here, actual=holder))
    return changes


def _why_not(backing: Wanted | None) -> str:
    if backing is None:
        return lazy("no longer declared")
    return lazy("no entitlement to it any more, folio {folio}", folio=backing.solicitud)


def issued_day(order: Order) -> str:
    """The institution's date the order was issued on (its time is UTC)."""
    return dt.datetime.fromisoformat(order.issued).astimezone(zone()).date().isoformat()


def is_folio(folio: str, prefix: str) -> bool:
    """A folio of this system's: its prefix, then six hexadecimal digits, nothing else."""
    return re.fullmatch(re.escape(prefix) + "[0-9A-F]{6}", folio) is not None


def confirmations(declared_ones: Iterable[Confirmation], orders: list[Order], target: str,
                  prefix: str) -> tuple[list[Change], list[Conflict]]:
    """The approved confirmations to record on their orders, and the ones that cannot be: a
    folio of this system's that names no order issued here (mistyped, confirmed before its
    order was issued, or an order whose ref is gone), or a date before the order was issued."""
    by_folio = {o.folio: o for o in orders}
    changes, conflicts = [], []
    for c in declared_ones:
        if not is_folio(c.folio, prefix):
            continue
        order = by_folio.get(c.folio)
        if order is None:
            conflicts.append(Conflict(target, c.folio, c.folio, lazy(
                "{where}: confirmado: no work order {folio} was issued on target {target} (a folio mistyped, "
                "confirmed before its order was issued, or an order whose ref is gone)", where=str(c.source),
                folio=c.folio, target=target)))
        elif c.date < issued_day(order):
            conflicts.append(Conflict(target, c.folio, c.folio, lazy(
                "{where}: confirmado: {date} is before work order {folio} was issued ({issued})",
                where=str(c.source), date=c.date, folio=c.folio, issued=issued_day(order))))
        elif order.done is None:
            said = f"{c.date} · {c.by} · {c.ticket}"  # not for people: the operator's own words
            changes.append(Change(Movement.MODIFICACION, target, CONFIRMATION, c.folio, f"{c.folio} ({order.person})",
                                  (AttributeChange("confirmado", None, said),), folio=order.solicitud,
                                  unit=order.unit, origins=(c.source,), desired=c, actual=order))
    return changes, conflicts
