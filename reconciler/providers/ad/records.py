"""Directory records: what a person becomes in Active Directory, and what was read from it.

The same Account type holds both sides of the diff.  `expand` turns the desired state into
the accounts, groups and OUs one AD target should have; it is pure.

Attribute mapping (the request form FO-DPE-STI-DI-04 on the left):
    employee key            employeeID       (the anchor: renames and moves keep it)
    given names / surnames  givenName / sn   (sn holds both surnames)
    full name               displayName      "José Luis Núñez O'Brien"
    title                   title
    dirección               company
    subdirección            division
    departamento            department
    unit name               physicalDeliveryOfficeName
    phone / extension       telephoneNumber / ipPhone
    baja stamp              description      "Baja 2026-11-20 folio SESVER-2026-0118"
    mailbox address         mail             the login Dovecot looks the account up by
    address and aliases     proxyAddresses   "SMTP:address" (primary), "smtp:alias"
The CURP is deliberately not written to AD: it is sensitive personal data that no directory
consumer needs, so it stays in the restricted Git repository only.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Mapping

from reconciler.desired.naming import common_name, namesake_groups
from reconciler.i18n import _
from reconciler import dn as dnlib
from reconciler.providers.ad.target import ADTarget

if TYPE_CHECKING:  # names for types only: a settled plan loads no desired state
    from reconciler.desired.model import DesiredState, Person

MARKER = "reconciler"  # adminDescription of every object the reconciler owns
MANAGED_ATTRIBUTES = (
    "sAMAccountName", "userPrincipalName", "givenName", "sn", "displayName", "employeeID", "title",
    "company", "division", "department", "physicalDeliveryOfficeName", "telephoneNumber", "ipPhone",
    "description", "mail", "proxyAddresses",
)
MULTI_VALUED = frozenset({"proxyAddresses"})  # held as sorted tuples


@dataclass(frozen=True)
class Account:
    key: str  # employeeID
    cn: str
    parent: str  # DN of the OU the account lives in
    attributes: Mapping[str, str | None]
    enabled: bool
    groups: frozenset[str]  # group names (CNs under the managed groups OU)
    # Read from the directory only:
    dn: str | None = field(default=None, compare=False)
    applied_hash: str | None = field(default=None, compare=False)
    must_change_password: bool = field(default=False, compare=False)
    uac: int | None = field(default=None, compare=False)  # userAccountControl as read
    marker: str | None = field(default=None, compare=False)  # adminDescription as read
    protected: bool = field(default=False, compare=False)  # built-in or privileged: never adopted
    # From the desired state only:
    folio: str | None = field(default=None, compare=False)
    resets: tuple = field(default=(), compare=False)  # desired.model.Request: password resets declared
    unit: str | None = field(default=None, compare=False)  # unit key
    origins: tuple = field(default=(), compare=False)  # Sources of the declarations behind it
    adopt: str | None = field(default=None, compare=False)  # the hand-made account it is declared to adopt

    @property
    def sam(self) -> str:
        return self.attributes.get("sAMAccountName") or ""

    @property
    def display(self) -> str:
        return f"{self.sam} ({self.attributes.get('displayName') or self.cn})"

    @property
    def target_dn(self) -> str:
        return dnlib.child("CN", self.cn, self.parent)

    def state(self) -> tuple:
        """Everything the reconciler manages, in a form where equal means 'nothing to do'."""
        attrs = tuple((name, self.attributes.get(name) or None) for name in MANAGED_ATTRIBUTES)
        return (attrs, self.cn, dnlib.key(self.parent), self.enabled,
                tuple(sorted(g.casefold() for g in self.groups)))

    def state_hash(self) -> str:
        return hashlib.sha256(repr(self.state()).encode("utf-8")).hexdigest()[:16]

    @property
    def offboarded(self) -> bool:
        return not self.enabled and not self.groups


@dataclass(frozen=True)
class DesiredDirectory:
    accounts: Mapping[str, Account]
    groups: Mapping[str, str]  # group name -> description
    ous: tuple[str, ...]  # DNs, parents before children
    # Where OUs and groups come from, for provenance: dn.key(ou) / group name -> (unit key, Sources)
    ou_origins: Mapping[tuple, tuple] = field(default_factory=dict)
    group_origins: Mapping[str, tuple] = field(default_factory=dict)
    # Staged rollout (the target's managed_units): the people declared in the other units, and
    # those units' OUs; their accounts are left alone, whatever they look like.
    out_of_scope: frozenset[str] = frozenset()
    unmanaged_ous: tuple[str, ...] = ()


def marker_value(account_hash: str) -> str:
    return f"{MARKER} applied={account_hash}"


def baja_stamp(date: str, folio: str | None) -> str:
    return f"Baja {date} folio {folio}" if folio else f"Baja {date} sin folio: ya no declarada en desired_state"  # not for people


def unit_ou(target: ADTarget, ou_name: str) -> str:
    return dnlib.child("OU", ou_name, target.people_ou)


def bajas_cn(cn: str, sam: str) -> str:
    """In the bajas OU people of every unit meet: the account name keeps CNs unique there.
    Idempotent, so an account already given baja once never gets the suffix twice."""
    suffix = f" ({sam})"
    return cn if cn.endswith(suffix) else cn + suffix


_NAMESAKES: list = [None, {}]  # (the state they were found for, employee key -> sources)


def namesakes(state: DesiredState) -> Mapping[str, tuple]:
    """For each person whose account name depends on others (people with the same base name
    and a lower employee key, or an explicit name equal to it), where those others are
    declared: a namesake's alta renames this account, so it is part of this change."""
    if _NAMESAKES[0] is not state:
        found = {}
        for group in namesake_groups(state.people):
            group.sort(key=lambda p: (not p.explicit_sam, p.employee_key))
            for i, p in enumerate(group):
                found[p.employee_key] = tuple(q.source for q in group[:i] if q.source is not None)
        _NAMESAKES[:] = [state, found]
    return _NAMESAKES[1]


def person_account(person: Person, state: DesiredState, target: ADTarget) -> Account:
    sam = state.account_names[person.employee_key]
    unit = state.units[person.unit]
    attributes = {
        "sAMAccountName": sam,
        "userPrincipalName": f"{sam}@{target.upn_suffix}",
        "givenName": person.given_names,
        "sn": person.surnames,
        "displayName": person.display_name,
        "employeeID": person.employee_key,
        "title": person.title,
        "company": person.direction,
        "division": person.subdirection,
        "department": person.department,
        "physicalDeliveryOfficeName": unit.name,
        "telephoneNumber": person.phone,
        "ipPhone": person.extension,
        "description": None,
        **mail_attributes(person),
    }
    cn = common_name(person)
    origins = tuple(s for s in (person.source, unit.source, *(state.entitlements[e].source
                                                              for e in person.entitlements),
                                *namesakes(state).get(person.employee_key, ())) if s is not None)
    if person.active:
        groups = frozenset(g for e in person.entitlements if (g := state.entitlements[e].group))  # system-only: none
        return Account(person.employee_key, cn, unit_ou(target, unit.ou), attributes, True, groups,
                       folio=person.solicitud.folio, resets=person.password_resets, unit=unit.key, origins=origins,
                       adopt=person.adopt)
    attributes["description"] = baja_stamp(person.solicitud.date, person.solicitud.folio)
    return Account(person.employee_key, bajas_cn(cn, sam), target.bajas_ou, attributes, False, frozenset(),
                   folio=person.solicitud.folio, unit=unit.key, origins=origins[:1], adopt=person.adopt)


def mail_attributes(person: Person) -> dict:
    """`mail` and `proxyAddresses` as the person's declared mailbox says (none without one)."""
    box = person.mailbox
    if box is None:
        return {"mail": None, "proxyAddresses": None}
    proxies = tuple(sorted([f"SMTP:{box.address}"] + [f"smtp:{a}" for a in box.aliases]))
    return {"mail": box.address, "proxyAddresses": proxies}


def offboarded(account: Account, target: ADTarget, today: str) -> Account:
    """What a managed account that nobody declares any more becomes: a baja without a folio."""
    attributes = dict(account.attributes)
    attributes["description"] = baja_stamp(today, None)
    return replace(account, cn=bajas_cn(account.cn, account.sam), parent=target.bajas_ou,
                   attributes=attributes, enabled=False, groups=frozenset(), dn=None, applied_hash=None)


def _ancestors(dn: str, base_dn: str) -> list[str]:
    """OU DNs from just below base_dn down to dn itself."""
    chain = []
    while dn and not dnlib.same(dn, base_dn):
        chain.append(dn)
        dn = dnlib.parent(dn)
    return list(reversed(chain))


def expand(state: DesiredState, target: ADTarget) -> DesiredDirectory:
    target.check_managed_units(state.units)
    accounts = {p.employee_key: person_account(p, state, target) for p in state.people if target.manages(p.unit)}
    out_of_scope = frozenset(p.employee_key for p in state.people if not target.manages(p.unit))
    ous: dict[tuple, str] = {}
    roots = [target.people_ou, target.groups_ou, target.bajas_ou]
    computers = {unit_ou(target, state.units[e.unit].ou) for e in state.equipment
                 if e.type in ("desktop", "laptop") and e.status != "baja" and e.unit in state.units
                 and target.manages(e.unit)}
    units = sorted({a.parent for a in accounts.values() if a.enabled} | computers)
    for ou in roots + units:
        for step in _ancestors(ou, target.base_dn):
            ous.setdefault(dnlib.key(step), step)
    groups, group_origins = {}, {}
    for ent in sorted((e for e in state.entitlements.values() if e.group), key=lambda e: e.group):
        groups.setdefault(ent.group, ent.description)
        group_origins.setdefault(ent.group, (None, (ent.source,) if ent.source else ()))
    ou_origins = {dnlib.key(unit_ou(target, u.ou)): (u.key, (u.source,) if u.source else ())
                  for u in state.units.values()}
    unmanaged = tuple(unit_ou(target, u.ou) for u in state.units.values() if not target.manages(u.key))
    return DesiredDirectory(accounts, groups, tuple(ous.values()), ou_origins, group_origins, out_of_scope, unmanaged)


def undo_ldif(before: Account, after: Account, groups: Mapping[str, str], groups_ou: str) -> str:
    """LDIF (RFC 2849) that returns an account from `after` (what apply makes of it) to
    `before` (as read): moved back if apply moves it, every managed attribute and the
    enabled flag as they were, and the group memberships it had.  For `ldapmodify -f` or
    Samba's `ldbmodify`, by hand, after reading it."""
    from reconciler.audit.before import ldif_comment, ldif_line

    old_dn = before.dn or before.target_dn
    new_dn = after.target_dn if after is not None else old_dn
    out = [ldif_comment(_("{account}: as it was before the run", account=before.display))]
    if after is not None and not dnlib.same(new_dn, old_dn):
        out += [ldif_line("dn", new_dn), "changetype: modrdn", ldif_line("newrdn", dnlib.rdn("CN", before.cn)),
                "deleteoldrdn: 1", ldif_line("newsuperior", before.parent), ""]
    out += [ldif_line("dn", old_dn), "changetype: modify"]
    for name in MANAGED_ATTRIBUTES:
        value = before.attributes.get(name)
        values = list(value) if isinstance(value, tuple) else [value] if value else []
        out += [f"replace: {name}", *(ldif_line(name, v) for v in values), "-"]
    if before.uac is not None:
        out += ["replace: userAccountControl", f"userAccountControl: {before.uac}", "-"]
    if before.applied_hash is not None:
        out += ["replace: adminDescription", ldif_line("adminDescription", marker_value(before.applied_hash)), "-"]
    else:  # adopted: whatever the account held before the marker, or nothing
        out += ["replace: adminDescription", *([ldif_line("adminDescription", before.marker)] if before.marker else []),
                "-"]
    out.append("")
    now = {g.casefold(): g for g in (after.groups if after is not None else before.groups)}
    had = {g.casefold(): g for g in before.groups}
    for folded in sorted(set(had) | set(now)):
        if (folded in had) == (folded in now):
            continue
        group = groups.get(folded) or dnlib.child("CN", had.get(folded) or now[folded], groups_ou)
        verb = "add" if folded in had else "delete"
        out += [ldif_line("dn", group), "changetype: modify", f"{verb}: member", ldif_line("member", old_dn), "-", ""]
    return "\n".join(out) + "\n"
