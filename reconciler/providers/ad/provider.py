"""The Active Directory provider: read in bulk, diff as a pure function, apply, verify."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Mapping, Sequence

from ldap3.core.exceptions import LDAPException

from reconciler.credentials import CredentialFile
from reconciler.errors import ReconcilerError
from reconciler.i18n import N_, lazy
from reconciler.plan import Change, Conflict, Movement, Outcome
from reconciler import dn as dnlib
from reconciler.providers.ad.computers import (
    Computer,
    adoption,
    diff_computers,
    expand_computers,
    foreign_hostnames,
    read_computers,
)
from reconciler.providers.ad.connection import answers, connect, reconnect, unbind_quietly
from reconciler.providers.ad.diff import ActualDirectory, diff, password_resets
from reconciler.providers.ad import delta, settled, snapshot
from reconciler.providers.ad.read import accounts_of, near_names, read_accounts, read_accounts_by_key, read_directory
from reconciler.audit.before import json_lines, ldif_comment
from reconciler.providers.ad.records import Account, DesiredDirectory, expand, undo_ldif
from reconciler.providers.ad.target import ADTarget
from reconciler.providers.contract import (
    PASSWORD_RESET,
    Capability,
    Declared,
    PlanRequest,
    Standing,
    Provider,
    ReadBack,
    TargetPlan,
    named_by_inventory,
)

if TYPE_CHECKING:
    from reconciler.providers.found import Existing, ImportRequest

# Containers the inventory names: approved by the inventory, not by a line of desired_state/.
IMPLIED = {"ou": lazy("a managed OU named in the inventory")}


@dataclass(frozen=True)
class ADBasis:
    """What the plan read and wanted: apply and verification work from it."""

    desired: DesiredDirectory
    actual: ActualDirectory
    keys: frozenset | None  # an incremental plan's employee keys (None: everyone)
    computers: dict[str, Computer] | None  # desired computers; None when not planned
    today: str

    def holder_dns(self) -> Mapping[str, str]:
        """Where each declared person's account is once the plan is applied (for managedBy),
        worked out for the holders asked about only."""
        return HolderDNs(self.desired.accounts)


class HolderDNs(Mapping):
    """employee key -> the DN the account will have."""

    def __init__(self, accounts: Mapping[str, Account]):
        self._accounts = accounts

    def __getitem__(self, key: str) -> str:
        return self._accounts[key].target_dn

    def __iter__(self):
        return iter(self._accounts)

    def __len__(self) -> int:
        return len(self._accounts)


def _not_attempted(change: Change, why: str) -> Outcome:
    o = Outcome(change)
    o.fail(lazy("not attempted: {reason}", reason=why))
    return o


class ADProvider(Provider):
    kind = "active_directory"
    capabilities = frozenset({Capability.IMPLIED_APPROVALS, Capability.PASSWORD_RESETS, Capability.ADOPTION,
                              Capability.SETTLED_PLANS,
                              Capability.IMPORT})
    read_back_source = N_("the directory")
    holds_people = True

    READ_CONNECTIONS = 2  # parallel bulk-read connections; see read.read_accounts

    def __init__(self, target: ADTarget):
        super().__init__(target)
        self.conn = None
        self.readers: list = []
        self._prefetch: Future | None = None
        self._snapshot: snapshot.Snapshot | None = None  # what the last bulk read was (delta reads on)
        self._computers_read: dict[str, str] = {}  # objectGUID -> digest, of the plan's computer read

    def open(self) -> None:
        self.conn = connect(self.target)

    def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch.exception()  # wait: its connections are about to close
        for conn in [self.conn, *self.readers]:
            unbind_quietly(conn)

    def existing(self, request: ImportRequest) -> Existing:
        """The accounts, computers and group nesting under the search bases (when asked for people)."""
        from reconciler.providers.ad.existing import read_existing
        from reconciler.providers.found import Existing

        if not request.people:
            return Existing()
        if self.conn is None:
            self.conn = connect(self.target)
        return Existing(directory=read_existing(self.conn, self.target, request.search_bases))

    def _awake(self) -> None:
        """Before apply and before the read back: the connections opened for the plan may have
        idled past the server's limit while other targets were applied or a person read the
        plan.  Each that no longer answers is opened again (a bounded retry)."""
        if not answers(self.conn):
            unbind_quietly(self.conn)
            self.conn = reconnect(self.target)
        for i, reader in enumerate(self.readers):
            if not answers(reader):
                unbind_quietly(reader)
                self.readers[i] = reconnect(self.target)

    def _reconnected(self):
        """The applier's way back after a connection dropped mid-apply."""
        unbind_quietly(self.conn)
        self.conn = reconnect(self.target)
        return self.conn

    def prefetch(self) -> None:
        """Start the bulk account read in the background: it needs nothing from the desired
        state, so it runs while the YAML is being loaded."""
        self._connect_readers()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"read-{self.target.name}")
        self._prefetch = pool.submit(self._bulk_read)
        pool.shutdown(wait=False)  # the thread finishes the one task, then exits

    def _connect_readers(self) -> None:
        if not self.readers:
            self.readers = [connect(self.target) for _ in range(self.READ_CONNECTIONS - 1)]

    def _bulk_read(self, verify: bool = False) -> tuple[dict, list, list]:
        """Every account under the managed OUs: only what changed since the last read when the
        target says so (delta_read_hours, delta.py), otherwise all of them."""
        if self.target.delta_read_hours is None:
            snapshot.forget(self.target)  # delta reads turned off: the last one's copy goes
            return read_accounts(self.conn, self.target, self.readers, verify)
        entries, warning, self._snapshot = delta.read_entries(self.conn, self.target, self.readers,
                                                              full=self.full_read)
        managed, foreign, warnings = accounts_of(entries, self.target, canonical=True)
        return managed, foreign, warnings + ([warning] if warning else [])

    def _read(self, desired: DesiredDirectory, keys: frozenset | None, verify: bool = False) -> ActualDirectory:
        if keys is not None:
            hints = {k: a.sam for k, a in desired.accounts.items()}
            accounts = read_accounts_by_key(self.conn, self.target, keys, verify, hints)
        else:
            self._connect_readers()
            prefetched, self._prefetch = self._prefetch, None
            accounts = prefetched.result() if prefetched is not None else self._bulk_read(verify)
        return read_directory(self.conn, self.target, desired, self.readers, accounts=accounts, verify=verify)

    # -- plan ---------------------------------------------------------------------------------
    def plan(self, request: PlanRequest) -> TargetPlan:
        """Plan for the whole desired state, or (request.keys) only for those employee keys."""
        keys = request.keys
        desired = expand(request.state, self.target)
        if keys is not None:  # the people of the changed files whose entries did not change are left out
            desired = replace(desired, accounts={k: a for k, a in desired.accounts.items() if k in keys})
        actual = self._read(desired, keys)
        needs_full_read = None if keys is None else self._partial_view_problem(desired, actual, request.previous_keys)
        changes, conflicts = diff(desired, actual, self.target, request.today)
        resets, waiting = password_resets(desired, actual, self.target, request.applied_resets)
        basis = ADBasis(desired, actual, keys, None, request.today)
        computers, (planned, taken), holds = self._plan_computers(request, basis)
        return TargetPlan(self.target.name, changes + resets + planned, conflicts + taken,
                          list(actual.warnings) + waiting, replace(basis, computers=computers),
                          needs_full_read or holds)

    def _plan_computers(self, request: PlanRequest, basis: ADBasis):
        """Computers are planned on a full load; an incremental plan that touches a person who
        holds one asks for the full plan.  A hostname a computer the reconciler does not own
        already has is a conflict, left alone.  Returns (desired computers or None,
        (changes, conflicts), why a full read is needed or None)."""
        self._computers_read = {}
        actual = read_computers(self.conn, self.target, self._computers_read)
        keys = request.keys
        if keys is not None or not request.state.assets_loaded:
            holds = lazy("a changed person holds a computer") if any(
                c.holder in (keys or frozenset()) for c in actual.values() if c.holder) else None
            return None, ([], []), holds
        computers, actual = self._in_scope(expand_computers(request.state, self.target), actual, basis.desired)
        changes = diff_computers(computers, actual, self.target, basis.holder_dns())
        wanted = {c.desired.hostname.casefold(): c for c in changes if c.desired is not None and c.desired.enabled
                  and (c.actual is None or c.actual.hostname.casefold() != c.desired.hostname.casefold())}
        held = foreign_hostnames(self.conn, self.target, wanted) if wanted else {}
        holders = basis.holder_dns()
        unmanaged = basis.desired.unmanaged_ous  # staged rollout: nothing of those units is adopted
        adoptions = {c.key: adoption(c.desired, held[name][1], self.target,
                                     holders.get(c.desired.holder) if c.desired.holder else None)
                     for name, c in wanted.items() if name in held and held[name][1] is not None and c.actual is None
                     and not any(dnlib.under(held[name][1].parent, ou) for ou in unmanaged)}
        conflicts = [Conflict(self.target.name, c.key, c.label, lazy(
                              "the computer name {hostname} is held by {holder}, which the reconciler does not own; "
                              "left alone. Remove or rename it, or choose another hostname",
                              hostname=c.desired.hostname, holder=held[name][0]))
                     for name, c in wanted.items() if name in held and c.key not in adoptions]
        blocked = {c.key for c in conflicts}
        planned = [adoptions.get(c.key, c) for c in changes if c.key not in blocked]
        return computers, (planned, conflicts), None

    # -- settled plans (settled.py) ----------------------------------------------------------
    def settle(self, planned: TargetPlan, inputs: str) -> None:
        """Only a full plan over a read this run kept as its snapshot (delta reads on), with the
        computers read by the same plan, is remembered."""
        if self._snapshot is not None and planned.basis is not None and planned.basis.keys is None \
                and planned.basis.computers is not None and not self.full_read:
            desired, actual = planned.basis.desired, planned.basis.actual
            without = [w for k, w in desired.accounts.items() if k not in actual.accounts]
            adopting = {w.key.casefold() for w in without} | {w.adopt.casefold() for w in without if w.adopt}
            settled.record(self.target, self._snapshot, self._computers_read, inputs, desired.ous,
                           tuple(desired.groups), adopting if self.target.adopt_from else ())

    def settled(self, inputs: str) -> Standing | None:
        if self.full_read or self.target.delta_read_hours is None:
            return None
        return settled.holds(self.conn, self.target, inputs)

    @classmethod
    def remembers(cls, target: ADTarget, inputs: str) -> bool:
        return target.delta_read_hours is not None and settled.remembered(target, inputs)

    def unsettle(self) -> None:
        settled.forget(self.target)

    def _in_scope(self, desired: dict[str, Computer], actual: dict[str, Computer], directory: DesiredDirectory
                  ) -> tuple[dict[str, Computer], dict[str, Computer]]:
        """Staged rollout: the computers of units not yet managed on this target are left out of
        both sides, declared or found in those units' OUs."""
        if self.target.managed_units is None:
            return desired, actual
        outside = {k for k, c in desired.items() if not self.target.manages(c.unit)}
        outside |= {k for k, c in actual.items() if any(dnlib.under(c.parent, ou) for ou in directory.unmanaged_ous)}
        return ({k: c for k, c in desired.items() if k not in outside},
                {k: c for k, c in actual.items() if k not in outside})

    def _partial_view_problem(self, desired: DesiredDirectory, actual: ActualDirectory,
                              previous_keys: frozenset) -> str | None:
        """What only a full read could judge in an incremental plan: a key that is new in the
        changed files but already has an account (declared twice, or re-hired), or a new or
        renamed account whose derived name is near an existing one (naming looks at everyone)."""
        for key in sorted(set(desired.accounts) - previous_keys):
            if key in actual.accounts:
                return lazy("employee {key} is new in the changed files but already has an account", key=key)
        wanted = {want.sam.rstrip("0123456789"): want.key for key, want in desired.accounts.items()
                  if want.enabled and (key not in actual.accounts
                                       or actual.accounts[key].sam.casefold() != want.sam.casefold())}
        owners = set(wanted.values())
        for obj in near_names(self.conn, self.target, wanted) if wanted else ():
            if obj.employee_id not in owners:
                return lazy("the account name {name} is near a new or renamed account's name", name=obj.sam)
        return None

    # -- apply and verify ---------------------------------------------------------------------
    def revokes(self, change: Change) -> bool:
        """AD orders its own revocations inside its apply (memberships removed before a baja)."""
        return False

    def removes_access(self, change: Change) -> bool:
        """A baja; a password reset (whoever knew the old one is locked out); or a change of an
        account that only removes groups or disables it."""
        if change.movement is Movement.BAJA or change.kind == PASSWORD_RESET:
            return True
        if change.movement is Movement.ADOPCION and change.desired is not None and not change.desired.enabled:
            return True  # adopted straight into the bajas: it disables
        if change.kind != "account" or change.movement is not Movement.MODIFICACION:
            return False
        for a in change.attributes:
            if a.name == "groups" and not a.added():
                continue
            if a.name == "enabled" and a.after is False:
                continue
            return False
        return bool(change.attributes)

    def apply(self, planned: TargetPlan, changes: Sequence[Change], credentials: CredentialFile,
              advance=lambda n: None) -> list[Outcome]:
        basis: ADBasis = planned.basis
        try:
            self._awake()
        except ReconcilerError as exc:
            return [_not_attempted(c, str(exc)) for c in changes]
        from reconciler.providers.ad.apply import ADApplier  # what only an apply needs: a plan imports none of it

        applier = ADApplier(self.conn, self.target, credentials, dict(basis.actual.groups), advance,
                            basis.holder_dns(), self._reconnected)
        try:
            return applier.run(list(changes))
        finally:
            self.timings.update(applier.timings)

    def read_back(self, planned: TargetPlan) -> ReadBack:
        """Everything read again once, and re-diffed."""
        basis: ADBasis = planned.basis
        try:
            self._awake()
            actual = self._read(basis.desired, basis.keys, verify=True)
            remaining, _ = diff(basis.desired, actual, self.target, basis.today)
            if basis.computers is not None:
                _, computers = self._in_scope({}, read_computers(self.conn, self.target), basis.desired)
                remaining += diff_computers(basis.computers, computers, self.target, basis.holder_dns())
        except LDAPException as exc:
            raise ReconcilerError(str(exc)) from None
        return ReadBack(remaining, actual)

    def confirm(self, planned: TargetPlan, back: ReadBack, shown: list[Outcome]) -> dict[int, str]:
        """A new account, or one whose password was reset, must change it at next logon."""
        problems = {}
        for o in shown:
            c = o.change
            if c.kind == PASSWORD_RESET or (c.kind == "account" and c.movement is Movement.ALTA):
                account = back.observed.accounts.get(c.key)
                if account is None or not account.must_change_password:
                    problems[id(o)] = lazy("read back: {source} does not show the change",
                                           source=lazy(self.read_back_source))
        return problems

    def before_image(self, planned: TargetPlan, changes: Sequence[Change]) -> tuple[str, bytes] | None:
        """LDIF that puts each account the changes touch back as it was (records.undo_ldif);
        the other objects as JSON in comments."""
        basis: ADBasis = planned.basis
        blocks = [undo_ldif(c.actual, c.desired, basis.actual.groups, self.target.groups_ou)
                  for c in changes if c.kind == "account" and c.actual is not None]
        _, others = json_lines([c for c in changes if c.kind != "account"])
        comments = "".join(ldif_comment(line) + "\n" for line in others.decode("utf-8").split("\n") if line)
        text = "version: 1\n\n" + "\n".join(blocks) + comments
        return ("ldif", text.encode("utf-8")) if blocks or comments else None

    def removed_declaration(self, change: Change) -> Declared | None:
        """An account or a password reset was declared by its employee key in a unit's file;
        OUs and groups are implied, computers are released through their holder."""
        return Declared(change.key, "users") if change.kind in ("account", PASSWORD_RESET) else None

    # -- implied approvals --------------------------------------------------------------------
    def implied_approvals(self, changes: Sequence[Change]) -> dict[int, str]:
        """The OUs the inventory names; and the OUs and groups an approved account's alta or
        move needs, approved with it even when the lines that declare them were approved by
        nobody the policy counts for them (a unit head approving their unit's first person)."""
        ous, groups = {}, {}
        for c in changes:
            if c.kind == "account" and c.approved and c.desired is not None:
                ou = c.desired.parent
                while ou and "," in ou:
                    ous.setdefault(dnlib.key(ou), c.label)
                    ou = dnlib.parent(ou)
                for g in c.desired.groups:
                    groups.setdefault(g.casefold(), c.label)
        implied = named_by_inventory(changes, IMPLIED)
        for i, c in enumerate(changes):
            needer = (ous.get(dnlib.key(c.key)) if c.kind == "ou" else groups.get(c.key.casefold())
                      if c.kind == "group" else None)
            if needer and c.movement is Movement.ALTA and i not in implied:
                implied[i] = lazy("needed by the approved {label}", label=needer)
        return implied
