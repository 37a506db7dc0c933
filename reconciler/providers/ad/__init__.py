"""The Active Directory provider: read in bulk, diff as a pure function, apply, verify."""
from __future__ import annotations

from ldap3.core.exceptions import LDAPException

from ...credentials import CredentialFile
from ...errors import ReconcilerError
from ...desired.model import DesiredState
from ...inventory import ADTarget
from ...plan import Change, Conflict, Movement
from .apply import ADApplier, Outcome
from .connection import connect
from .diff import ActualDirectory, diff
from .read import read_directory
from .records import DesiredDirectory, expand


class ADProvider:
    kind = "active_directory"

    def __init__(self, target: ADTarget):
        self.target = target
        self.conn = None
        self.desired: DesiredDirectory | None = None
        self.actual: ActualDirectory | None = None

    def __enter__(self) -> "ADProvider":
        self.conn = connect(self.target)
        return self

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            self.conn.unbind()

    def plan(self, state: DesiredState, today: str) -> tuple[list[Change], list[Conflict], list[str]]:
        self.desired = expand(state, self.target)
        self.actual = read_directory(self.conn, self.target, self.desired)
        changes, conflicts = diff(self.desired, self.actual, self.target, today)
        return changes, conflicts, list(self.actual.warnings)

    def apply(self, changes: list[Change], credentials: CredentialFile, advance=lambda n: None) -> list[Outcome]:
        applier = ADApplier(self.conn, self.target, credentials, dict(self.actual.groups), advance)
        return applier.run(changes)

    def verify(self, outcomes: list[Outcome], today: str) -> None:
        """Read everything back once and re-diff: an applied change is verified when nothing is
        left to do for its object (and a new account must change its password at next logon)."""
        try:
            actual = read_directory(self.conn, self.target, self.desired)
        except (ReconcilerError, LDAPException) as exc:
            for o in outcomes:
                if o.status == "applied":
                    o.error = f"could not read back to verify: {exc}"
            return
        remaining, _ = diff(self.desired, actual, self.target, today)
        pending = {(c.kind, c.key) for c in remaining}
        for o in outcomes:
            if o.status != "applied":
                continue
            c = o.change
            o.verified = (c.kind, c.key) not in pending
            if o.verified and c.kind == "account" and c.movement is Movement.ALTA:
                o.verified = actual.accounts[c.key].must_change_password
            if not o.verified:
                o.error = "read back: the directory does not show the change"
        self.actual = actual


__all__ = ["ADProvider", "Outcome"]
