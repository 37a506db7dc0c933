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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from reconciler.desired.schemacache import cache_dir, cached_time, read_trusted, require_cached, write_private
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


@dataclass(frozen=True)
class Memory:
    key: str  # the target: its name, how it is reached, its files
    inputs: str  # what the engine vouches for (engine.settled_inputs)
    planned_at: float
    seen: Seen


def key_of(target) -> str:
    """Which target and which view of it: its name, the account that reads its files (another
    may be refused some), the paths and the API."""
    login = target.host_login
    where = [login.user, login.host, str(login.port)] if login is not None else ["-"]
    parts = [target.name, *where, target.registry, target.recipients, target.aliases, target.denied,
             target.doveadm_url]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def path_of(target) -> Path | None:
    base = cache_dir()
    return base.parent / "mail" / f"{key_of(target)}.settled.json" if base is not None else None


def record(target, inputs: str, seen: Seen) -> None:
    """Remember that the plan of `inputs` found nothing to do over what it `seen`.  Atomically,
    0600, or not at all (a memory that cannot be written is only slower)."""
    path = path_of(target)
    if path is None:
        return
    # The inputs first: `remembered` looks for them in the first bytes.
    text = json.dumps({"inputs": inputs, "format": FORMAT, "key": key_of(target), "planned_at": time.time(),
                       "files": seen.files, "server": seen.server, "shared": [list(s) for s in seen.shared]},
                      ensure_ascii=False, separators=(",", ":"))
    write_private(path, text.encode("utf-8", "surrogatepass"))


def load(target, inputs: str) -> Memory | None:
    path = path_of(target)
    data = read_trusted(path) if path is not None else None
    if data is None:
        return None
    try:
        raw = json.loads(data)
        require_cached(raw["format"] == FORMAT and raw["key"] == key_of(target) and raw["inputs"] == inputs)
        shared = tuple((str(k), str(a)) for k, a in raw["shared"])
        return Memory(raw["key"], inputs, cached_time(raw["planned_at"]),
                      Seen(str(raw["files"]), str(raw["server"]), shared))
    except Exception:  # noqa: BLE001 - a damaged memory means a normal plan, never a crash
        return None


def remembered(target, inputs: str) -> bool:
    """Whether a memory of `inputs` may exist, from its first bytes: a hint, `holds` proves it."""
    path = path_of(target)
    start = read_trusted(path, limit=256) if path is not None else None
    return start is not None and f'{{"inputs":"{inputs}"'.encode() in start


def forget(target) -> None:
    path = path_of(target)
    try:
        if path is not None:
            path.unlink(missing_ok=True)
    except OSError:  # not ours to remove: it fails the trust rules when read anyway
        pass


def holds(target, inputs: str, fetch_files, ask_dovecot) -> Standing | None:
    """When the remembered plan of `inputs` was made, if everything it read reads the same now;
    None otherwise.  `fetch_files()`: the files' texts by name (FILES); `ask_dovecot(shared)`:
    the users served and the shared mailboxes' members.  Both raise on any failure."""
    memory = load(target, inputs)
    if memory is None:
        return None
    if files_digest(fetch_files()) != memory.seen.files:
        return None  # the files first: when they differ, Dovecot is not asked
    if server_digest(*ask_dovecot(list(memory.seen.shared))) != memory.seen.server:
        return None
    return Standing(memory.planned_at)
