"""Applying mail changes: the registry and the maps in one atomic write each, then doveadm.

Steps:
  1. Purges delete the homes of purged mailboxes, only homes of their own below the target's
     mail root; a home that could not be deleted keeps its registry line for the next run.
     The registry is re-read and every change staged into it in memory: a new mailbox gets a
     home of its own (never one that already holds mail), a closed one keeps its home.
  2. The registry, then the maps derived from it, are written atomically, and Postfix
     re-reads its maps.  A closed address is in Dovecot's deny list from this moment.
  3. Through doveadm, in one request: live sessions of closed mailboxes are kicked, shared
     mailbox rights are removed and granted, and new mailboxes get their standard folders.
"""
from __future__ import annotations

import posixpath
import re
import time
from collections import Counter
from typing import Callable

from reconciler.i18n import lazy
from reconciler.plan import Change, Movement, Outcome
from reconciler.providers.mail.diff import former_addresses
from reconciler.providers.mail.doveadm import EX_NOTFOUND, Command, Doveadm, Unanswered
from reconciler.providers.mail.records import SHARED_KIND, Mailbox
from reconciler.providers.mail.host import HostError, LocalHost, SshHost
from reconciler.providers.mail.registry import SHARED, Entry, Registry, maps
from reconciler.providers.mail.target import MailTarget

FOLDERS = ("INBOX", "Drafts", "Sent", "Trash", "Junk")
RIGHTS = ["lookup", "read", "write", "write-seen", "write-deleted", "insert", "post", "expunge", "create"]
USERDB_RELOAD = 1.1  # Dovecot re-reads a passwd-file at most once a second


SESSIONS = "mail-sessions"  # live sessions of closed mailboxes that an earlier kick left


def kick_file(target: MailTarget) -> str:
    """Addresses whose live sessions must still be ended, one per line, next to the registry."""
    return f"{target.registry}.kick-pending"


def pending_kicks(host: LocalHost | SshHost, target: MailTarget) -> set[str]:
    return owed_in(host.read(kick_file(target)))


def owed_in(text: str | None) -> set[str]:
    """The addresses of a kick file's text (None: no file)."""
    return {line.strip() for line in (text or "").splitlines() if line.strip()}


def settled(written: float) -> float:
    """How long to wait for Dovecot to re-read a registry written at `written` (by this host's
    clock or the mail host's: never longer than Dovecot's own interval, whatever their skew)."""
    return min(USERDB_RELOAD, max(0.0, written + USERDB_RELOAD - time.time()))


def kicked(change: Change) -> str | None:
    """The address whose live sessions applying `change` ends, or None."""
    if change.kind == SESSIONS:
        return change.key
    if change.kind == "mail-maps" or is_purge(change) or change.desired is None:
        return None
    return change.desired.address if closes(change) else None


def closes(change: Change) -> bool:
    """A baja, or an adoption straight into the bajas: the mailbox ends up closed."""
    return change.movement in (Movement.BAJA, Movement.ADOPCION) and not change.desired.is_open


# One component of a home below the mail root: a domain, or a local part with its .N suffix.
# The mail host's sudoers lets the account delete nothing else (README: the mail host).
HOME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")


def is_purge(change: Change) -> bool:
    return change.movement is Movement.BAJA and change.actual is not None and not change.actual.is_open


class MailApplier:
    def __init__(self, target: MailTarget, api: Doveadm, today: str, advance: Callable[[int], None] = lambda n: None,
                 host: LocalHost | SshHost | None = None):
        self.target, self.api, self.today, self.advance = target, api, today, advance
        self.host = host or LocalHost()
        self.timings: dict[str, float] = {}
        self._homes: set[str] = set()

    def run(self, changes: list[Change]) -> list[Outcome]:
        outcomes = [Outcome(c) for c in changes]
        started = time.perf_counter()
        try:
            registry = Registry.parse(self.host.read(self.target.registry) or "")
        except OSError as exc:
            for o in outcomes:
                o.fail(lazy("reading the mailbox registry: {error}", error=str(exc)))
            return outcomes
        self._homes = {e.home for e in registry.entries() if e.home}
        self._owe_kicks(outcomes)
        # A home goes before its registry line: a purge that fails keeps the line, and the
        # next run tries again (the mailbox is closed already: nothing reads the home).
        self._purge([o for o in outcomes if o.status != "failed" and is_purge(o.change)], registry)
        for o in outcomes:
            if o.status != "failed":
                self._stage(o, registry)
        written = self._write(registry, [o for o in outcomes if o.status != "failed"])
        self.timings[lazy("registry and maps")] = time.perf_counter() - started
        started = time.perf_counter()
        if written:
            self._doveadm([o for o in outcomes if o.status != "failed"], written)
        self.timings["doveadm"] = time.perf_counter() - started
        for o in outcomes:
            if o.status == "pending":
                o.status = "applied"
        self.advance(len(outcomes))
        return outcomes

    def _owe_kicks(self, outcomes: list[Outcome]) -> None:
        """Before a mailbox is closed, its sessions are recorded as owed (kick_file): a run that
        stops, a reload or a kick that fails, leaves them for the next run.  Nothing is closed
        that could not be recorded."""
        kicks = [(o, address) for o in outcomes if (address := kicked(o.change))]
        if not kicks:
            return
        try:
            self.host.write(kick_file(self.target), "".join(
                f"{a}\n" for a in sorted(pending_kicks(self.host, self.target) | {a for _, a in kicks})))
        except OSError as exc:
            for o, _ in kicks:
                o.fail(lazy("could not record the sessions to end before closing the mailbox ({error}); "
                            "nothing was closed", error=exc.strerror or str(exc)))

    # -- step 1 -------------------------------------------------------------------------
    def _new_home(self, address: str) -> str:
        """<mail_root>/<domain>/<local part>, suffixed if that directory is taken: old mail left
        on disk must never reach a new owner."""
        local, domain = address.split("@", 1)
        base = posixpath.join(self.target.mail_root, domain, local)
        home, n = base, 1
        while home in self._homes or self.host.home_exists(home):
            n += 1
            home = f"{base}.{n}"
        self._homes.add(home)
        return home

    def _stage(self, o: Outcome, registry: Registry) -> None:
        c = o.change
        if c.kind in ("mail-maps", SESSIONS):
            return  # the maps are rewritten from the registry on every apply; sessions are doveadm's
        have: Entry | None = c.actual
        if is_purge(c):
            registry.remove(have.address)
            return
        want: Mailbox = c.desired
        closed = None if want.is_open else (have.closed if have is not None and have.closed else self.today)
        try:
            home = have.home if have is not None and have.home else self._new_home(want.address)
        except OSError as exc:  # the mail host could not say whether a home is taken: no guess
            o.fail(lazy("choosing a home for {address}: {error}", address=want.address, error=exc.strerror or str(exc)))
            return
        entry = Entry(
            address=want.address, home=home,
            quota=want.quota, managed=True, owner=SHARED if want.kind == SHARED_KIND else want.key, unit=want.unit,
            aliases=want.aliases, former=former_addresses(want, have) if have is not None else (), closed=closed,
            extra=have.extra if have is not None else "")
        registry.put(entry, was=have.address if have is not None else None)

    # -- step 2 -------------------------------------------------------------------------
    def _write(self, registry: Registry, outcomes: list[Outcome]) -> float | None:
        """Write everything; the time of the registry write, or None when it failed."""
        try:
            derived = maps(registry.entries(), self.target.new_mail_after_baja)
            # The deny list first: a link lost after it leaves a closing mailbox refused, never
            # one whose registry line is closed but whose login still works.
            self.host.write(self.target.denied, derived["denied"])
            self.host.write(self.target.registry, registry.text())
            written = time.time()
            for name in ("recipients", "aliases"):
                self.host.write(getattr(self.target, name), derived[name])
        except OSError as exc:
            for o in outcomes:
                o.fail(lazy("writing the mailbox registry or its maps: {error}: {file}",
                            error=exc.strerror or str(exc), file=exc.filename or ""))
            return None
        try:
            self.host.run(self.target.reload)
        except HostError as exc:
            detail = str(exc)
            for o in outcomes:
                o.fail(lazy("the registry is written, but Postfix did not reload its maps ({command}): {detail}",
                            command=" ".join(self.target.reload), detail=detail.strip()))
        return written

    # -- step 3 -------------------------------------------------------------------------
    def _doveadm(self, outcomes: list[Outcome], written: float) -> None:
        commands: list[tuple[Command, Outcome]] = []
        creating = [o for o in outcomes if o.change.kind not in ("mail-maps", SESSIONS) and not is_purge(o.change)
                    and o.change.desired.is_open and (o.change.actual is None or not o.change.actual.is_open)]
        for o in outcomes:
            c = o.change
            if c.kind == SESSIONS:  # owed by an earlier run
                commands.append((Command("kick", {"mask": [c.key]}, f"kick-{len(commands)}"), o))
                continue
            if c.kind == "mail-maps" or is_purge(c):
                continue
            want: Mailbox = c.desired
            if closes(c):
                commands.append((Command("kick", {"mask": [want.address]}, f"kick-{len(commands)}"), o))
            if want.kind == SHARED_KIND:
                before = set(self._members(c))
                for member in sorted(before - set(want.members)):
                    commands.append((Command("aclDelete", {"user": want.address, "mailbox": "INBOX",
                                                           "id": f"user={member}"}, f"acl-{len(commands)}"), o))
                for member in sorted(set(want.members) - before):
                    commands.append((Command("aclSet", {"user": want.address, "mailbox": "INBOX",
                                                        "id": f"user={member}", "right": RIGHTS}, f"acl-{len(commands)}"), o))
        if creating or commands:
            # Dovecot must see the new registry and deny list before doveadm acts on them, and
            # before a kicked session could log in again.
            time.sleep(settled(written))
        for o in creating:  # folders first: a shared mailbox's rights live on its INBOX
            commands.insert(0, (Command("mailboxCreate", {"user": o.change.desired.address, "mailbox": list(FOLDERS),
                                                          "subscriptions": True}, f"create-{len(commands)}"), o))
        unanswered: str | None = None  # why the request failed, when it did
        try:
            answers = self.api.run([cmd for cmd, _ in commands])
        except Unanswered as exc:  # the batches before the failure were answered: judge them
            answers, unanswered = exc.answers, str(exc)
        for cmd, o in commands:
            answer = answers.get(cmd.tag)
            user = cmd.parameters.get("user") or cmd.parameters.get("mask")
            if answer is None and unanswered is not None:
                o.fail(lazy("doveadm {command} for {user}: {error}", command=cmd.name, user=user, error=unanswered))
            elif answer is None:
                o.fail(lazy("doveadm {command} for {user} failed (exit code no answer)", command=cmd.name, user=user))
            elif not answer.ok and not (cmd.name == "kick" and answer.exit_code == EX_NOTFOUND):
                o.fail(lazy("doveadm {command} for {user} failed (exit code {code})", command=cmd.name, user=user,
                            code=answer.exit_code))
        done = {cmd.parameters["mask"][0] for cmd, o in commands if cmd.name == "kick" and o.status != "failed"}
        if done:  # owed until Dovecot said they are done
            try:
                self.host.write(kick_file(self.target), "".join(
                    f"{a}\n" for a in sorted(pending_kicks(self.host, self.target) - done)))
            except OSError:
                pass  # still owed on disk: the next run kicks them again, which is harmless

    @staticmethod
    def _members(change: Change) -> tuple[str, ...]:
        for a in change.attributes:
            if a.name == "members":
                return tuple(a.before or ())
        return change.desired.members if change.actual is not None else ()

    # -- step 1, before the registry: purges -----------------------------------------
    def _purge(self, outcomes: list[Outcome], registry: Registry) -> None:
        """Delete each purged mailbox's home, only when it is a home of its own: no other line
        of the registry names it, a folder above it or one below it (homes compared normalised,
        a line without a home standing for Dovecot's default), and it is exactly <mail
        root>/<domain>/<name> with no symlink on the way as the mail host resolves it (a line
        edited by hand to point at another mailbox, or out of the mail root, is refused)."""
        if not outcomes:
            return
        homes = Counter(self._home_of(e) for e in registry.entries())
        try:
            root = self.host.resolve_home(self.target.mail_root)
        except OSError as exc:
            for o in outcomes:
                o.fail(lazy("resolving the mail root {root}: {error}", root=self.target.mail_root, error=str(exc)))
            return
        for o in outcomes:
            home = self._home_of(o.change.actual)
            try:
                path = self._own_home(home, root) if not self._shared(home, homes) else None
                if path is None:
                    o.fail(lazy("the mailbox's home {home} is not a home of its own under the mail root {root}: "
                                "not deleted", home=home, root=self.target.mail_root))
                    continue
                self.host.remove_home(path)
                if self.host.home_exists(path):
                    o.fail(lazy("{home} is still on disk after the purge", home=home))
            except OSError as exc:
                o.fail(lazy("deleting {home}: {error}", home=home, error=exc.strerror or str(exc)))

    def _home_of(self, entry: Entry) -> str:
        """Where an entry's mail is, normalised (a trailing slash or a doubled one names the same
        folder): its home, or for a line without one Dovecot's default, <mail_root>/<domain>/<name>."""
        if entry.home:
            return posixpath.normpath(entry.home)
        local, domain = entry.address.split("@", 1)
        return posixpath.join(posixpath.normpath(self.target.mail_root), domain, local)

    @staticmethod
    def _shared(home: str, homes: Counter) -> bool:
        """Whether another line's mail is in `home`, above it or below it."""
        others = homes - Counter([home])
        return any(h == home or h.startswith(home + "/") or home.startswith(h + "/") for h in others)

    def _own_home(self, home: str, root: str) -> str | None:
        """The path to delete for `home`, or None when it is not <mail root>/<domain>/<name> as
        the mail host resolves it (`root` is the mail root resolved)."""
        base = self.target.mail_root.rstrip("/") + "/"
        parts = home[len(base):].split("/") if home.startswith(base) else []
        if len(parts) != 2 or not all(HOME_PART.fullmatch(part) for part in parts):
            return None
        expected = posixpath.join(root, *parts)
        return expected if self.host.resolve_home(home) == expected else None
