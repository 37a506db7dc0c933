"""The mail provider: mailboxes on Dovecot and Postfix, read in one request, diffed as a pure
function, applied through the registry, the maps and doveadm, then read back."""
from __future__ import annotations

import time
from pathlib import Path

from ...credentials import CredentialFile
from ...desired.model import DesiredState
from ...errors import ReconcilerError
from ...inventory import MailTarget
from ...plan import Change, Conflict, Movement
from ..ad.apply import Outcome
from .apply import FOLDERS, USERDB_RELOAD, MailApplier, is_purge
from .diff import diff
from .doveadm import Command, Doveadm
from .records import SHARED_KIND, ActualMail, Mailbox, actual_mail, expand
from .registry import SHARED, Registry


def revokes(change: Change) -> bool:
    """Changes that take access away: applied before any account is disabled or moved."""
    if change.movement is Movement.BAJA:
        return True
    return any(a.name == "members" and a.removed() for a in change.attributes)


class MailProvider:
    kind = "mail"
    needs_full_read: str | None = None
    revokes = staticmethod(revokes)

    def __init__(self, target: MailTarget):
        self.target = target
        self.api: Doveadm | None = None
        self.timings: dict[str, float] = {}
        self.desired: dict[str, Mailbox] = {}
        self.actual: ActualMail | None = None
        self._keys: frozenset | None = None
        self._today = ""

    def __enter__(self) -> "MailProvider":
        self.api = Doveadm(self.target.doveadm_url, self.target.doveadm_key.read())
        return self

    def __exit__(self, *exc) -> None:
        pass

    def prefetch(self) -> None:
        """Nothing to start early: the read is one file and one request."""

    def read(self) -> tuple[ActualMail, list[str]]:
        """The registry and the maps from disk; from doveadm, in one request, the mailboxes
        Dovecot serves and who may use each shared mailbox."""
        entries = Registry.read(self.target.registry).entries()
        shared = [e for e in entries if e.managed and e.owner == SHARED and e.is_open]
        commands = [Command("user", {"userMask": ["*"]}, "users")]
        commands += [Command("aclGet", {"user": e.address, "mailbox": "INBOX"}, f"acl-{i}") for i, e in enumerate(shared)]
        answers = self.api.run(commands)
        warnings = []
        listing = answers["users"]
        if not listing.ok:
            raise ReconcilerError(f"doveadm could not list the mailboxes of {self.target.name} "
                                  f"(exit code {listing.exit_code})")
        served = set((listing.result or {}).get("userList") or ())
        unknown = [e.address for e in entries if e.address not in served]
        if unknown:
            warnings.append(f"target {self.target.name}: Dovecot does not serve {len(unknown)} registry entries "
                            f"(first: {unknown[0]}); check the registry's format")
        members = {}
        for i, e in enumerate(shared):
            answer = answers.get(f"acl-{i}")
            rights = answer.result if answer is not None and answer.ok else []
            members[e.key] = tuple(sorted(r["id"][5:] for r in rights or () if r.get("id", "").startswith("user=")))
        files = {}
        for name in ("recipients", "aliases", "denied"):
            try:
                files[name] = Path(getattr(self.target, name)).read_text(encoding="utf-8")
            except FileNotFoundError:
                files[name] = ""
        actual = actual_mail(entries, members, files, self.target.domains)
        if actual.unmanaged:
            warnings.append(f"target {self.target.name}: {actual.unmanaged} mailboxes in the registry were made "
                            "by hand; left alone (a person who declares one's address adopts it)")
        return actual, warnings

    def plan(self, state: DesiredState, today: str, keys: frozenset | None = None,
             previous_keys: frozenset = frozenset()) -> tuple[list[Change], list[Conflict], list[str]]:
        self._keys, self._today = keys, today
        self.desired = expand(state, self.target)
        self.actual, warnings = self.read()
        if keys is not None:
            self.needs_full_read = self._partial_view_problem(keys)
        changes, conflicts = diff(self.desired, self.actual, self.target, today, keys)
        return changes, conflicts, warnings

    def _partial_view_problem(self, keys: frozenset) -> str | None:
        """A changed person who uses a shared mailbox: its members are judged on a full plan."""
        addresses = {box.address for k in keys for box in (self.desired.get(k), self.actual.entries.get(k))
                     if box is not None}
        for key, members in self.actual.members.items():
            if addresses & set(members):
                return f"a changed person is a member of the shared mailbox {key.split(':', 1)[1]}"
        return None

    def apply(self, changes: list[Change], credentials: CredentialFile, advance=lambda n: None) -> list[Outcome]:
        """`credentials` is unused: a mailbox's login is its AD account's password."""
        applier = MailApplier(self.target, self.api, self._today, advance)
        try:
            return applier.run(changes)
        finally:
            for phase, seconds in applier.timings.items():
                self.timings[phase] = self.timings.get(phase, 0.0) + seconds

    def verify(self, outcomes: list[Outcome], today: str) -> None:
        """Read back and re-diff; a new mailbox must also have its folders and report the
        declared quota over doveadm, a closed one must be in the deny list."""
        started = time.perf_counter()
        try:
            actual, _ = self.read()
        except ReconcilerError as exc:
            for o in outcomes:
                if o.status == "applied":
                    o.error = f"could not read back to verify: {exc}"
            return
        remaining, _ = diff(self.desired, actual, self.target, today, self._keys)
        pending = {(c.kind, c.key) for c in remaining}
        opened = [o for o in outcomes if o.status == "applied" and o.change.kind != "mail-maps"
                  and not is_purge(o.change) and o.change.desired.is_open]
        checks = self._server_checks(opened)
        denied = set(actual.maps.get("denied", "").splitlines())
        for o in outcomes:
            if o.status != "applied":
                continue
            c = o.change
            problem = None
            if (c.kind, c.key) in pending:
                problem = "read back: the registry does not show the change"
            elif c.kind != "mail-maps" and not is_purge(c) and not c.desired.is_open and c.desired.address not in denied:
                problem = "read back: the closed address is not in Dovecot's deny list"
            elif o in opened:
                problem = checks.get(id(o))
            o.verified = problem is None
            o.error = problem
        self.actual = actual
        self.timings["verification"] = time.perf_counter() - started

    def _server_checks(self, opened: list[Outcome]) -> dict[int, str]:
        """Ask Dovecot itself, in one request: the folders and the quota of each open mailbox."""
        if not opened:
            return {}
        try:  # Dovecot must have re-read the registry written moments ago
            written = Path(self.target.registry).stat().st_mtime
            time.sleep(max(0.0, written + USERDB_RELOAD - time.time()))
        except OSError:
            pass
        commands = []
        for i, o in enumerate(opened):
            user = o.change.desired.address
            commands += [Command("mailboxList", {"user": user}, f"list-{i}"), Command("quotaGet", {"user": user}, f"quota-{i}")]
        try:
            answers = self.api.run(commands)
        except ReconcilerError as exc:
            return {id(o): f"could not ask Dovecot to verify: {exc}" for o in opened}
        problems = {}
        for i, o in enumerate(opened):
            want = o.change.desired
            listed, quota = answers.get(f"list-{i}"), answers.get(f"quota-{i}")
            folders = {m.get("mailbox") for m in (listed.result or ())} if listed is not None and listed.ok else set()
            needed = {"INBOX"} if want.kind == SHARED_KIND else set(FOLDERS)
            limit = next((q.get("limit") for q in (quota.result or ()) if q.get("type") == "STORAGE"), None) \
                if quota is not None and quota.ok else None
            if not needed <= folders:
                problems[id(o)] = f"Dovecot lists no {', '.join(sorted(needed - folders))} for {want.address}"
            elif limit != str(kibibytes(want.quota)):
                problems[id(o)] = f"Dovecot reports a quota of {limit} KiB for {want.address}, not {want.quota}"
        return problems


def kibibytes(quota: str) -> int:
    return int(quota[:-1]) * (1024 * 1024 if quota.endswith("G") else 1024)


__all__ = ["MailProvider", "revokes"]
