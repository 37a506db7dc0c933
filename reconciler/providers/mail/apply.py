"""Applying mail changes: the registry and the maps in one atomic write each, then doveadm.

Steps:
  1. The registry is re-read and every change staged into it in memory: a new mailbox gets a
     home of its own (never one that already holds mail), a closed one keeps its home.
  2. The registry, then the maps derived from it, are written atomically, and Postfix
     re-reads its maps.  A closed address is in Dovecot's deny list from this moment.
  3. Through doveadm, in one request: live sessions of closed mailboxes are kicked, shared
     mailbox rights are removed and granted, and new mailboxes get their standard folders.
  4. Purges delete the homes of purged mailboxes, only below the target's mail root.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from reconciler.i18n import lazy
from reconciler.plan import Change, Movement, Outcome
from reconciler.providers.mail.diff import former_addresses
from reconciler.providers.mail.doveadm import EX_NOTFOUND, Command, Doveadm, Unanswered
from reconciler.providers.mail.records import SHARED_KIND, Mailbox
from reconciler.providers.mail.registry import SHARED, Entry, Registry, maps, write_atomically
from reconciler.providers.mail.target import MailTarget

FOLDERS = ("INBOX", "Drafts", "Sent", "Trash", "Junk")
RIGHTS = ["lookup", "read", "write", "write-seen", "write-deleted", "insert", "post", "expunge", "create"]
USERDB_RELOAD = 1.1  # Dovecot re-reads a passwd-file at most once a second


SESSIONS = "mail-sessions"  # live sessions of closed mailboxes that an earlier kick left


def kick_file(target: MailTarget) -> str:
    """Addresses whose live sessions must still be ended, one per line, next to the registry."""
    return f"{target.registry}.kick-pending"


def pending_kicks(target: MailTarget) -> set[str]:
    try:
        return {line.strip() for line in Path(kick_file(target)).read_text(encoding="utf-8").splitlines()
                if line.strip()}
    except FileNotFoundError:
        return set()


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


def is_purge(change: Change) -> bool:
    return change.movement is Movement.BAJA and change.actual is not None and not change.actual.is_open


class MailApplier:
    def __init__(self, target: MailTarget, api: Doveadm, today: str, advance: Callable[[int], None] = lambda n: None):
        self.target, self.api, self.today, self.advance = target, api, today, advance
        self.timings: dict[str, float] = {}
        self._homes: set[str] = set()

    def run(self, changes: list[Change]) -> list[Outcome]:
        outcomes = [Outcome(c) for c in changes]
        started = time.perf_counter()
        registry = Registry.read(self.target.registry)
        self._homes = {e.home for e in registry.entries() if e.home}
        self._owe_kicks(outcomes)
        for o in outcomes:
            if o.status != "failed":
                self._stage(o, registry)
        written = self._write(registry, [o for o in outcomes if o.status != "failed"])
        self.timings[lazy("registry and maps")] = time.perf_counter() - started
        started = time.perf_counter()
        if written:
            self._doveadm([o for o in outcomes if o.status != "failed"], written)
            self._purge([o for o in outcomes if o.status != "failed" and is_purge(o.change)])
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
            write_atomically(kick_file(self.target), "".join(
                f"{a}\n" for a in sorted(pending_kicks(self.target) | {a for _, a in kicks})))
        except OSError as exc:
            for o, _ in kicks:
                o.fail(lazy("could not record the sessions to end before closing the mailbox ({error}); "
                            "nothing was closed", error=exc.strerror))

    # -- step 1 -------------------------------------------------------------------------
    def _new_home(self, address: str) -> str:
        """<mail_root>/<domain>/<local part>, suffixed if that directory is taken: old mail left
        on disk must never reach a new owner."""
        local, domain = address.split("@", 1)
        base = Path(self.target.mail_root) / domain / local
        home, n = base, 1
        while str(home) in self._homes or home.exists():
            n += 1
            home = base.with_name(f"{local}.{n}")
        self._homes.add(str(home))
        return str(home)

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
        entry = Entry(
            address=want.address, home=have.home if have is not None and have.home else self._new_home(want.address),
            quota=want.quota, managed=True, owner=SHARED if want.kind == SHARED_KIND else want.key, unit=want.unit,
            aliases=want.aliases, former=former_addresses(want, have) if have is not None else (), closed=closed,
            extra=have.extra if have is not None else "")
        registry.put(entry, was=have.address if have is not None else None)

    # -- step 2 -------------------------------------------------------------------------
    def _write(self, registry: Registry, outcomes: list[Outcome]) -> float | None:
        """Write everything; the time of the registry write, or None when it failed."""
        try:
            write_atomically(self.target.registry, registry.text())
            written = time.time()
            derived = maps(registry.entries(), self.target.new_mail_after_baja)
            for name in ("recipients", "aliases", "denied"):
                write_atomically(getattr(self.target, name), derived[name])
        except OSError as exc:
            for o in outcomes:
                o.fail(lazy("writing the mailbox registry or its maps: {error}: {file}",
                            error=exc.strerror or str(exc), file=exc.filename or ""))
            return None
        try:
            subprocess.run(list(self.target.reload), check=True, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", None) or str(exc)
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
            time.sleep(max(0.0, written + USERDB_RELOAD - time.time()))
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
                write_atomically(kick_file(self.target), "".join(
                    f"{a}\n" for a in sorted(pending_kicks(self.target) - done)))
            except OSError:
                pass  # still owed on disk: the next run kicks them again, which is harmless

    @staticmethod
    def _members(change: Change) -> tuple[str, ...]:
        for a in change.attributes:
            if a.name == "members":
                return tuple(a.before or ())
        return change.desired.members if change.actual is not None else ()

    # -- step 4 -------------------------------------------------------------------------
    def _purge(self, outcomes: list[Outcome]) -> None:
        root = Path(self.target.mail_root).resolve()
        for o in outcomes:
            home = o.change.actual.home
            if not home:
                continue
            path = Path(home).resolve()
            if root not in path.parents:
                o.fail(lazy("the mailbox's home {home} is not under the mail root {root}: not deleted",
                            home=home, root=str(root)))
                continue
            try:
                shutil.rmtree(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                o.fail(lazy("deleting {home}: {error}", home=home, error=exc.strerror))
            if os.path.exists(path):
                o.fail(lazy("{home} is still on disk after the purge", home=home))
