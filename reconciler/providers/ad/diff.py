"""The diff between desired and actual directory state: a pure function, no I/O.

Order of the resulting changes is the order apply needs: OUs, then groups, then account
adopciones, altas, modificaciones and bajas.  Accounts are matched by employeeID, so a changed
name is a rename and a changed unit is a move, never a baja plus an alta; a declared person
whose account was made by hand (no marker) adopts it, never gets a second one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from reconciler.i18n import lazy
from reconciler.plan import AttributeChange, Change, Conflict, Movement
from reconciler import dn as dnlib
from reconciler.providers.ad.records import MANAGED_ATTRIBUTES, MARKER, Account, DesiredDirectory, offboarded
from reconciler.providers.ad.target import ADTarget
from reconciler.providers.contract import PASSWORD_RESET


@dataclass(frozen=True)
class ForeignObject:
    """An object the reconciler does not own but whose names a declared account may need."""

    dn: str
    sam: str | None = None
    upn: str | None = None
    employee_id: str | None = None


@dataclass(frozen=True)
class ActualDirectory:
    accounts: Mapping[str, Account]  # managed accounts by employeeID
    foreign: tuple[ForeignObject, ...] = ()
    ous: frozenset = frozenset()  # dn.key() of every existing OU that matters
    groups: Mapping[str, str] = field(default_factory=dict)  # casefolded name -> DN, under the groups OU
    warnings: tuple[str, ...] = ()
    # User accounts without the marker (or marked, outside the managed OUs) that carry the
    # employeeID of a person with no managed account, or that a person's `adopt:` names.
    adoptable: tuple[Account, ...] = ()


def _folded(values) -> frozenset[str]:
    return frozenset(v.casefold() for v in values)


def account_attribute_changes(desired: Account, actual: Account | None) -> tuple[AttributeChange, ...]:
    """Before -> after for everything managed that differs (everything, for an alta)."""
    changes = []
    for name in MANAGED_ATTRIBUTES:
        before = actual.attributes.get(name) or None if actual else None
        after = desired.attributes.get(name) or None
        if before != after:
            changes.append(AttributeChange(name, before, after))
    if actual is None or actual.cn != desired.cn:
        changes.append(AttributeChange("cn", actual.cn if actual else None, desired.cn))
    if actual is None or not dnlib.same(actual.parent, desired.parent):
        changes.append(AttributeChange("ou", actual.parent if actual else None, desired.parent))
    if actual is None or actual.enabled != desired.enabled:
        changes.append(AttributeChange("enabled", actual.enabled if actual else None, desired.enabled))
    before_groups = actual.groups if actual else frozenset()
    if _folded(before_groups) != _folded(desired.groups) or (actual is None and desired.groups):
        spelling = {g.casefold(): g for g in desired.groups}
        before = tuple(sorted(spelling.get(g.casefold(), g) for g in before_groups))
        changes.append(AttributeChange("groups", before, tuple(sorted(desired.groups))))
    return tuple(changes)


def _fold(kind: str, value: str) -> str:
    return repr(dnlib.key(value)) if kind == "dn" else value.casefold()


def _name_index(actual: ActualDirectory) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(kind, folded value) -> [(holder's folded DN, who)], for every name that must stay unique
    (a list: an employeeID typed twice by hand has two holders, and adopting one of them must
    still see the other)."""
    index: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for obj in actual.foreign:
        holder = (_fold("dn", obj.dn), lazy("unmanaged object {dn}", dn=obj.dn))
        for kind, value in (("sam", obj.sam), ("upn", obj.upn), ("employeeID", obj.employee_id), ("dn", obj.dn)):
            if value:
                index.setdefault((kind, _fold(kind, value)), []).append(holder)
    for account in actual.accounts.values():
        holder = (_fold("dn", account.dn or ""), lazy("managed account of employee {key} ({dn})", key=account.key,
                                                      dn=account.dn))
        for kind, value in (("sam", account.sam), ("upn", account.attributes.get("userPrincipalName")),
                            ("dn", account.dn)):
            if value:
                index.setdefault((kind, _fold(kind, value)), []).append(holder)
    return index


class _LazyIndex:
    def __init__(self, actual: ActualDirectory):
        self._actual, self._index = actual, None

    def get(self, item, mine: str | None = None) -> tuple[str, str] | None:
        """A holder of the name other than `mine` (a folded DN), if any."""
        if self._index is None:
            self._index = _name_index(self._actual)
        return next((h for h in self._index.get(item, ()) if h[0] != mine), None)


def _conflict(desired: Account, actual: Account | None, index: dict, target: str) -> Conflict | None:
    """Does anything that is not this person's account already hold a name they need?"""
    mine = _fold("dn", actual.dn) if actual and actual.dn else None
    wanted = (("employeeID", desired.key), ("sam", desired.sam),
              ("upn", desired.attributes.get("userPrincipalName") or ""), ("dn", desired.target_dn))
    for kind, value in wanted:
        held = index.get((kind, _fold(kind, value)), mine) if value else None
        if held:
            if kind == "dn":
                message = lazy("the DN {value} is held by {holder}; left alone. Remove or adopt that object, "
                               "or choose another name with account.sam / account.cn", value=value, holder=held[1])
            elif kind == "employeeID":
                message = lazy("employeeID {value} is held by {holder}; left alone. Remove or adopt that object, "
                               "or choose another name with account.sam / account.cn", value=value, holder=held[1])
            else:
                message = lazy("the {attribute} {value} is held by {holder}; left alone. Remove or adopt that "
                               "object, or choose another name with account.sam / account.cn",
                               attribute=kind, value=value, holder=held[1])
            return Conflict(target, desired.key, desired.display, message)
    return None


class _Pool:
    """The adoptable accounts by name and by employeeID (built once: 10,000 adoptions must not
    scan 10,000 accounts each)."""

    def __init__(self, adoptable: tuple[Account, ...]):
        self.by_sam: dict[str, list[Account]] = {}
        self.by_key: dict[str, list[Account]] = {}
        for a in adoptable:
            self.by_sam.setdefault(a.sam.casefold(), []).append(a)
            if a.key:
                self.by_key.setdefault(a.key, []).append(a)


def adoption_candidate(want: Account, pool: _Pool) -> tuple[Account | None, str | None]:
    """The hand-made account a declared person without a managed account adopts, or why none
    can be: (account, None), (None, problem) or (None, None) when there is nothing to adopt.
    `adopt:` names it and wins; otherwise exactly one account must carry the employeeID."""
    if want.adopt:
        named = pool.by_sam.get(want.adopt.casefold(), [])
        if not named:
            return None, lazy("adopt names the account {name}, which does not exist in the domain", name=want.adopt)
        found = named[0]
        if found.key and found.key != want.key:
            return None, lazy("adopt names the account {name}, but it carries the employeeID {other} of someone "
                              "else; left alone", name=want.adopt, other=found.key)
    else:
        carrying = sorted(pool.by_key.get(want.key, []), key=lambda a: a.dn or "")
        if len(carrying) > 1:
            return None, lazy("{n} existing accounts carry employeeID {key} ({dns}); left alone. Name the one to "
                              "adopt with adopt: (its sAMAccountName), and remove the others or clear their "
                              "employeeID", n=len(carrying), key=want.key, dns="; ".join(a.dn or "" for a in carrying))
        if not carrying:
            return None, None
        found = carrying[0]
    if found.protected:  # built-in and privileged accounts are the domain's, never a person's to manage
        return None, lazy("the account {dn} is one of the domain's own (critical, adminCount, a member of a "
                          "privileged group, a trust account or the one the reconciler binds as); the reconciler "
                          "never adopts it. Left alone", dn=found.dn)
    return found, None


def _adoption(want: Account, desired: DesiredDirectory, pool: _Pool, target: ADTarget,
              index: "_LazyIndex") -> Change | Conflict | None:
    """For a declared person without a managed account: the adoption of their hand-made
    account, the conflict that stands in its way, or None (nothing to adopt: an alta)."""
    found, problem = adoption_candidate(want, pool)
    if found is not None and any(dnlib.under(found.parent, ou) for ou in desired.unmanaged_ous):
        problem = lazy("the account {dn} is in the OU of a unit not yet managed on this target "
                       "(managed_units); left alone", dn=found.dn)
    if problem:
        return Conflict(target.name, want.key, want.display, problem)
    if found is None:
        return None
    if conflict := _conflict(want, found, index, target.name):  # its key or names held elsewhere
        return conflict
    return Change(Movement.ADOPCION, target.name, "account", want.key, want.display, adoption_attributes(want, found),
                  reason=lazy("existing account {dn}, made by hand", dn=found.dn), folio=want.folio, unit=want.unit,
                  origins=want.origins, desired=want, actual=found)


def adoption_attributes(desired: Account, actual: Account) -> tuple[AttributeChange, ...]:
    """An adoption shows every managed difference and the marker it writes over whatever the
    account's adminDescription held; enabling a disabled account also makes it change its
    password at next logon (apply also clears the flags that weaken its logon)."""
    woken = (AttributeChange(lazy("change at next logon"), None, True),) if desired.enabled and not actual.enabled \
        else ()  # a disabled account enabled again: its old password must not simply work again
    return (AttributeChange("adminDescription", actual.marker, MARKER),
            *account_attribute_changes(desired, actual), *woken)


def _movement(desired: Account, actual: Account, bajas_ou: str) -> Movement:
    looks_active = actual.enabled or not dnlib.same(actual.parent, bajas_ou)
    return Movement.BAJA if not desired.enabled and looks_active else Movement.MODIFICACION


def _drifted(actual: Account) -> bool:
    return actual.applied_hash is not None and actual.applied_hash != actual.state_hash()


def _account_change(movement: Movement, target: ADTarget, desired: Account, actual: Account | None,
                    reason: str = "", unit: str | None = None) -> Change:
    drift = actual is not None and _drifted(actual)
    if drift and not reason:
        reason = lazy("changed outside the reconciler (drift)")
    return Change(movement, target.name, "account", desired.key, desired.display,
                  account_attribute_changes(desired, actual), reason=reason, drift=drift,
                  folio=desired.folio, unit=desired.unit or unit, origins=desired.origins,
                  desired=desired, actual=actual)


def _group_changes(desired: DesiredDirectory, actual: ActualDirectory, target: ADTarget,
                   index: _LazyIndex) -> tuple[list[Change], list[Conflict]]:
    changes, conflicts = [], []
    for name, text in desired.groups.items():
        if name.casefold() in actual.groups:
            continue
        if held := index.get(("sam", name.casefold())):
            conflicts.append(Conflict(
                target.name, name, lazy("group {name}", name=name),
                lazy("the group name is held by {holder} outside the managed groups OU; left alone. "
                     "Move that group under the groups OU or rename the entitlement's group", holder=held[1])))
        else:
            changes.append(Change(Movement.ALTA, target.name, "group", name, name,
                                  (AttributeChange("description", None, text),),
                                  origins=desired.group_origins.get(name, (None, ()))[1]))
    return changes, conflicts


def _account_changes(desired: DesiredDirectory, actual: ActualDirectory, target: ADTarget, today: str,
                     index: _LazyIndex) -> tuple[list[Change], list[Conflict]]:
    adoptions, altas, modificaciones, bajas, conflicts = [], [], [], [], []
    pool = _Pool(actual.adoptable)
    for key in sorted(desired.accounts):
        want, have = desired.accounts[key], actual.accounts.get(key)
        if have is None and (actual.adoptable or want.adopt):
            if (taken := _adoption(want, desired, pool, target, index)) is not None:
                (conflicts if isinstance(taken, Conflict) else adoptions).append(taken)
                continue
        if have is None and not want.enabled:
            continue  # a baja for someone who never had an account: nothing to offboard
        needs_names = have is None or want.sam.casefold() != have.sam.casefold() or want.cn != have.cn
        if needs_names and (conflict := _conflict(want, have, index, target.name)):
            conflicts.append(conflict)
        elif have is None:
            altas.append(_account_change(Movement.ALTA, target, want, None))
        elif want.state() != have.state():
            movement = _movement(want, have, target.bajas_ou)
            change = _account_change(movement, target, want, have)
            (bajas if movement is Movement.BAJA else modificaciones).append(change)
    for key in sorted(set(actual.accounts) & desired.out_of_scope):
        conflicts.append(Conflict(target.name, key, actual.accounts[key].display, lazy(
            "declared in a unit not managed on this target (managed_units): its account is left as it is, "
            "whatever its declaration says")))
    for key in sorted(set(actual.accounts) - set(desired.accounts)):
        have = actual.accounts[key]
        if have.offboarded and dnlib.same(have.parent, target.bajas_ou):
            continue  # already offboarded; kept for the retention period
        if key in desired.out_of_scope or any(dnlib.under(have.parent, ou) for ou in desired.unmanaged_ous):
            continue  # a unit not yet under management on this target (staged rollout)
        unit = desired.ou_origins.get(dnlib.key(have.parent), (None,))[0]
        bajas.append(_account_change(Movement.BAJA, target, offboarded(have, target, today), have,
                                     reason=lazy("no longer declared in desired_state"), unit=unit))
    return adoptions + altas + modificaciones + bajas, conflicts


def _ou_change(ou: str, desired: DesiredDirectory, target: ADTarget) -> Change:
    """A unit's OU comes from units.yaml; the managed OUs above it come from the inventory."""
    unit, origins = desired.ou_origins.get(dnlib.key(ou), (None, ()))
    return Change(Movement.ALTA, target.name, "ou", ou, ou, unit=unit, origins=origins)


def password_resets(desired: DesiredDirectory, actual: ActualDirectory, target: ADTarget,
                    applied: frozenset[str]) -> tuple[list[Change], list[str]]:
    """A change for each declared reset request not yet applied (`applied`: their folios, from
    the audit trail), and a warning for each one whose account does not exist yet or is a baja."""
    changes, warnings = [], []
    for key in sorted(desired.accounts):
        want = desired.accounts[key]
        for request in want.resets:
            if request.folio in applied:
                continue
            have = actual.accounts.get(key)
            if have is None or not have.enabled or not want.enabled:
                if have is None:
                    warnings.append(lazy("password reset {folio} for {account} waits: the account does not exist yet "
                                         "(its alta delivers a password)", folio=request.folio, account=want.display))
                else:
                    warnings.append(lazy("password reset {folio} for {account} waits: the account is disabled",
                                         folio=request.folio, account=want.display))
                continue
            changes.append(Change(
                Movement.MODIFICACION, target.name, PASSWORD_RESET, key, want.display,
                (AttributeChange("password", lazy("(current)"), lazy("(new, random, delivered out of band)")),
                 AttributeChange(lazy("change at next logon"), None, True)),
                reason=lazy("password reset requested on {date}", date=request.date), folio=request.folio,
                unit=want.unit,
                origins=want.origins[:1], desired=want, actual=have))
    return changes, warnings


def diff(desired: DesiredDirectory, actual: ActualDirectory, target: ADTarget,
         today: str) -> tuple[list[Change], list[Conflict]]:
    """All changes that make `actual` match `desired`, in apply order, and the conflicts."""
    index = _LazyIndex(actual)  # only altas and renames need it; a no-change plan never builds it
    ous = [_ou_change(ou, desired, target) for ou in desired.ous if dnlib.key(ou) not in actual.ous]
    groups, group_conflicts = _group_changes(desired, actual, target, index)
    accounts, account_conflicts = _account_changes(desired, actual, target, today, index)
    return ous + groups + accounts, group_conflicts + account_conflicts
