"""Applying AD changes: few LDAP operations, in an order that never widens access.

Phases:
  1. OUs, then groups (parents before children).
  2. Altas: one add per account carrying every attribute, the initial password (over
     LDAPS), pwdLastSet=0 (change at next logon) and the enabled flag.
  3. Group removals, batched per group: access is revoked before anything else moves, and
     before a baja's account is disabled.
  4. Adopciones, modificaciones and bajas: rename or move (modify DN) and one modify with
     every changed attribute, the enabled flag and the applied-state marker (a baja disables
     before it moves).  An adoption is a modificación of an account made by hand: it never
     sets a password.
  5. Group additions, batched per group, with the accounts' final DNs.
  6. Password resets: a new random password, change at next logon.
  7. Computers (desktops and laptops): added, renamed, moved, given a holder, decommissioned.
A failed batch is retried member by member, so one bad account fails alone.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable

from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection
from ldap3.core.exceptions import LDAPException

from reconciler.credentials import CredentialFile, generate_password
from reconciler.errors import ReconcilerError
from reconciler.i18n import lazy
from reconciler.plan import Change, Movement, Outcome
from reconciler import dn as dnlib
from reconciler.providers.ad.computers import apply_computer
from reconciler.providers.ad.connection import ldap_error as _error
from reconciler.providers.ad.connection import lost
from reconciler.providers.ad.records import MANAGED_ATTRIBUTES, MARKER, Account, marker_value
from reconciler.providers.ad.target import ADTarget

USER_CLASSES = ["top", "person", "organizationalPerson", "user"]
UF_NORMAL_ACCOUNT = 0x200
UF_ACCOUNTDISABLE = 0x2
# PASSWD_NOTREQD, TRUSTED_FOR_DELEGATION, DONT_REQ_PREAUTH, TRUSTED_TO_AUTH_FOR_DELEGATION
WEAK_LOGON = 0x20 | 0x80000 | 0x400000 | 0x1000000
PERMISSIVE_MODIFY = ("1.2.840.113556.1.4.1413", False, None)  # adding a present member is not an error
MEMBER_BATCH = 500


def _ldap(value) -> list:
    """An attribute value as ldap3 takes it: multi-valued attributes are tuples here."""
    return list(value) if isinstance(value, tuple) else [value]


class ADApplier:
    def __init__(self, conn: Connection, target: ADTarget, credentials: CredentialFile,
                 groups: dict[str, str], advance: Callable[[int], None] = lambda n: None,
                 holder_dns: dict[str, str] | None = None, reconnect: Callable[[], Connection] | None = None):
        self.conn, self.target, self.credentials, self.advance = conn, target, credentials, advance
        self.reconnect = reconnect  # a new connection when this one dropped (None: none)
        self.lost: str | None = None  # why the connection is gone for good: the rest is not attempted
        self.holder_dns = holder_dns or {}  # employee key -> account DN, for computers' managedBy
        self.group_dns = dict(groups)  # casefolded name -> DN
        self.timings: dict[str, float] = {}  # seconds per phase, for reports and benchmarks

    def _timed(self, phase: str, started: float) -> float:
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - started
        return now

    def _do(self, o: Outcome | None, what: str, operation, *args, **kwargs) -> bool:
        """Run one LDAP operation; a refusal or a lost connection becomes the change's error.

        A dropped connection is opened again once and the operation repeated.  Every
        operation here is idempotent except add and modify DN, whose first try may have
        landed before the answer was lost: their "already exists" and "no such object" on the
        repeat mean done only when the object is there and is the one this run made (_landed).
        """
        if self.lost is not None:
            message = lazy("{action}: not attempted: {reason}", action=what, reason=self.lost)
        else:
            message = self._attempt(what, operation, *args, **kwargs)
        if message is None:
            return True
        if o is not None:
            o.fail(message)
        return False

    def _call(self, what: str, name: str, *args, **kwargs) -> str | None:
        """One operation of the connection by name: an error message, or None."""
        if self.lost is not None:
            return lazy("{action}: not attempted: {reason}", action=what, reason=self.lost)
        return self._attempt(what, getattr(self.conn, name), *args, **kwargs)

    def _attempt(self, what: str, operation, *args, **kwargs) -> str | None:
        for repeat in (False, True):
            try:
                if operation(*args, **kwargs):
                    return None
                code = self.conn.result.get("result")
                if repeat and code in (68, 32) and self._landed(operation.__name__, args, kwargs):
                    return None
                return _error(self.conn, what)
            except (LDAPException, OSError) as exc:
                if repeat or not lost(exc) or self.reconnect is None:
                    detail = f"{type(exc).__name__}: {exc}"
                    return lazy("{action}: {error}", action=what, error=detail)
                try:
                    self.conn = self.reconnect()
                except ReconcilerError as gone:
                    self.lost = lazy("the connection was lost and could not be opened again ({error})",
                                     error=str(gone))
                    return lazy("{action}: {error}", action=what, error=self.lost)
                operation = getattr(self.conn, operation.__name__)  # the same call, on the new connection
        return None

    def _landed(self, name: str, args: tuple, kwargs: dict) -> bool:
        """After a repeat answered "already exists" (add) or "no such object" (move): whether
        the first try landed, i.e. the object is where it was going and is the one this run
        made (same marker, same employeeID), not someone else's that holds the name."""
        try:
            if name == "add":
                dn, attributes = args[0], args[2] if len(args) > 2 else kwargs.get("attributes", {})
                found = self._read(dn, ["adminDescription", "employeeID"])
                values = {n: v if isinstance(v, (list, tuple)) else [v] for n, v in attributes.items()}
                return found is not None and all(
                    found.get(n) == [str(v) for v in values[n]] for n in ("adminDescription", "employeeID")
                    if n in values)
            if name == "modify_dn":
                superior = kwargs.get("new_superior") or dnlib.parent(args[0])
                return self._read(f"{args[1]},{superior}", ["objectClass"]) is not None
        except LDAPException:
            return False
        return False

    def _read(self, dn: str, attributes: list[str]) -> dict | None:
        if not self.conn.search(dn, "(objectClass=*)", BASE, attributes=attributes):
            return None
        entries = [e for e in self.conn.response or () if e.get("type") == "searchResEntry"]
        return entries[0]["attributes"] if entries else None

    def group_dn(self, name: str) -> str:
        return self.group_dns.get(name.casefold()) or dnlib.child("CN", name, self.target.groups_ou)

    def run(self, changes: list[Change]) -> list[Outcome]:
        outcomes = [Outcome(c) for c in changes]
        accounts = [o for o in outcomes if o.change.kind == "account"]
        t = time.perf_counter()
        for o in outcomes:
            if o.change.kind == "ou":
                self._ou(o)
            elif o.change.kind == "group":
                self._group(o)
        t = self._timed(lazy("ous and groups"), t)
        for o in accounts:
            if o.change.movement is Movement.ALTA:
                self._alta(o)
        t = self._timed(lazy("altas"), t)
        self._memberships(accounts, MODIFY_DELETE)
        t = self._timed(lazy("memberships"), t)
        for o in accounts:
            if o.change.movement is not Movement.ALTA and o.status != "failed":
                self._modify(o)
        t = self._timed(lazy("modificaciones and bajas"), t)
        self._memberships(accounts, MODIFY_ADD)
        t = self._timed(lazy("memberships"), t)
        moved = {o.change.key for o in accounts if o.status != "failed"}  # now at their desired DN
        for o in outcomes:
            if o.change.kind == "password-reset":
                self._reset(o, o.change.desired.target_dn if o.change.key in moved else o.change.actual.dn)
        t = self._timed(lazy("password resets"), t)
        for o in outcomes:  # last: managedBy names accounts this run may have created or moved
            if o.change.kind == "computer":
                if error := apply_computer(self._call, o.change, self.holder_dns):
                    o.fail(error)
                self.advance(1)
        self._timed(lazy("computers"), t)
        for o in outcomes:
            if o.status == "pending":
                o.status = "applied"
        return outcomes

    # -- phase 1 ------------------------------------------------------------------------
    def _ou(self, o: Outcome) -> None:
        name = dnlib.first_value(o.change.key)
        self._do(o, lazy("creating OU {dn}", dn=o.change.key), self.conn.add, o.change.key, "organizationalUnit",
                 {"ou": name, "adminDescription": MARKER})
        self.advance(1)

    def _group(self, o: Outcome) -> None:
        name = o.change.key
        dn = dnlib.child("CN", name, self.target.groups_ou)
        description = o.change.attributes[0].after if o.change.attributes else name
        attrs = {"sAMAccountName": name, "description": description, "adminDescription": MARKER}
        if self._do(o, lazy("creating group {name}", name=name), self.conn.add, dn, ["top", "group"], attrs):
            self.group_dns[name.casefold()] = dn
        self.advance(1)

    def _handed_over(self, o: Outcome, sam: str, upn: str, key: str, folio: str | None, password: str) -> bool:
        """The secret recorded for delivery (sealed, or the lab's file) before it is used; when it
        cannot be, the change fails and nothing is created: a password nobody can receive is
        never set."""
        try:
            self.credentials.record(sam, upn, key, folio, password)
        except ReconcilerError as exc:
            o.fail(lazy("{account}: not attempted: {reason}", account=sam, reason=str(exc)))
            self.advance(1)
            return False
        return True

    # -- phase 2 ------------------------------------------------------------------------
    def _alta(self, o: Outcome) -> None:
        want: Account = o.change.desired
        password = generate_password((want.sam, want.attributes.get("displayName") or ""))
        upn = want.attributes.get("userPrincipalName") or ""
        if not self._handed_over(o, want.sam, upn, want.key, want.folio, password):
            return
        attrs = {n: _ldap(want.attributes[n]) for n in MANAGED_ATTRIBUTES if want.attributes.get(n)}
        attrs.update({
            "adminDescription": marker_value(want.state_hash()),
            "unicodePwd": f'"{password}"'.encode("utf-16-le"),
            "userAccountControl": UF_NORMAL_ACCOUNT,
            "pwdLastSet": 0,
        })
        self._do(o, lazy("creating {dn}", dn=want.target_dn), self.conn.add, want.target_dn, USER_CLASSES, attrs)
        if o.error and password in o.error:  # an error text goes to the output and the audit trail
            o.error = o.error.replace(password, "********")
        del password, attrs  # keep the secret's lifetime short
        self.advance(1)

    # -- phase 6 ------------------------------------------------------------------------
    def _reset(self, o: Outcome, dn: str) -> None:
        """A new random password, recorded for delivery like an alta's, never in an error."""
        want: Account = o.change.desired
        password = generate_password((want.sam, want.attributes.get("displayName") or ""))
        if not self._handed_over(o, want.sam, want.attributes.get("userPrincipalName") or "", want.key,
                                 o.change.folio, password):
            return
        self._do(o, lazy("resetting the password of {dn}", dn=dn), self.conn.modify, dn, {
            "unicodePwd": [(MODIFY_REPLACE, [f'"{password}"'.encode("utf-16-le")])],
            "pwdLastSet": [(MODIFY_REPLACE, [0])]})
        if o.error and password in o.error:
            o.error = o.error.replace(password, "********")
        del password
        self.advance(1)

    # -- phase 4 ------------------------------------------------------------------------
    def _modify(self, o: Outcome) -> None:
        """A baja disables the account where it is, then moves it to the bajas OU: a run
        stopped in between leaves a disabled account in its unit's OU, whose baja the next run
        finishes under that unit's approval.  (Moved first, an enabled account in the bajas OU
        would belong to no unit, and no approver could ever approve finishing it.)  Anything
        else moves first, so the attributes are written at the final DN."""
        want: Account = o.change.desired
        have: Account = o.change.actual
        moves = want.cn != have.cn or not dnlib.same(want.parent, have.parent)
        if o.change.movement is Movement.BAJA or not want.enabled:  # an adoption straight into the bajas too
            if self._write(o, have.dn, want, have) and moves:
                self._move(o, have.dn, want, have)
        elif not moves or self._move(o, have.dn, want, have):
            self._write(o, want.target_dn if moves else have.dn, want, have)
        self.advance(1)

    def _move(self, o: Outcome, dn: str, want: Account, have: Account) -> bool:
        superior = want.parent if not dnlib.same(want.parent, have.parent) else None
        return self._do(o, lazy("moving {dn} to {new_dn}", dn=dn, new_dn=want.target_dn), self.conn.modify_dn, dn,
                        dnlib.rdn("CN", want.cn), new_superior=superior)

    def _write(self, o: Outcome, dn: str, want: Account, have: Account) -> bool:
        """One modify with every changed attribute, the enabled flag and the applied marker."""
        mods = {}
        for name in MANAGED_ATTRIBUTES:
            after = want.attributes.get(name) or None
            if (have.attributes.get(name) or None) != after:
                mods[name] = [(MODIFY_REPLACE, _ldap(after) if after else [])]
        uac = have.uac or UF_NORMAL_ACCOUNT
        uac = uac & ~UF_ACCOUNTDISABLE if want.enabled else uac | UF_ACCOUNTDISABLE
        if o.change.movement is Movement.ADOPCION and want.enabled and not have.enabled:
            uac &= ~WEAK_LOGON  # woken up by an adoption: no empty password, no logon without pre-authentication,
            mods["pwdLastSet"] = [(MODIFY_REPLACE, [0])]  # no delegation; and a new password at next logon
        if uac != have.uac:
            mods["userAccountControl"] = [(MODIFY_REPLACE, [uac])]
        mods["adminDescription"] = [(MODIFY_REPLACE, [marker_value(want.state_hash())])]
        return self._do(o, lazy("modifying {dn}", dn=dn), self.conn.modify, dn, mods)

    # -- phases 3 and 5 -----------------------------------------------------------------
    def _memberships(self, accounts: list[Outcome], operation: str) -> None:
        """Group removals (MODIFY_DELETE) or additions (MODIFY_ADD), batched per group."""
        by_group: dict[str, list[tuple[str, Outcome]]] = defaultdict(list)
        for o in accounts:
            if o.status == "failed":
                continue
            want: Account = o.change.desired
            have: Account | None = o.change.actual
            before = {g.casefold(): g for g in (have.groups if have else ())}
            after = {g.casefold(): g for g in want.groups}
            if operation == MODIFY_DELETE:
                names, member = [before[g] for g in before.keys() - after.keys()], have.dn if have else None
            else:
                names, member = [after[g] for g in after.keys() - before.keys()], want.target_dn
            for name in names:
                by_group[name].append((member, o))
        for name, members in sorted(by_group.items()):
            group = self.group_dn(name)
            for i in range(0, len(members), MEMBER_BATCH):
                batch = members[i:i + MEMBER_BATCH]
                what = (lazy("removing from group {name}", name=name) if operation == MODIFY_DELETE
                        else lazy("adding to group {name}", name=name))
                if self._do(None, what, self.conn.modify, group,
                            {"member": [(operation, [m for m, _ in batch])]}, controls=[PERMISSIVE_MODIFY]):
                    continue
                for member, o in batch:  # isolate the member that made the batch fail
                    self._do(o, what, self.conn.modify, group,
                             {"member": [(operation, [member])]}, controls=[PERMISSIVE_MODIFY])
