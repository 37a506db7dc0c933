"""The mail provider: mailboxes on Dovecot and Postfix, read in one request, diffed as a pure
function, applied through the registry, the maps and doveadm, then read back."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from reconciler.credentials import CredentialFile
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy, lazy_n
from reconciler.plan import Change, Movement, Outcome
from reconciler.providers.contract import (
    Capability,
    Declared,
    PlanRequest,
    Provider,
    ReadBack,
    Standing,
    TargetPlan,
    named_by_inventory,
)
from reconciler.providers.mail.apply import (
    FOLDERS,
    SESSIONS,
    USERDB_RELOAD,
    MailApplier,
    closes,
    is_purge,
    kick_file,
    owed_in,
    pending_kicks,
    settled as reread,
)
from reconciler.providers.mail import settled
from reconciler.providers.mail.diff import diff
from reconciler.providers.mail.doveadm import Command, Doveadm
from reconciler.providers.mail.host import LocalHost, SshHost, open_host
from reconciler.providers.mail.records import PERSON, SHARED_KIND, ActualMail, Mailbox, actual_mail, expand
from reconciler.providers.mail.registry import SHARED, Registry
from reconciler.providers.mail.target import MailTarget

if TYPE_CHECKING:
    from reconciler.providers.found import Existing, ImportRequest


def revokes(change: Change) -> bool:
    """Changes that take access away: applied before any account is disabled or moved."""
    if change.movement is Movement.BAJA:
        return True
    if change.kind in (PERSON, SHARED_KIND) and change.desired is not None and closes(change):
        return True  # adopted straight into the bajas: it closes the mailbox
    return any(a.name == "members" and a.removed() for a in change.attributes)


def owed_kicks(target, changes: list[Change], actual: ActualMail, owed: set[str]) -> list[Change]:
    """Sessions of closed mailboxes that an earlier run had to end and could not (doveadm
    failed, or the run stopped first): ended now, unless a change of the address does it.
    Only addresses of managed mailboxes the registry shows closed count: the file lives on the
    mail host, and a line in it (a mask such as `*`, an open mailbox) must not end anyone
    else's sessions."""
    closed = {e.address for e in actual.entries.values() if e.managed and e.closed}
    changing = {c.desired.address for c in changes if c.desired is not None and hasattr(c.desired, "address")}
    return [Change(Movement.BAJA, target.name, SESSIONS, address, lazy("live sessions of {address}", address=address),
                   reason=lazy("the closing of the mailbox had to end them, and they are still owed"))
            for address in sorted((owed & closed) - changing)]


@dataclass(frozen=True)
class MailBasis:
    desired: dict[str, Mailbox]
    actual: ActualMail
    keys: frozenset | None
    today: str
    manages: Callable[[str | None], bool] | None = None  # staged rollout, as the plan judged it


class MailProvider(Provider):
    kind = "mail"
    capabilities = frozenset({Capability.IMPLIED_APPROVALS, Capability.ADOPTION, Capability.IMPORT,
                              Capability.SETTLED_PLANS})
    read_back_source = lazy("the registry")
    rewritten_by_every_apply = frozenset({"mail-maps"})  # apply.py, step 2

    def __init__(self, target: MailTarget):
        super().__init__(target)
        self.api: Doveadm | None = None
        self.host: LocalHost | SshHost | None = None
        self._last_read: tuple = ({}, set(), {}, ())  # read(): the texts, the users served, the members, the shared
        self._seen: settled.Seen | None = None  # what the last full plan read (settle)
        self._unreadable: list[tuple[str, object]] = []  # shared mailboxes whose rights doveadm did not give

    def open(self) -> None:
        self.api = Doveadm(self.target.doveadm_url, self.target.doveadm_key.read(), ca_file=self.target.doveadm_ca_file)
        self.host = open_host(self.target)

    def close(self) -> None:
        if self.host is not None:
            self.host.close()

    def revokes(self, change: Change) -> bool:
        return revokes(change)

    def existing(self, request: ImportRequest) -> Existing:
        """The registry's mailboxes made by hand (the registry file only: no doveadm, no key)."""
        from reconciler.providers.found import Existing, HandMadeMailbox  # importing only: a plan needs none

        host = open_host(self.target)
        try:
            entries = Registry.parse(self._read_text("registry", host) or "").entries()
        finally:
            host.close()
        where = _("registry of {target}", target=self.target.name)
        return Existing(mailboxes=tuple(HandMadeMailbox(e.address, tuple(e.aliases), where)
                                        for e in entries if not e.managed))

    def read(self) -> tuple[ActualMail, list[str]]:
        """The registry and the maps from disk; from doveadm, in one request, the mailboxes
        Dovecot serves and who may use each shared mailbox."""
        texts = {"registry": self._read_text("registry")}
        entries = Registry.parse(texts["registry"] or "").entries()
        shared = [(e.key, e.address) for e in entries if e.managed and e.owner == SHARED and e.is_open]
        served, members = self._ask_dovecot(shared)
        # One shared mailbox whose rights cannot be read must not stop the others' bajas; said,
        # so that the plan is never remembered and nobody takes "no members" for an answer.
        warnings = [lazy("target {target}: doveadm could not read who may use the shared mailbox {address} (exit code "
                         "{code}); it is planned as if it had no members, and rights given by hand are not seen",
                         target=self.target.name, address=address, code=code) for address, code in self._unreadable]
        unknown = [e.address for e in entries if e.address not in served]
        if unknown:
            warnings.append(lazy_n("target {target}: Dovecot does not serve {n} registry entry (first: {first}); "
                                   "check the registry's format",
                                   "target {target}: Dovecot does not serve {n} registry entries (first: {first}); "
                                   "check the registry's format",
                                   len(unknown), target=self.target.name, first=unknown[0]))
        for name in ("recipients", "aliases", "denied"):
            texts[name] = self._read_text(name)
        maps = {name: texts[name] or "" for name in ("recipients", "aliases", "denied")}
        actual = actual_mail(entries, members, maps, self.target.domains)
        if actual.unmanaged:
            warnings.append(lazy_n("target {target}: {n} mailbox in the registry was made by hand; left alone (a "
                                   "person who declares its address adopts it)",
                                   "target {target}: {n} mailboxes in the registry were made by hand; left alone (a "
                                   "person who declares one's address adopts it)",
                                   actual.unmanaged, target=self.target.name))
        self._last_read = (texts, served, members, tuple(shared))
        return actual, warnings

    def _read_text(self, name: str, host: LocalHost | SshHost | None = None) -> str | None:
        """One of the files a plan reads (settled.FILES), whole, from `host` (this provider's
        own by default); None when it is absent."""
        path = kick_file(self.target) if name == "kicks" else getattr(self.target, name)
        try:
            return (host or self.host).read(path)
        except OSError as exc:
            if name == "registry":
                raise ReconcilerError(_("cannot read the mail registry: {error}", error=str(exc))) from None
            if name == "kicks":
                raise ReconcilerError(_("cannot read the sessions still owed a kick: {error}",
                                        error=str(exc))) from None
            raise ReconcilerError(_("cannot read the map {path}: {error}", path=path, error=str(exc))) from None

    def _ask_dovecot(self, shared: Sequence[tuple[str, str]]) -> tuple[set[str], dict[str, tuple[str, ...]]]:
        """In one request: the users Dovecot serves, and the members of each shared mailbox
        (key, address) as its rights name them."""
        commands = [Command("user", {"userMask": ["*"]}, "users")]
        commands += [Command("aclGet", {"user": address, "mailbox": "INBOX"}, f"acl-{i}")
                     for i, (_key, address) in enumerate(shared)]
        answers = self.api.run(commands)
        listing = answers["users"]
        if not listing.ok:
            raise ReconcilerError(_("doveadm could not list the mailboxes of {target} (exit code {code})",
                                    target=self.target.name, code=listing.exit_code))
        served = {user for user in (listing.result or {}).get("userList") or () if isinstance(user, str)}
        members, self._unreadable = {}, []
        for i, (key, address) in enumerate(shared):
            answer = answers.get(f"acl-{i}")
            if answer is None or not answer.ok:  # planned as if it had no members, and said (read)
                self._unreadable.append((address, answer.exit_code if answer is not None else "-"))
            rights = answer.result if answer is not None and answer.ok else ()
            members[key] = tuple(sorted(r["id"][5:] for r in rights or ()
                                        if isinstance(r, dict) and str(r.get("id", "")).startswith("user=")))
        return served, members

    def plan(self, request: PlanRequest) -> TargetPlan:
        self.target.check_managed_units(request.state.units)
        desired = expand(request.state, self.target)
        actual, warnings = self.read()
        keys = request.keys
        needs_full_read = self._partial_view_problem(desired, actual, keys) if keys is not None else None
        manages = self.target.scope(request.state.units)
        changes, conflicts = diff(desired, actual, self.target, request.today, keys, manages)
        texts, served, members, shared = self._last_read
        texts["kicks"] = self._read_text("kicks")
        changes += owed_kicks(self.target, changes, actual, owed_in(texts["kicks"]))
        # What this plan read, to prove next time that it reads the same (settled.py).
        self._seen = settled.Seen(settled.files_digest(texts), settled.server_digest(served, members), shared) \
            if keys is None else None
        return TargetPlan(self.target.name, changes, conflicts, warnings,
                          MailBasis(desired, actual, keys, request.today, manages), needs_full_read)

    @staticmethod
    def _partial_view_problem(desired: dict[str, Mailbox], actual: ActualMail, keys: frozenset) -> str | None:
        """A changed person who uses a shared mailbox: its members are judged on a full plan."""
        addresses = {box.address for k in keys for box in (desired.get(k), actual.entries.get(k))
                     if box is not None}
        for key, members in actual.members.items():
            if addresses & set(members):
                return lazy("a changed person is a member of the shared mailbox {address}",
                            address=key.split(":", 1)[1])
        return None

    def apply(self, planned: TargetPlan, changes: Sequence[Change], credentials: CredentialFile,
              advance=lambda n: None) -> list[Outcome]:
        """`credentials` is unused: a mailbox's login is its AD account's password."""
        applier = MailApplier(self.target, self.api, planned.basis.today, advance, self.host)
        try:
            return applier.run(list(changes))
        finally:
            for phase, seconds in applier.timings.items():
                self.timings[phase] = self.timings.get(phase, 0.0) + seconds

    def read_back(self, planned: TargetPlan) -> ReadBack:
        basis: MailBasis = planned.basis
        actual, _ = self.read()
        remaining, _ = diff(basis.desired, actual, self.target, basis.today, basis.keys, basis.manages)
        return ReadBack(remaining, actual)

    def confirm(self, planned: TargetPlan, back: ReadBack, shown: list[Outcome]) -> dict[int, str]:
        """A closed mailbox must be in Dovecot's deny list; a new or open one must have its
        folders and report the declared quota over doveadm."""
        denied = set(back.observed.maps.get("denied", "").splitlines())
        problems = {}
        opened = []
        try:
            owed = pending_kicks(self.host, self.target)
        except OSError as exc:
            owed = set()
            problems.update({id(o): lazy("read back: {error}", error=str(exc)) for o in shown if o.change.kind == SESSIONS})
        for o in shown:
            c = o.change
            if c.kind == SESSIONS:
                if c.key in owed:
                    problems[id(o)] = lazy("read back: its sessions are still recorded as owed")
                continue
            if c.kind == "mail-maps" or is_purge(c):
                continue
            if not c.desired.is_open:
                if c.desired.address not in denied:
                    problems[id(o)] = lazy("read back: the closed address is not in Dovecot's deny list")
            else:
                opened.append(o)
        problems.update(self._server_checks(opened))
        return problems

    # -- settled plans (settled.py) ----------------------------------------------------------
    def settle(self, planned: TargetPlan, inputs: str) -> None:
        """Only a full plan is remembered, with what its own read saw."""
        if self._seen is not None and planned.basis is not None and planned.basis.keys is None:
            settled.record(self.target, inputs, self._seen)

    def settled(self, inputs: str) -> Standing | None:
        fetch = lambda: {name: self._read_text(name) for name in settled.FILES}  # noqa: E731

        def ask(shared):
            answer = self._ask_dovecot(shared)
            if self._unreadable:  # read as "no members" it could match a memory of none
                raise ReconcilerError("unreadable rights")  # not for people: caught below, a normal plan says it
            return answer
        try:
            return settled.holds(self.target, inputs, fetch, ask)
        except Exception:  # noqa: BLE001 - anything that cannot be fetched or read: a normal plan tells
            return None

    @classmethod
    def remembers(cls, target: MailTarget, inputs: str) -> bool:
        return settled.remembered(target, inputs)

    def unsettle(self) -> None:
        settled.forget(self.target)

    def removed_declaration(self, change: Change) -> Declared | None:
        """A person's mailbox by the employee key, a shared one by its address, in a unit's
        file; the maps are derived."""
        if change.kind == SHARED_KIND:
            return Declared(change.key.split(":", 1)[1], "users")
        return Declared(change.key, "users") if change.kind == "mailbox" else None

    def implied_approvals(self, changes: Sequence[Change]) -> dict[int, str]:
        """The maps: rewritten from the approved mailbox registry, declared by no line; and
        ending the sessions an applied closing had to end."""
        return named_by_inventory(changes, {
            "mail-maps": lazy("the maps are rewritten from the approved mailbox registry"),
            SESSIONS: lazy("finishes the applied closing of the mailbox")})

    def _server_checks(self, opened: list[Outcome]) -> dict[int, str]:
        """Ask Dovecot itself, in one request: the folders and the quota of each open mailbox."""
        if not opened:
            return {}
        written = self.host.mtime(self.target.registry)  # Dovecot must have re-read the registry written moments ago
        time.sleep(reread(written) if written is not None else USERDB_RELOAD)
        commands = []
        for i, o in enumerate(opened):
            user = o.change.desired.address
            commands += [Command("mailboxList", {"user": user}, f"list-{i}"), Command("quotaGet", {"user": user}, f"quota-{i}")]
        try:
            answers = self.api.run(commands)
        except ReconcilerError as exc:
            return {id(o): lazy("could not ask Dovecot to verify: {error}", error=str(exc)) for o in opened}
        problems = {}
        for i, o in enumerate(opened):
            want = o.change.desired
            listed, quota = answers.get(f"list-{i}"), answers.get(f"quota-{i}")
            folders = {m.get("mailbox") for m in (listed.result or ())} if listed is not None and listed.ok else set()
            needed = {"INBOX"} if want.kind == SHARED_KIND else set(FOLDERS)
            limit = next((q.get("limit") for q in (quota.result or ()) if q.get("type") == "STORAGE"), None) \
                if quota is not None and quota.ok else None
            if not needed <= folders:
                problems[id(o)] = lazy("Dovecot lists no {folders} for {address}",
                                       folders=", ".join(sorted(needed - folders)), address=want.address)
            elif limit != str(kibibytes(want.quota)):
                problems[id(o)] = lazy("Dovecot reports a quota of {limit} KiB for {address}, not {quota}",
                                       limit=limit, address=want.address, quota=want.quota)
        return problems


def kibibytes(quota: str) -> int:
    return int(quota[:-1]) * (1024 * 1024 if quota.endswith("G") else 1024)
