"""Mailboxes as the diff sees them: what the desired state declares for one mail target, and
what its registry and doveadm say.  `expand` is pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from reconciler.providers.mail.registry import SHARED, Entry
from reconciler.providers.mail.target import MailTarget

if TYPE_CHECKING:  # names for types only: a settled plan loads no desired state
    from reconciler.desired.model import DesiredState, Request

PERSON = "mailbox"
SHARED_KIND = "shared-mailbox"


@dataclass(frozen=True)
class Mailbox:
    key: str  # employee key, or shared:<address>
    kind: str  # PERSON or SHARED_KIND
    address: str
    quota: str
    aliases: tuple[str, ...] = ()  # sorted
    is_open: bool = True
    members: tuple[str, ...] = ()  # a shared mailbox's members, by address, sorted
    unit: str | None = None
    label: str = ""
    folio: str | None = field(default=None, compare=False)
    purge: Request | None = field(default=None, compare=False)
    origins: tuple = field(default=(), compare=False)


@dataclass(frozen=True)
class ActualMail:
    entries: Mapping[str, Entry]  # managed entries by key
    holders: Mapping[str, Entry]  # every entry by each address it answers to (address, aliases, former)
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # shared key -> member addresses
    maps: Mapping[str, str] = field(default_factory=dict)  # the derived files as they are on disk
    unmanaged: int = 0  # entries made by hand, left alone
    registry: tuple[Entry, ...] = ()  # every entry, other domains' too: the maps derive from all


def shared_key(address: str) -> str:
    return f"{SHARED}:{address}"


def expand(state: DesiredState, target: MailTarget) -> dict[str, Mailbox]:
    """The mailboxes `state` declares in the target's domains, by key."""
    boxes: dict[str, Mailbox] = {}
    domains = set(target.domains)
    address_of, source_of = {}, {}
    for p in state.people:
        box = p.mailbox
        if box is None or box.address.rsplit("@", 1)[1] not in domains:
            continue
        address_of[p.employee_key] = box.address if p.active else None
        source_of[p.employee_key] = p.source
        boxes[p.employee_key] = Mailbox(
            p.employee_key, PERSON, box.address, box.quota or target.default_quota, tuple(sorted(box.aliases)),
            p.active, unit=p.unit, label=f"{box.address} ({p.display_name})", folio=p.solicitud.folio,
            purge=box.purge, origins=(p.source,))
    for s in state.shared_mailboxes:
        if s.address.rsplit("@", 1)[1] not in domains:
            continue
        members = tuple(sorted({a for k in s.members if (a := address_of.get(k))}))
        key = shared_key(s.address)
        # Who gets in is decided by the members' own entries too (their addresses): an approval
        # of the shared mailbox must cover those lines as well.
        boxes[key] = Mailbox(key, SHARED_KIND, s.address, s.quota or target.default_quota, tuple(sorted(s.aliases)),
                             True, members, s.unit, f"{s.address} ({s.name})", s.solicitud.folio,
                             origins=(s.source, *(source_of[k] for k in s.members if k in source_of)))
    return boxes


def actual_mail(entries: list[Entry], members: Mapping[str, tuple[str, ...]], maps: Mapping[str, str],
                domains: tuple[str, ...]) -> ActualMail:
    """The registry as the diff sees it: only the entries in the target's domains (a registry
    shared with other domains keeps theirs untouched)."""
    managed, holders, unmanaged = {}, {}, 0
    for e in entries:
        if e.address.rsplit("@", 1)[-1] not in domains:
            continue
        if e.managed and e.key:
            managed[e.key] = e
        else:
            unmanaged += 1
        for address in (e.address, *e.aliases, *e.former):
            holders.setdefault(address, e)
    return ActualMail(managed, holders, dict(members), dict(maps), unmanaged, tuple(entries))
