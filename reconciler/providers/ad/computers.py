"""Desktops and laptops as AD computer objects (desired_state/assets/equipment.yaml).

A computer lives in its unit's OU, named by its declared hostname, and carries:
    description      "HP ProDesk 400 G9 · inventario SSM-INV-2024-00123 · serie MXL4221ABC"
    location         where it is (the declaration's location)
    managedBy        the account of the person it is assigned to (resguardo); none when unassigned
    adminDescription the ownership marker, with its inventory number (the anchor, so a new
                     hostname is a rename) and its holder: `reconciler computer=<inv> holder=<key>`
A decommission (status: baja) disables it, clears managedBy, stamps the verdict in the
description and moves it to the bajas OU, like a person's baja.  A holder who is a baja is
released: managedBy is cleared in the same plan.  `expand` and `diff` are pure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

from ldap3 import MODIFY_REPLACE, SUBTREE, Connection

from reconciler.i18n import lazy
from reconciler.plan import AttributeChange, Change, Movement
from reconciler import dn as dnlib
from reconciler.providers.ad.read import _one, paged_search
from reconciler.providers.ad.records import MARKER, unit_ou
from reconciler.providers.ad.target import ADTarget

if TYPE_CHECKING:  # a name for types only: a settled plan loads no desired state
    from reconciler.desired.model import DesiredState

KIND = "computer"
UF_ACCOUNTDISABLE = 0x2
UF_WORKSTATION_TRUST_ACCOUNT = 0x1000
# A domain controller (server trust, a read-only one's partial secrets) or a computer trusted
# to delegate: the domain's own, never adopted as someone's desktop.
_NEVER_ADOPTED = 0x2000 | 0x80000 | 0x1000000 | 0x4000000
ATTRIBUTES = ("description", "location", "managedBy")
READ = ["cn", "sAMAccountName", "description", "location", "managedBy", "adminDescription", "userAccountControl"]


@dataclass(frozen=True)
class Computer:
    inventory: str  # the anchor
    hostname: str
    parent: str  # OU DN
    description: str
    location: str | None
    holder: str | None  # employee key of the person it is assigned to
    enabled: bool
    dn: str | None = field(default=None, compare=False)
    uac: int | None = field(default=None, compare=False)
    managed_by: str | None = field(default=None, compare=False)  # the DN, as read
    unit: str | None = field(default=None, compare=False)
    folio: str | None = field(default=None, compare=False)
    origins: tuple = field(default=(), compare=False)
    label: str = field(default="", compare=False)

    @property
    def target_dn(self) -> str:
        return dnlib.child("CN", self.hostname, self.parent)

    def marker(self) -> str:
        return f"{MARKER} computer={self.inventory}" + (f" holder={self.holder}" if self.holder else "")


def expand_computers(state: DesiredState, target: ADTarget) -> dict[str, Computer]:
    from reconciler.desired.assets import COMPUTERS, holder  # the desired state's: loaded by now

    people = {p.employee_key: p for p in state.people}
    out = {}
    for thing in state.equipment:
        if thing.type not in COMPUTERS or not thing.hostname:
            continue
        unit = state.units.get(thing.unit)
        description = f"{thing.brand} {thing.model} · inventario {thing.inventory_number} · serie {thing.serial}"
        label = f"{thing.hostname} ({thing.type} {thing.inventory_number})"
        origins = (thing.source,)
        if thing.status == "baja":
            verdict = thing.decommission
            stamp = f"Baja {verdict.date} dictamen {verdict.dictamen} ({verdict.reason})" if verdict else "Baja"  # not for people
            out[thing.inventory_number] = Computer(
                thing.inventory_number, thing.hostname, target.bajas_ou, f"{stamp} · {description}", thing.location,
                None, False, unit=thing.unit, folio=verdict.dictamen if verdict else None, origins=origins, label=label)
            continue
        who = holder(thing, people)
        if thing.person and who is None:  # released by the holder's baja: the baja's declaration decides it
            origins += (people[thing.person].source,)
        parent = unit_ou(target, unit.ou) if unit else target.people_ou
        out[thing.inventory_number] = Computer(
            thing.inventory_number, thing.hostname, parent, description, thing.location, who, True, unit=thing.unit,
            folio=thing.solicitud.folio if thing.solicitud else None, origins=origins, label=label)
    return out


def _parse_marker(value: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in value.split()[1:] if "=" in w)


def computer_entries(conn: Connection, target: ADTarget, since: str = "") -> Iterator[dict]:
    """The search entries of every computer under the people and bajas OUs, managed or not
    (`since`: an extra filter, the changed ones), with their objectGUID: what a settled plan
    (settled.py) compares, read exactly as the plan reads it."""
    for base in (target.people_ou, target.bajas_ou):
        yield from paged_search(conn, base, f"(&(objectCategory=computer){since})", [*READ, "objectGUID"], SUBTREE)


def read_computers(conn: Connection, target: ADTarget, seen: dict[str, str] | None = None) -> dict[str, Computer]:
    """Every managed computer under the people and bajas OUs: one search each.  `seen`, when
    given, gets the digest of every computer entry found (settled.entry_digest), by objectGUID."""
    from reconciler.providers.ad.settled import entry_digest

    out = {}
    for entry in computer_entries(conn, target):
        if seen is not None:
            seen[_one(entry["attributes"], "objectGUID") or entry["dn"]] = entry_digest(entry["dn"], entry["attributes"])
        a = entry["attributes"]
        marker = _one(a, "adminDescription") or ""
        # The filter's old `(adminDescription=<MARKER> computer=*)`, judged here: the settled
        # plan must see every computer, managed or not.  Attribute matching is caseless.
        if not marker.casefold().startswith(f"{MARKER} computer=".casefold()):
            continue
        meta = _parse_marker(marker)
        if "computer" not in meta:
            continue
        uac = int(_one(a, "userAccountControl") or 0)
        out[meta["computer"]] = Computer(
            meta["computer"], dnlib.first_value(entry["dn"]), dnlib.parent(entry["dn"]), _one(a, "description") or "",
            _one(a, "location"), meta.get("holder"), not uac & UF_ACCOUNTDISABLE, dn=entry["dn"], uac=uac,
            managed_by=_one(a, "managedBy"))
    return out


def foreign_hostnames(conn: Connection, target: ADTarget, hostnames) -> dict[str, tuple[str, "Computer | None"]]:
    """casefolded hostname -> (DN, the computer as read when it could be adopted, else None),
    for the wanted names that objects the reconciler does not own already hold anywhere in the
    domain (sAMAccountName is unique domain-wide): OR-batches.  Only a plain workstation account
    made by hand, under adopt_from, can be adopted: never a domain controller, a computer trusted
    to delegate, one with adminCount or another primary group, a critical object, nor a user."""
    from ldap3.utils.conv import escape_filter_chars

    names, held = sorted(hostnames), {}
    for i in range(0, len(names), 100):
        terms = "".join(f"(sAMAccountName={escape_filter_chars(n)}$)" for n in names[i:i + 100])
        for entry in paged_search(conn, target.base_dn, f"(|{terms})",
                                  READ + ["objectClass", "isCriticalSystemObject", "adminCount", "primaryGroupID"]):
            a = entry["attributes"]
            if (_one(a, "adminDescription") or "").startswith(f"{MARKER} computer="):
                continue
            name = (_one(a, "sAMAccountName") or "").rstrip("$")
            classes = {c.casefold() for c in a.get("objectClass") or ()}
            uac = int(_one(a, "userAccountControl") or 0)
            adoptable = "computer" in classes and uac & UF_WORKSTATION_TRUST_ACCOUNT and not uac & _NEVER_ADOPTED and \
                str(_one(a, "isCriticalSystemObject") or "").upper() != "TRUE" and \
                str(_one(a, "adminCount") or "0") in ("0", "") and \
                str(_one(a, "primaryGroupID") or "515") == "515" and target.adoptable(entry["dn"])
            found = Computer("", dnlib.first_value(entry["dn"]), dnlib.parent(entry["dn"]), _one(a, "description") or "",
                             _one(a, "location"), None, not uac & UF_ACCOUNTDISABLE, dn=entry["dn"], uac=uac,
                             managed_by=_one(a, "managedBy")) if adoptable else None
            held[name.casefold()] = (entry["dn"], found)
    return held


def adoption(want: Computer, found: Computer, target: ADTarget, holder_dn: str | None) -> Change:
    """A computer account made by hand that a declared computer's hostname names: adopted, its
    marker written over whatever adminDescription held, every difference shown."""
    have = Computer(want.inventory, found.hostname, found.parent, found.description, found.location, None,
                    found.enabled, dn=found.dn, uac=found.uac, managed_by=found.managed_by)
    attributes = (AttributeChange("adminDescription", None, want.marker()), *_changes(want, have, holder_dn))
    return Change(Movement.ADOPCION, target.name, KIND, want.inventory, want.label, attributes,
                  reason=lazy("existing computer {dn}, made by hand", dn=found.dn), folio=want.folio, unit=want.unit,
                  origins=want.origins, desired=want, actual=have)


def _changes(want: Computer, have: Computer | None, holder_dn: str | None) -> tuple[AttributeChange, ...]:
    pairs = [("hostname", have.hostname if have else None, want.hostname),
             ("ou", have.parent if have else None, want.parent),
             ("description", have.description if have else None, want.description),
             ("location", have.location if have else None, want.location),
             ("holder", have.holder if have else None, want.holder),
             ("enabled", have.enabled if have else None, want.enabled)]
    out = []
    for name, before, after in pairs:
        if name == "ou" and have is not None and dnlib.same(before, after):
            continue
        if before != after and not (have is None and after is None):
            out.append(AttributeChange(name, before, after))
    if have is not None and holder_dn is not None and want.holder == have.holder and \
            not dnlib.same(have.managed_by or "", holder_dn):
        out.append(AttributeChange("managedBy", have.managed_by, holder_dn))  # the holder's account moved
    return tuple(out)


def diff_computers(desired: Mapping[str, Computer], actual: Mapping[str, Computer], target: ADTarget,
                   holder_dns: Mapping[str, str]) -> list[Change]:
    """Altas, modificaciones (renames, moves, new holders) and bajas (decommissions) of
    computers; `holder_dns` maps employee keys to their accounts' DNs, as they will be."""
    altas, modificaciones, bajas = [], [], []
    for inventory in sorted(desired):
        want, have = desired[inventory], actual.get(inventory)
        if have is None and not want.enabled:
            continue  # decommissioned before it ever was an AD object
        attributes = _changes(want, have, holder_dns.get(want.holder) if want.holder else None)
        if not attributes:
            continue
        movement = (Movement.ALTA if have is None else
                    Movement.BAJA if have.enabled and not want.enabled else Movement.MODIFICACION)
        reason = lazy("released: its holder is a baja") if have is not None and have.holder and want.holder is None \
            and want.enabled else ""
        change = Change(movement, target.name, KIND, inventory, want.label, attributes, reason=reason,
                        folio=want.folio, unit=want.unit, origins=want.origins, desired=want, actual=have)
        {Movement.ALTA: altas, Movement.MODIFICACION: modificaciones, Movement.BAJA: bajas}[movement].append(change)
    for inventory in sorted(set(actual) - set(desired)):
        have = actual[inventory]
        if not have.enabled and dnlib.same(have.parent, target.bajas_ou):
            continue
        gone = Computer(inventory, have.hostname, target.bajas_ou, f"Baja sin dictamen: ya no declarado · "  # not for people
                        f"{have.description}", have.location, None, False, label=f"{have.hostname} ({inventory})")
        bajas.append(Change(Movement.BAJA, target.name, KIND, inventory, gone.label, _changes(gone, have, None),
                            reason=lazy("no longer declared in desired_state"), desired=gone, actual=have))
    return altas + modificaciones + bajas


def apply_computer(do: Callable[..., str | None], change: Change, holder_dns: Mapping[str, str]) -> str | None:
    """One computer change; an error message, or None.  `do(what, operation name, *args)`
    runs one operation of the connection (the applier's, which survives a dropped one)."""
    want: Computer = change.desired
    have: Computer | None = change.actual
    managed_by = holder_dns.get(want.holder) if want.holder else None
    if want.holder and managed_by is None and have is not None and have.holder == want.holder:
        # The holder's account is not this target's to know (a unit not yet managed): whatever
        # managedBy names stays, never cleared by a change that is about something else.
        managed_by = have.managed_by
    uac = UF_WORKSTATION_TRUST_ACCOUNT | (0 if want.enabled else UF_ACCOUNTDISABLE)
    if have is None:
        attrs = {"sAMAccountName": f"{want.hostname}$", "description": want.description,
                 "adminDescription": want.marker(), "userAccountControl": uac}
        if want.location:
            attrs["location"] = want.location
        if managed_by:
            attrs["managedBy"] = managed_by
        return do(lazy("creating computer {dn}", dn=want.target_dn), "add", want.target_dn,
                  ["top", "person", "organizationalPerson", "user", "computer"], attrs)
    dn = have.dn
    if want.hostname != have.hostname or not dnlib.same(want.parent, have.parent):
        superior = want.parent if not dnlib.same(want.parent, have.parent) else None
        if error := do(lazy("moving {dn}", dn=dn), "modify_dn", dn, dnlib.rdn("CN", want.hostname),
                       new_superior=superior):
            return error
        dn = want.target_dn
    mods = {"description": [(MODIFY_REPLACE, [want.description])],
            "location": [(MODIFY_REPLACE, [want.location] if want.location else [])],
            "managedBy": [(MODIFY_REPLACE, [managed_by] if managed_by else [])],
            "adminDescription": [(MODIFY_REPLACE, [want.marker()])],
            "userAccountControl": [(MODIFY_REPLACE, [((have.uac or UF_WORKSTATION_TRUST_ACCOUNT) & ~UF_ACCOUNTDISABLE)
                                                     | (0 if want.enabled else UF_ACCOUNTDISABLE)])]}
    if want.hostname != have.hostname:
        mods["sAMAccountName"] = [(MODIFY_REPLACE, [f"{want.hostname}$"])]
    return do(lazy("modifying computer {dn}", dn=dn), "modify", dn, mods)
