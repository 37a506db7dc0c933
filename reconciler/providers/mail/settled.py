"""A settled mail plan: proof that nothing the mail plan reads has changed since a plan of the
same inputs that found nothing to do (run/settled.py is the engine's side).

A mail plan reads three things: files on the mail host (the registry, the three maps and the
sessions still owed a kick), Dovecot's list of the users it serves, and the rights on each open
shared mailbox.  Fetching them is cheap next to what the plan does with them: at 100,000
people, parsing the registry, building everyone's mailbox from the desired state and the diff
take seconds, fetching them again 0.6 s.  So the proof fetches them all again and compares them
with what the remembered plan read, as digests (`Seen`):

  - the same bytes of each file (or the same absence), whatever its modification time says:
    over SFTP a time has whole seconds and no inode, and a hand edit within the second of a
    read would keep both (Git's "racily clean" files); comparing the bytes has no such gap;
  - the same users served, which also covers Dovecot's configuration (a userdb added or
    changed lists other users, and a full plan would warn of the registry entries not served);
  - the same rights on the shared mailboxes the remembered plan read (the same registry lists
    the same ones).

Those, with the inputs the engine vouches for (the commit, the inventory, the code, the day),
are everything the plan is a pure function of, so the plan they give is the remembered one:
nothing to do.  No time bound is needed, and nothing is assumed from a clock.  Any difference,
any failure to fetch, or a memory that is not the runner's own (read_trusted) means a normal
plan.  A person's mailbox written since is not told apart: any difference plans the target in
full (a memory of every line would cost what it saves).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable

from reconciler.providers import settled_memory as memory
from reconciler.providers.contract import Standing

FORMAT = 1
FILES = ("registry", "recipients", "aliases", "denied", "kicks")  # the order of a digest


def files_digest(texts: dict[str, str | None]) -> str:
    """One digest of the files a plan read, each by name, its absence told from empty."""
    digest = hashlib.blake2b(digest_size=20)
    for name in FILES:
        text = texts.get(name)
        data = b"" if text is None else text.encode("utf-8", "surrogatepass")
        digest.update(f"{name}\0{'-' if text is None else len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def server_digest(served: Iterable[str], members: dict[str, tuple[str, ...]]) -> str:
    """One digest of what Dovecot answered: the users it serves, and each shared mailbox's members."""
    text = json.dumps([sorted(served), sorted(members.items())], ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


@dataclass(frozen=True)
class Seen:
    """What one plan read, as digests, and the shared mailboxes whose rights it asked for."""

    files: str
    server: str
    shared: tuple[tuple[str, str], ...]  # (key, address) of each open shared mailbox


def key_of(target) -> str:
    """Which target and which view of it: its name, the account that reads its files (another
    may be refused some), the paths and the API."""
    login = target.host_login
    where = [login.user, login.host, str(login.port)] if login is not None else ["-"]
    parts = [target.name, *where, target.registry, target.recipients, target.aliases, target.denied,
             target.doveadm_url]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def record(target, inputs: str, seen: Seen) -> None:
    """Remember that the plan of `inputs` found nothing to do over what it `seen`."""
    memory.record("mail", key_of(target), inputs, FORMAT,
                  {"files": seen.files, "server": seen.server, "shared": [list(s) for s in seen.shared]})


def load(target, inputs: str) -> tuple[float, Seen] | None:
    """When the remembered plan of `inputs` was made, and what it read; or None."""
    found = memory.load("mail", key_of(target), inputs, FORMAT)
    if found is None:
        return None
    raw = found.digests
    try:
        shared = tuple((str(k), str(a)) for k, a in raw["shared"])
        return found.planned_at, Seen(str(raw["files"]), str(raw["server"]), shared)
    except Exception:  # noqa: BLE001 - a damaged memory means a normal plan, never a crash
        return None


def remembered(target, inputs: str) -> bool:
    return memory.remembered("mail", key_of(target), inputs)


def forget(target) -> None:
    memory.forget("mail", key_of(target))


def holds(target, inputs: str, fetch_files, ask_dovecot) -> Standing | None:
    """When the remembered plan of `inputs` was made, if everything it read reads the same now;
    None otherwise.  `fetch_files()`: the files' texts by name (FILES); `ask_dovecot(shared)`:
    the users served and the shared mailboxes' members.  Both raise on any failure."""
    found = load(target, inputs)
    if found is None:
        return None
    planned_at, seen = found
    if files_digest(fetch_files()) != seen.files:
        return None  # the files first: when they differ, Dovecot is not asked
    if server_digest(*ask_dovecot(list(seen.shared))) != seen.server:
        return None
    return Standing(planned_at)
