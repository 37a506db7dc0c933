"""Sealed envelopes: each secret an apply makes, encrypted with age the moment it is made.

The clear secret exists only in the apply's memory.  It is sealed to the recipients the
approved inventory declares for the person's unit (config/delivery.py) and stored in the
desired-state repository itself, where the recipient fetches it without access to the runner:

    refs/reconciler/envelopes/<employee key>/<folio>   a commit whose tree holds
        <target>.<account>.age    one secret, ASCII-armoured age (`age -d -i KEY` opens it)
        carta.pdf                 the carta responsiva: what is handed over, never a secret

One envelope per person and request (folio); a second secret for the same request (the SIP
secret of their extension, after the account's password) is a new commit on the same ref.
The pipeline pushes these refs with the audit notes.  Each file's creation and removal is an
audit record of the target that made it (never its content), written before the object the
secret belongs to is created: a run killed in between leaves an envelope whose object the
next run finds, or one it can say was never used.

An envelope is removed once the person's acknowledgement (`acuse:` with that folio) is on the
applied commit, or when it is older than `delivery.envelope_days`.
"""
from __future__ import annotations

import datetime as dt
import re
from urllib.parse import unquote
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from reconciler.config.delivery import Delivery
from reconciler.errors import ReconcilerError
from reconciler.i18n import _

REFS = "refs/reconciler/envelopes/"
CARTA = "carta.pdf"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def ref_name(holder: str, folio: str) -> str:
    """refs/reconciler/envelopes/SSM-000007/SSM%2FSTI%2F2025%2F00007: every byte that a ref name
    cannot hold, or that could climb out of the namespace (`/`, `..`), percent-encoded."""
    return REFS + _component(holder or "-") + "/" + _component(folio or "-")


def _component(text: str) -> str:
    encoded = "".join(c if not _SAFE.match(c) else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in text)
    return encoded.replace("..", "%2E%2E").removesuffix(".lock").lstrip(".") or "-"


def file_name(target: str, account: str) -> str:
    return f"{_component(target)}.{_component(account)}.age"


@dataclass(frozen=True)
class Sealed:
    """What an audit record says of an envelope file: where it is, never what it holds."""

    ref: str
    commit: str
    file: str
    recipients: tuple[str, ...]


class Envelopes:
    """The `record` a provider calls for each secret it makes (the same call as the clear-text
    CredentialFile's), for one target in one run."""

    def __init__(self, repo, target: str, run_id: str, delivery: Delivery, unit_of: Callable[[str], str | None],
                 letter: Callable[..., str], carta: Callable[[str, str], bytes | None],
                 announce: Callable[[dict], None]):
        """`unit_of(employee key)`; `letter(folio, …)` the text around the secret; `carta(holder,
        folio)` the PDF; `announce(record fields)` writes the audit record before the secret is used."""
        self.repo, self.target, self.run_id, self.delivery = repo, target, run_id, delivery
        self.unit_of, self.letter, self.carta, self.announce = unit_of, letter, carta, announce
        self.count = 0
        self.refs: list[str] = []

    def record(self, account: str, upn: str, employee_key: str, folio: str | None, password: str) -> None:
        recipients = self.delivery.for_unit(self.unit_of(employee_key))
        if not recipients:  # the run refuses to start without them (engine); never sealed to nobody
            raise ReconcilerError(_("no recipient to seal the secret of {account} to: declare delivery.recipients "
                                    "in the inventory", account=account))
        import pyrage

        text = self.letter(account=account, upn=upn, employee_key=employee_key, folio=folio or "", secret=password)
        sealed = pyrage.encrypt(text.encode("utf-8"), [r.sealer() for r in recipients], armored=True)
        del text, password
        holder, folio = employee_key or account, folio or ""
        name = file_name(self.target, account)
        commit = self._store(ref_name(holder, folio), {name: sealed}, folio, holder)
        self.announce({"key": account, "employee_key": employee_key, "folio": folio, "envelope": ref_name(holder, folio),
                       "envelope_commit": commit, "envelope_file": name,
                       "recipients": [r.name for r in recipients]})
        self.count += 1

    def close(self) -> None:
        """Nothing is held open: each secret is in Git, sealed, once `record` returns."""

    def _store(self, ref: str, files: dict[str, bytes], folio: str, holder: str) -> str:
        """A commit on `ref` with `files` added to what it holds, and a fresh carta."""
        old = _resolve(self.repo, ref)
        entries = dict(_tree_entries(self.repo, old)) if old else {}
        for name, data in files.items():
            entries[name] = _blob(self.repo, data)
        carta = self.carta(holder, folio)
        if carta is not None:
            entries[CARTA] = _blob(self.repo, carta)
        tree = _tree(self.repo, entries)
        message = f"reconciler envelope {folio}\n\nholder {holder}\ntarget {self.target}\nrun {self.run_id}\n"  # not for people
        commit = _commit(self.repo, tree, [old] if old else [], message)
        self.repo.git.update_ref(ref, commit, old or "0" * 40)  # fails when another run moved it meanwhile
        self.refs.append(ref)
        return commit


# -- Git objects, written through gitpython's object database (no process per object) -------

def _resolve(repo, ref: str) -> str | None:
    try:
        return repo.git.rev_parse("--verify", "-q", ref + "^{commit}")
    except Exception:
        return None


def _blob(repo, data: bytes) -> bytes:
    from gitdb import IStream

    return repo.odb.store(IStream(b"blob", len(data), BytesIO(data))).binsha


def _tree_entries(repo, commit: str) -> list[tuple[str, bytes]]:
    tree = repo.commit(commit).tree
    return [(b.name, b.binsha) for b in tree.blobs]


def _tree(repo, entries: dict[str, bytes]) -> str:
    from gitdb import IStream

    body = b"".join(b"100644 " + name.encode("utf-8") + b"\0" + sha for name, sha in sorted(entries.items()))
    return repo.odb.store(IStream(b"tree", len(body), BytesIO(body))).hexsha.decode("ascii")


def _commit(repo, tree: str, parents: list[str], message: str) -> str:
    from gitdb import IStream

    stamp = f"reconciler <reconciler@localhost> {int(dt.datetime.now(dt.timezone.utc).timestamp())} +0000"
    lines = [f"tree {tree}", *(f"parent {p}" for p in parents), f"author {stamp}", f"committer {stamp}", "", message]
    body = "\n".join(lines).encode("utf-8")
    return repo.odb.store(IStream(b"commit", len(body), BytesIO(body))).hexsha.decode("ascii")


# -- what is there, and what goes -------------------------------------------------------------

@dataclass(frozen=True)
class Envelope:
    ref: str
    commit: str
    holder: str
    folio: str
    made: dt.datetime  # when its first file was sealed
    files: tuple[str, ...]  # the sealed files it holds (not the carta)


def envelopes(repo) -> list[Envelope]:
    """Every envelope in the repository."""
    try:
        listing = repo.git.for_each_ref("--format=%(refname) %(objectname)", REFS)
    except Exception:
        return []
    found = []
    for line in filter(None, listing.splitlines()):
        ref, commit = line.split(" ", 1)
        parts = ref[len(REFS):].split("/")
        if len(parts) != 2:
            continue  # not a name this program gives: left alone
        try:
            first = repo.git.rev_list("--max-parents=0", commit).split()[0]
            made = dt.datetime.fromtimestamp(repo.commit(first).committed_date, dt.timezone.utc)
            files = tuple(name for name, _ in _tree_entries(repo, commit) if name.endswith(".age"))
        except Exception:
            continue  # not an envelope this program made: left alone
        # Who and which request, from the ref's own name (commit messages are for people reading Git).
        found.append(Envelope(ref, commit, unquote(parts[0]), unquote(parts[1]), made, files))
    return found


def remove_files(repo, envelope: Envelope, names: set[str], why: str) -> str | None:
    """Take `names` out of the envelope: a new commit without them, or the ref deleted when no
    sealed file is left.  Returns the new commit, or None when the ref was deleted."""
    entries = {n: sha for n, sha in _tree_entries(repo, envelope.commit) if n not in names}
    if not any(n.endswith(".age") for n in entries):
        repo.git.update_ref("-d", envelope.ref, envelope.commit)
        return None
    tree = _tree(repo, entries)
    commit = _commit(repo, tree, [envelope.commit],
                     f"reconciler envelope {envelope.folio}\n\nholder {envelope.holder}\nremoved {why}\n")  # not for people
    repo.git.update_ref(envelope.ref, commit, envelope.commit)
    return commit


@dataclass(frozen=True)
class Removal:
    """Files a target takes out of an envelope, and why: `acknowledged` (the person's acuse of
    that folio is on the applied commit) or `expired` (older than delivery.envelope_days)."""

    envelope: Envelope
    files: frozenset[str]
    reason: str
    acuse_sha256: str | None = None


def due(found: list[Envelope], target: str, acuse_of: Callable, now: dt.datetime, days: int) -> list[Removal]:
    """The removals `target` owes: its own files (`<target>.…`) of envelopes acknowledged or
    older than `days`.  `acuse_of(holder)` is the holder's Acuse or None (a holder this run did
    not load is never judged acknowledged: expiry still applies).  Pure: tested by examples."""
    prefix = _component(target) + "."
    out = []
    for envelope in found:
        mine = frozenset(f for f in envelope.files if f.startswith(prefix))
        if not mine:
            continue
        acuse = acuse_of(envelope.holder)
        if acuse is not None and acuse.folio == envelope.folio:
            out.append(Removal(envelope, mine, "acknowledged", acuse.sha256))
        elif now - envelope.made > dt.timedelta(days=days):
            out.append(Removal(envelope, mine, "expired"))
    return out
