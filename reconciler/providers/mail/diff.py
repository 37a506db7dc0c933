"""The diff between declared and actual mailboxes: a pure function, no I/O.

Mailboxes are matched by owner (the employee key, or the shared mailbox's address), so a new
address for a person is a modificación of the same mailbox, the old address kept as an alias.
An unmanaged registry entry at a declared address is adopted, never created a second time.
Changes come in apply order: altas, modificaciones, bajas.  With the target's managed_units
(staged rollout) only those units' mailboxes are looked at; the others' registry entries stay
as they are, and the Postfix maps, derived from the whole registry, keep delivering to them.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, Iterable

from reconciler.i18n import lazy, lazy_n
from reconciler.plan import AttributeChange, Change, Conflict, Movement
from reconciler.providers.mail.records import PERSON, SHARED_KIND, ActualMail, Mailbox
from reconciler.providers.mail.registry import SHARED, Entry, maps
from reconciler.providers.mail.target import MailTarget

STATUS = {True: lazy("open"), False: lazy("closed")}


def former_addresses(want: Mailbox, have: Entry) -> tuple[str, ...]:
    """Addresses the mailbox had: they keep delivering to it (the current one too, once it changes)."""
    former = set(have.former) | ({have.address} if have.address != want.address else set())
    return tuple(sorted(former - {want.address} - set(want.aliases)))


def attribute_changes(want: Mailbox, have: Entry | None, members: tuple[str, ...] = ()) -> tuple[AttributeChange, ...]:
    pairs = [
        ("address", have.address if have else None, want.address),
        ("aliases", tuple(sorted(have.aliases)) if have else (), want.aliases),
        ("quota", have.quota if have else None, want.quota),
        ("status", STATUS[have.is_open] if have else None, STATUS[want.is_open]),
    ]
    if have is not None:
        pairs.append((lazy("former addresses"), tuple(sorted(have.former)), former_addresses(want, have)))
        if have.managed:  # the registry keeps the unit: staged rollout decides its mailbox's bajas by it
            pairs.append(("unit", have.unit, want.unit))
    if want.kind == SHARED_KIND:
        pairs.append(("members", tuple(sorted(members)), want.members))
    if have is not None and not have.managed:
        pairs.append(("owner", None, want.key))
    out = []
    for name, before, after in pairs:
        if have is None and name == "aliases" and not after:
            continue
        if before != after:
            out.append(AttributeChange(name, before, after))
    return tuple(out)


def _change(movement: Movement, target: MailTarget, want: Mailbox, have: Entry | None,
            attributes: tuple[AttributeChange, ...], reason: str = "") -> Change:
    return Change(movement, target.name, want.kind, want.key, want.label, attributes, reason=reason,
                  folio=want.folio, unit=want.unit, origins=want.origins, desired=want, actual=have)


def _taken(want: Mailbox, actual: ActualMail, mine: Entry | None) -> str | None:
    """Is an address the mailbox needs held by another mailbox than `mine`?"""
    for address in (want.address, *want.aliases):
        holder = actual.holders.get(address)
        if holder is None or holder is mine:
            continue
        if not holder.managed:
            return lazy("{address} is already the registry's mailbox {holder}, made by hand; left alone. "
                        "Only a new mailbox declared at that very address adopts it", address=address,
                        holder=holder.address)
        if holder.owner == SHARED:
            return lazy("{address} already belongs to the shared mailbox {holder}; left alone. Choose another "
                        "address, or free it first", address=address, holder=holder.address)
        return lazy("{address} already belongs to the mailbox of employee {owner} ({holder}); left alone. Choose "
                    "another address, or free it first", address=address, owner=holder.owner, holder=holder.address)
    return None


def _purge(want: Mailbox, have: Entry, target: MailTarget, today: str) -> Change | Conflict | None:
    if want.purge is None or have.is_open:
        return None
    try:
        until = dt.date.fromisoformat(have.closed) + dt.timedelta(days=target.retention_days)
    except ValueError:
        return Conflict(target.name, want.key, want.label, lazy(
            "the registry's baja date {closed!r} is not a date (edited by hand?), so the retention period cannot "
            "be checked; left alone", closed=have.closed))
    if dt.date.fromisoformat(today) < until:
        return Conflict(target.name, want.key, want.label, lazy_n(
            "purge {folio} asks to delete the mailbox before the end of its retention ({until}, {n} day after "
            "its baja on {closed}); left alone",
            "purge {folio} asks to delete the mailbox before the end of its retention ({until}, {n} days after "
            "its baja on {closed}); left alone",
            target.retention_days, folio=want.purge.folio, until=until.isoformat(), closed=have.closed))
    return Change(Movement.BAJA, target.name, want.kind, want.key, want.label,
                  (AttributeChange(lazy("stored mail"), lazy("kept since {closed}", closed=have.closed),
                                   lazy("deleted")),),
                  reason=lazy("purge after retention, folio {folio}", folio=want.purge.folio), folio=want.purge.folio,
                  unit=want.unit, origins=want.origins, desired=want, actual=have)


def _one(want: Mailbox, have: Entry | None, actual: ActualMail, target: MailTarget,
         today: str) -> Change | Conflict | None:
    members = actual.members.get(want.key, ())
    if have is None:
        holder = actual.holders.get(want.address)
        if holder is not None and not holder.managed and holder.address == want.address:
            if problem := _taken(want, actual, holder):
                return Conflict(target.name, want.key, want.label, problem)
            # An adoption, whatever the person's status: taking over what was made by hand is for
            # the reconciler's own approvers (review.scope_of), even when it closes the mailbox.
            return _change(Movement.ADOPCION, target, want, holder, attribute_changes(want, holder, members),
                           reason=lazy("adopted: the registry already has this mailbox; it is not created again"))
        if not want.is_open:
            return None  # a baja for someone who never had a mailbox here
        if problem := _taken(want, actual, None):
            return Conflict(target.name, want.key, want.label, problem)
        return _change(Movement.ALTA, target, want, None, attribute_changes(want, None))
    if (purge := _purge(want, have, target, today)) is not None:
        return purge
    if problem := _taken(want, actual, have):
        return Conflict(target.name, want.key, want.label, problem)
    attributes = attribute_changes(want, have, members)
    if not attributes:
        return None
    movement = Movement.BAJA if have.is_open and not want.is_open else Movement.MODIFICACION
    reason = lazy("address changed: the old address stays as an alias") if have.address != want.address else ""
    return _change(movement, target, want, have, attributes, reason)


def closing(have: Entry, target: MailTarget, today: str) -> Mailbox:
    """What a managed mailbox that nobody declares any more becomes: closed, kept, no members."""
    kind = SHARED_KIND if have.owner == SHARED else PERSON
    return Mailbox(have.key, kind, have.address, have.quota or target.default_quota, tuple(sorted(have.aliases)),
                   False, (), have.unit, label=have.address)


def diff(desired: dict[str, Mailbox], actual: ActualMail, target: MailTarget, today: str,
         keys: Iterable[str] | None = None,
         manages: Callable[[str | None], bool] | None = None) -> tuple[list[Change], list[Conflict]]:
    """Every change that makes `actual` match `desired`, and the conflicts.  With `keys` (an
    incremental plan), only those owners' mailboxes are looked at.  `manages`: whether a unit's
    mailboxes are managed here (staged rollout; by default the target's managed_units)."""
    manages = manages or target.manages
    only = set(keys) if keys is not None else None
    altas, modificaciones, bajas, conflicts = [], [], [], []
    for key in sorted(desired):
        if only is not None and key not in only:
            continue
        if not manages(desired[key].unit):
            if key in actual.entries:  # a managed mailbox whose owner is now declared in an unmanaged unit
                conflicts.append(Conflict(target.name, key, desired[key].label, lazy(
                    "declared in a unit not managed on this target (managed_units): its mailbox is left as it is, "
                    "neither changed nor closed")))
            continue
        result = _one(desired[key], actual.entries.get(key), actual, target, today)
        if isinstance(result, Conflict):
            conflicts.append(result)
        elif result is not None:
            closing_it = result.movement is Movement.ADOPCION and not result.desired.is_open
            {Movement.ADOPCION: bajas if closing_it else modificaciones, Movement.ALTA: altas,
             Movement.MODIFICACION: modificaciones, Movement.BAJA: bajas}[result.movement].append(result)
    for key in sorted(set(actual.entries) - set(desired)):
        have = actual.entries[key]
        if (only is not None and key not in only) or not have.is_open or not manages(have.unit):
            continue
        want = closing(have, target, today)
        bajas.append(_change(Movement.BAJA, target, want, have,
                             attribute_changes(want, have, actual.members.get(key, ())),
                             reason=lazy("no longer declared in desired_state")))
    changes = altas + modificaciones + bajas
    if only is None and (drift := maps_drift(actual, target)):
        changes.append(drift)
    return changes, conflicts


def maps_drift(actual: ActualMail, target: MailTarget) -> Change | None:
    """The Postfix maps and the deny list must be exactly what the registry implies."""
    wanted = maps(list(actual.registry), target.new_mail_after_baja)
    differ = sorted(name for name, text in wanted.items() if actual.maps.get(name) != text)
    if not differ:
        return None
    edited = [name for name in differ if actual.maps.get(name)]  # an empty file was never written
    return Change(Movement.MODIFICACION, target.name, "mail-maps", "maps", lazy("Postfix maps and Dovecot deny list"),
                  tuple(AttributeChange(name, lazy("differs from the registry") if name in edited
                                        else lazy("not written yet"), lazy("rewritten from the registry"))
                        for name in differ),
                  drift=bool(edited), reason=lazy("edited outside the reconciler (drift)") if edited else "")
