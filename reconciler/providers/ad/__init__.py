"""The Active Directory provider: read in bulk, diff as a pure function, apply, verify."""
from __future__ import annotations

import time
from dataclasses import replace
from concurrent.futures import Future, ThreadPoolExecutor

from ldap3.core.exceptions import LDAPException

from ...credentials import CredentialFile
from ...errors import ReconcilerError
from ...desired.model import DesiredState
from ...inventory import ADTarget
from ...plan import Change, Conflict, Movement
from .apply import ADApplier, Outcome
from .connection import connect
from .computers import Computer, diff_computers, expand_computers, foreign_hostnames, read_computers
from .diff import PASSWORD_RESET, ActualDirectory, diff, password_resets
from .read import near_names, read_accounts, read_accounts_by_key, read_directory
from .records import DesiredDirectory, expand


class ADProvider:
    kind = "active_directory"

    READ_CONNECTIONS = 2  # parallel bulk-read connections; see read.read_accounts

    def __init__(self, target: ADTarget):
        self.target = target
        self.conn = None
        self.readers: list = []
        self._prefetch: Future | None = None
        self.timings: dict[str, float] = {}
        self.desired: DesiredDirectory | None = None
        self.actual: ActualDirectory | None = None
        self.needs_full_read: str | None = None  # why an incremental plan cannot be trusted
        self._keys: frozenset | None = None
        self.applied_resets: frozenset[str] = frozenset()  # folios of reset requests already applied
        self.computers: dict[str, Computer] | None = None  # desired computers; None when not planned

    def __enter__(self) -> "ADProvider":
        self.conn = connect(self.target)
        return self

    def __exit__(self, *exc) -> None:
        if self._prefetch is not None:
            self._prefetch.exception()  # wait: its connections are about to close
        for conn in [self.conn, *self.readers]:
            if conn is not None:
                conn.unbind()

    @staticmethod
    def revokes(change: Change) -> bool:
        """AD orders its own revocations inside its apply (memberships removed before a baja)."""
        return False

    def prefetch(self) -> None:
        """Start the bulk account read in the background: it needs nothing from the desired
        state, so it runs while the YAML is being loaded."""
        self._connect_readers()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"read-{self.target.name}")
        self._prefetch = pool.submit(read_accounts, self.conn, self.target, self.readers)
        pool.shutdown(wait=False)  # the thread finishes the one task, then exits

    def _connect_readers(self) -> None:
        if not self.readers:
            self.readers = [connect(self.target) for _ in range(self.READ_CONNECTIONS - 1)]

    def _read(self, verify: bool = False) -> ActualDirectory:
        if self._keys is not None:
            hints = {k: a.sam for k, a in self.desired.accounts.items()}
            accounts = read_accounts_by_key(self.conn, self.target, self._keys, verify, hints)
        else:
            self._connect_readers()
            prefetched, self._prefetch = self._prefetch, None
            accounts = prefetched.result() if prefetched is not None else None
        return read_directory(self.conn, self.target, self.desired, self.readers, accounts=accounts, verify=verify)

    def plan(self, state: DesiredState, today: str, keys: frozenset | None = None,
             previous_keys: frozenset = frozenset()) -> tuple[list[Change], list[Conflict], list[str]]:
        """Plan for the whole desired state, or (keys given) only for those employee keys."""
        self._keys = keys
        self.desired = expand(state, self.target)
        if keys is not None:  # the people of the changed files whose entries did not change are left out
            self.desired = replace(self.desired, accounts={k: a for k, a in self.desired.accounts.items() if k in keys})
        self.actual = self._read()
        if keys is not None:
            self.needs_full_read = self._partial_view_problem(previous_keys)
        changes, conflicts = diff(self.desired, self.actual, self.target, today)
        resets, waiting = password_resets(self.desired, self.actual, self.target, self.applied_resets)
        computers, taken = self._plan_computers(state, keys)
        return changes + resets + computers, conflicts + taken, list(self.actual.warnings) + waiting

    def holder_dns(self) -> dict[str, str]:
        """Where each declared person's account is once the plan is applied (for managedBy)."""
        return {k: a.target_dn for k, a in self.desired.accounts.items()}

    def _plan_computers(self, state: DesiredState, keys: frozenset | None) -> tuple[list[Change], list[Conflict]]:
        """Computers are planned on a full load; an incremental plan that touches a person who
        holds one asks for the full plan.  A hostname a computer the reconciler does not own
        already has is a conflict, left alone."""
        actual = read_computers(self.conn, self.target)
        if keys is not None or not state.assets_loaded:
            if any(c.holder in (keys or frozenset()) for c in actual.values() if c.holder) and not self.needs_full_read:
                self.needs_full_read = "a changed person holds a computer"
            self.computers = None
            return [], []
        self.computers = expand_computers(state, self.target)
        changes = diff_computers(self.computers, actual, self.target, self.holder_dns())
        wanted = {c.desired.hostname.casefold(): c for c in changes if c.desired is not None and c.desired.enabled
                  and (c.actual is None or c.actual.hostname.casefold() != c.desired.hostname.casefold())}
        held = foreign_hostnames(self.conn, self.target, wanted) if wanted else {}
        conflicts = [Conflict(self.target.name, c.key, c.label, f"the computer name {c.desired.hostname} is held by "
                              f"{held[name]}, which the reconciler does not own; left alone. Remove or rename it, "
                              "or choose another hostname")
                     for name, c in wanted.items() if name in held]
        blocked = {c.key for c in conflicts}
        return [c for c in changes if c.key not in blocked], conflicts

    def _partial_view_problem(self, previous_keys: frozenset) -> str | None:
        """What only a full read could judge in an incremental plan: a key that is new in the
        changed files but already has an account (declared twice, or re-hired), or a new or
        renamed account whose derived name is near an existing one (naming looks at everyone)."""
        for key in sorted(set(self.desired.accounts) - previous_keys):
            if key in self.actual.accounts:
                return f"employee {key} is new in the changed files but already has an account"
        wanted = {want.sam.rstrip("0123456789"): want.key for key, want in self.desired.accounts.items()
                  if want.enabled and (key not in self.actual.accounts
                                       or self.actual.accounts[key].sam.casefold() != want.sam.casefold())}
        owners = set(wanted.values())
        for obj in near_names(self.conn, self.target, wanted) if wanted else ():
            if obj.employee_id not in owners:
                return f"the account name {obj.sam} is near a new or renamed account's name"
        return None

    def apply(self, changes: list[Change], credentials: CredentialFile, advance=lambda n: None) -> list[Outcome]:
        applier = ADApplier(self.conn, self.target, credentials, dict(self.actual.groups), advance,
                            self.holder_dns())
        try:
            return applier.run(changes)
        finally:
            self.timings = applier.timings

    def verify(self, outcomes: list[Outcome], today: str) -> None:
        """Read everything back once and re-diff: an applied change is verified when nothing is
        left to do for its object (and a new account must change its password at next logon)."""
        started = time.perf_counter()
        try:
            actual = self._read(verify=True)
        except (ReconcilerError, LDAPException) as exc:
            for o in outcomes:
                if o.status == "applied":
                    o.error = f"could not read back to verify: {exc}"
            return
        remaining, _ = diff(self.desired, actual, self.target, today)
        if self.computers is not None:
            remaining += diff_computers(self.computers, read_computers(self.conn, self.target), self.target,
                                        self.holder_dns())
        pending = {(c.kind, c.key) for c in remaining}
        for o in outcomes:
            if o.status != "applied":
                continue
            c = o.change
            o.verified = (c.kind, c.key) not in pending
            if o.verified and (c.kind == PASSWORD_RESET or c.kind == "account" and c.movement is Movement.ALTA):
                account = actual.accounts.get(c.key)
                o.verified = account is not None and account.must_change_password
            if not o.verified:
                o.error = "read back: the directory does not show the change"
        self.actual = actual
        self.timings["verification"] = time.perf_counter() - started


__all__ = ["ADProvider", "Outcome"]
