"""The baja de servicios of one person, a pure function of what Git and the audit trail hold.

The procedure it replaces (a department's termination of staff) asks IT to review and cancel
every permission and access the person had (network, phone, e-mail, shared resources) and to
report what was removed.  Here the report is made from facts, never from what someone typed:

- every access an automatic target removed, from the audit trail: the last record of each
  object, done only when it was applied and read back (verified);
- every work order a system with no API received for the baja, from the work orders kept in
  the repository: done only once its confirmation was recorded on it;
- the equipment they held, to collect: done once the desired state no longer assigns it to them;
- the carrier lines they held, to cancel with the carrier: done once the desired state says
  the line is a baja or holds it for someone else.

The baja is complete only when every item is done.  The person's objects are those keyed by
their identities (employee key, account, mailbox and aliases, extensions, equipment) in the
desired state the baja was applied from (`then`) and the one read now, and the sets that held
them (a shared mailbox's members).  Every such object a target made or took over must have a
baja recorded since the day of the request, applied and read back (equipment: its release);
one with none is pending (a target that was out of reach, a change skipped).  A record is never
taken as the person's by its folio alone: one request may carry several people's bajas.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from reconciler.desired.model import DesiredState, Person

# Not removals of the person's access: containers, and the work orders listed as orders.
NOT_ACCESS = frozenset({"ou", "group", "mail-maps", "work-order", "work-order-confirmation"})
NOT_REMOVED = "not-removed"  # an object of theirs no baja was recorded for (a target out of reach, skipped)


@dataclass(frozen=True)
class Removed:
    """One access an automatic target removed, as its last audit record tells."""

    target: str
    kind: str  # the object's kind: account, mailbox, line, computer…
    key: str
    label: str
    movement: str
    time: str  # of the last record (UTC)
    status: str  # applied | failed | skipped | not-removed
    verified: bool
    changed: tuple[str, ...]  # what the change did to each attribute: "groups: −GG-Correo", "enabled: True → False"
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status == "applied" and self.verified


@dataclass(frozen=True)
class OrderItem:
    """A work order the baja raised on a system with no API; or, while none is issued yet, the
    access still to be removed there (folio None)."""

    target: str
    system: str
    operator: str
    folio: str | None
    issued: str | None
    due: str | None
    confirmed: str | None = None  # "date · by · ticket", once recorded

    @property
    def done(self) -> bool:
        return self.confirmed is not None


@dataclass(frozen=True)
class Asset:
    """Equipment to collect, or a carrier line to cancel."""

    key: str  # inventory number or phone number
    description: str
    unit: str
    done: bool
    now: str  # what the desired state says of it now: its status, or who holds it


@dataclass(frozen=True)
class BajaDeServicios:
    employee_key: str
    person: str
    title: str
    unit: str
    account: str | None
    folio: str
    requested: str  # the request's date
    requested_by: str
    justification: str
    approvers: tuple[str, ...]
    removed: tuple[Removed, ...]
    orders: tuple[OrderItem, ...]
    equipment: tuple[Asset, ...]
    lines: tuple[Asset, ...]
    commit: str | None = None  # the desired-state commit it was read at
    made: str = field(default="", compare=False)  # when (UTC)

    @property
    def items(self) -> tuple:
        return (*self.removed, *self.orders, *self.equipment, *self.lines)

    @property
    def pending(self) -> int:
        """Items not done; a baja no target has recorded yet counts one (nothing applied it)."""
        return sum(not item.done for item in self.items) + (not self.removed)

    @property
    def complete(self) -> bool:
        return self.pending == 0

    def to_dict(self) -> dict:
        def listed(items) -> list[dict]:
            return [{**item.__dict__, "done": item.done} for item in items]

        return {"employee_key": self.employee_key, "person": self.person, "title": self.title, "unit": self.unit,
                "account": self.account, "folio": self.folio, "requested": self.requested,
                "requested_by": self.requested_by, "justification": self.justification,
                "approvers": list(self.approvers), "removed": listed(self.removed), "work_orders": listed(self.orders),
                "equipment": listed(self.equipment), "carrier_lines": listed(self.lines), "pending": self.pending,
                "complete": self.complete, "commit": self.commit, "made": self.made}


def identities(person: Person, *states: DesiredState) -> tuple[set[str], set[str], set[str]]:
    """The keys the person's objects have on the targets (employee key, account, mailbox and
    its aliases, extensions), their equipment's inventory numbers, and of the keys those that
    are the person's alone (not an extension's number), in any of `states`."""
    keys = {person.employee_key}
    equipment = set()
    numbers = set()
    for state in states:
        them = state.person(person.employee_key)
        if them is None:
            continue
        if person.employee_key in state.account_names:
            keys.add(state.account_names[person.employee_key])
        if them.mailbox is not None:
            keys |= {them.mailbox.address, *them.mailbox.aliases}
        numbers |= {line.number for line in state.lines if line.person == person.employee_key}
        equipment |= {e.inventory_number for e in state.equipment if e.person == person.employee_key}
    return keys | numbers, equipment, keys


def _value(value) -> str:
    return "—" if value is None else str(value)


def _said(attribute: dict) -> str:
    """One attribute of a record in a few words: what a set lost (and gained), or before → after."""
    name, before, after = attribute.get("name"), attribute.get("before"), attribute.get("after")
    if isinstance(before, list) or isinstance(after, list):
        gone = [_value(v) for v in before or () if v not in (after or ())]
        new = [_value(v) for v in after or () if v not in (before or ())]
        return f"{name}: " + ", ".join(["−" + v for v in gone] + ["+" + v for v in new])
    return f"{name}: {_value(before)} → {_value(after)}"


def _touches(record: dict, ids: set[str]) -> bool | None:
    """Did a set attribute of the record (a shared mailbox's members) gain one of the person's
    identities (True), lose one (False), or neither (None)?"""
    for a in record.get("attributes") or ():
        before, after = a.get("before"), a.get("after")
        if isinstance(before, list) or isinstance(after, list):
            was, now = {str(v) for v in before or ()}, {str(v) for v in after or ()}
            if (now - was) & ids:
                return True
            if (was - now) & ids:
                return False
    return None


def _closes(r: dict, keys: set[str], equipment: set[str], since: str) -> bool:
    """A record of the baja: since the request, a baja of one of the person's objects, the
    release of their equipment, or a set that lost them."""
    if str(r.get("time", "")) < since:
        return False
    key, movement = str(r.get("key", "")), r.get("movement")
    if key in keys and movement == "baja":
        return True
    if key in equipment and movement in ("baja", "modificacion"):
        return True
    return movement in ("baja", "modificacion") and _touches(r, keys) is False


def _opens(r: dict, keys: set[str], equipment: set[str]) -> bool:
    """A record that made, took over or kept one of the person's objects (or put them in a set)."""
    if r.get("status") != "applied" or r.get("movement") not in ("alta", "adopcion", "modificacion"):
        return False
    key = str(r.get("key", ""))
    return key in keys or key in equipment or _touches(r, keys) is True


def removals(records: list[dict], keys: set[str], equipment: set[str], since: str,
             personal: set[str] | None = None) -> list[Removed]:
    """Every object of the person's a target made or took over, and what its baja was: for each,
    the first record of the baja that was applied and read back, else the last one tried, else
    none (its access not removed: pending).  An object keyed by the person alone (`personal`:
    employee key, account, mailbox; by default all `keys`) made, taken over or changed again
    after that (a revert) is open again; an extension or a computer given to someone else
    afterwards is another story.  `records` are in the order they were made."""
    personal = keys if personal is None else personal
    opened: dict[tuple, dict] = {}
    closing: dict[tuple, dict] = {}
    for r in records:
        if r.get("kind") != "change" or r.get("object_kind") in NOT_ACCESS:
            continue
        obj = (r.get("target"), r.get("object_kind"), r.get("key"))
        done = closing.get(obj)
        settled = done is not None and done.get("status") == "applied" and done.get("verified")
        if _closes(r, keys, equipment, since):
            if not settled:
                closing[obj] = r
        elif _opens(r, keys, equipment):
            if settled and str(r.get("key", "")) in personal and r.get("status") == "applied":
                del closing[obj]  # given back to them after its baja: open again
            opened.setdefault(obj, r)
    out = []
    for obj in dict.fromkeys([*opened, *closing]):
        target, kind, key = obj
        r = closing.get(obj)
        if r is None:
            first = opened[obj]
            out.append(Removed(str(target), str(kind), str(key), str(first.get("label", key)), "baja", "",
                               NOT_REMOVED, False, ()))
            continue
        changed = tuple(_said(a) for a in r.get("attributes") or () if isinstance(a, dict))
        out.append(Removed(str(target), str(kind), str(key), str(r.get("label", key)), str(r.get("movement")),
                           str(r.get("time", "")), str(r.get("status", "")), bool(r.get("verified")), changed,
                           r.get("error")))
    return sorted(out, key=lambda item: (item.target, item.time or "~", item.key))


def approvers(records: list[dict], folio: str) -> tuple[str, ...]:
    """Who approved the baja, as the records of its changes say."""
    seen: dict[str, None] = {}
    for r in records:
        if r.get("kind") == "change" and r.get("folio") == folio:
            for who in (r.get("solicitud") or {}).get("approvers") or ():
                seen[str(who)] = None
    return tuple(seen)


def equipment_to_collect(key: str, then: DesiredState, now: DesiredState) -> list[Asset]:
    """The equipment they held when the baja was applied: collected once the desired state no
    longer assigns it to them (returned to the store, given to someone else, or decommissioned)."""
    current = {e.inventory_number: e for e in now.equipment}
    out = []
    for e in (e for e in then.equipment if e.person == key and e.status != "baja"):
        later = current.get(e.inventory_number)
        held = later is not None and later.person == key and later.status != "baja"
        said = later.status if later is not None else "—"
        if later is not None and later.person and later.person != key:
            said = f"{later.status} · {later.person}"
        out.append(Asset(e.inventory_number, f"{e.type} {e.brand} {e.model} · {e.serial}", e.unit, not held, said))
    return out


def lines_to_cancel(key: str, then: DesiredState, now: DesiredState) -> list[Asset]:
    """The carrier lines they held when the baja was applied: cancelled once the desired state
    says the line is a baja (or holds it for someone else)."""
    current = {line.number: line for line in now.lines}
    out = []
    for line in (x for x in then.lines if x.person == key and x.kind == "carrier" and x.status == "activa"):
        later = current.get(line.number)
        held = later is not None and later.person == key and later.status == "activa"
        said = later.status if later is not None else "—"
        if later is not None and later.person and later.person != key:
            said = f"{later.status} · {later.person}"
        carrier = " · ".join(x for x in (line.carrier, line.master_account, line.plan) if x)
        out.append(Asset(line.number, carrier, line.unit, not held, said))
    return out


def baja_de_servicios(key: str, now: DesiredState, then: DesiredState, records: list[dict],
                      orders: list[OrderItem], since: str, commit: str | None = None, made: str = "") -> BajaDeServicios:
    """The baja de servicios of `key`, a baja in `now` (the desired state read), from `then`
    (the state the baja was applied from), the audit `records` and the work `orders` it raised."""
    person = now.person(key)
    assert person is not None and not person.active  # the caller checks the person is a baja
    s = person.solicitud
    keys, equipment, personal = identities(person, then, now)
    unit = now.units.get(person.unit)
    return BajaDeServicios(
        key, person.display_name, person.title, unit.name if unit is not None else person.unit,
        now.account_names.get(key) or then.account_names.get(key), s.folio, s.date, s.requested_by, s.justification,
        approvers(records, s.folio), tuple(removals(records, keys, equipment, since, personal)),
        tuple(orders), tuple(equipment_to_collect(key, then, now)), tuple(lines_to_cancel(key, then, now)),
        commit, made)
