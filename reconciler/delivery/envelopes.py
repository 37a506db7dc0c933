"""Sealed envelopes: each secret an apply makes, encrypted with age the moment it is made.

The clear secret exists only in the apply's memory.  It is sealed to the recipients the
approved inventory declares for the unit (config/delivery.py) and stored in the desired-state
repository itself, where the recipient fetches it without access to the runner:

    refs/reconciler/envelopes/<holder>/<digest of holder and folio>   a commit whose tree holds
        envelope.json             {"holder": employee key, "folio": the request's folio}
        <target>.<account>.age    one secret, ASCII-armoured age (`age -d -i KEY` opens it)
        carta.pdf                 the carta responsiva: what is handed over, never a secret

The name is a digest, so every holder and folio (any text a YAML file may hold) gives a valid,
distinct ref; the holder in front is there for people listing refs (`x` when it is not a plain
key).  One envelope per person and request; a second secret of the same request (the SIP
secret of their extension, after the account's password) is added to it.  Each commit stands
alone, with no parent: what an envelope no longer holds (a secret taken back, a secret
replaced) is not reachable from it, and a key that leaks later opens only what is still there.
An envelope emptied is kept as a commit holding envelope.json only, so the pipeline pushes
updates and never deletions.

Each file's creation and removal is an audit record of the target that made it (never its
content).  The record is written once the commit exists and before the ref points at it, and
both before the object the secret belongs to is created: a run killed in between leaves a
record the next run sees, never an envelope nobody recorded.

An envelope is taken back once the person's acknowledgement (`acuse:` with that folio) is on
the applied commit, or when it is older than `delivery.envelope_days` (see `due`).  Envelopes
are signed with the apply key (the statement `envelope_statement` over the ref and its tree, in
the commit message) and `credentials open` shows only those it verifies; the forge should still
let only the apply job write refs/reconciler/*.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from reconciler import gitobjects
from reconciler.config.delivery import Delivery
from reconciler.errors import ReconcilerError, plain
from reconciler.i18n import _

REFS = "refs/reconciler/envelopes/"
CARTA = "carta.pdf"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # an employee key or a line's number, as they are
ABOUT = "envelope.json"
NAMESPACE = "reconciler-envelope"  # what an apply key's signature of an envelope is for
_SIGNATURE = "-----BEGIN SSH SIGNATURE-----"  # not for people


def envelope_statement(ref: str, tree: str) -> str:
    """What the apply key signs: this ref holds this tree (the files, envelope.json included)."""
    return f"reconciler envelope\nref {ref}\ntree {tree}\n"  # not for people: signed bytes


def _signed(message: str, key, ref: str, tree: str) -> str:
    if key is None or getattr(key, "private", None) is None:
        return message
    return message + "\n" + key.sign(envelope_statement(ref, tree), NAMESPACE)


def ref_name(holder: str, folio: str) -> str:
    digest = hashlib.sha256(f"{holder}\0{folio}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return REFS + (holder if _PLAIN.fullmatch(holder or "") else "x") + "/" + digest


def _component(text: str) -> str:
    """A file-name part: characters a tree entry cannot hold percent-encoded, at most 100."""
    encoded = "".join(c if not _SAFE.match(c) else "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in text)
    return (encoded.replace("..", "%2E%2E").lstrip(".") or "-")[:100]


def file_name(target: str, account: str) -> str:
    return f"{_component(target)}.{_component(account)}.age"


class Envelopes:
    """The `record` a provider calls for each secret it makes (the same call as the clear-text
    CredentialFile's), for one target in one run."""

    def __init__(self, repo, target: str, run_id: str, delivery: Delivery, unit_of: Callable[[str, str], str | None],
                 letter: Callable[..., str], carta: Callable[[str, str], bytes | None],
                 announce: Callable[[dict], None], key=None,
                 requester: Callable[[str, str], object] = lambda employee_key, folio: None):
        """`unit_of(employee key, account)`: the unit whose recipients receive it; `letter(…)`: the
        text around the secret; `carta(holder, folio)`: the PDF; `announce(record fields)`: writes
        the audit record before the secret is used; `requester(employee key, folio)`: who also
        receives it, or None."""
        self.repo, self.target, self.run_id, self.delivery = repo, target, run_id, delivery
        self.unit_of, self.letter, self.carta, self.announce = unit_of, letter, carta, announce
        self.key = key  # the apply key (audit/seal.py), which signs each envelope; None: unsigned
        self._written: list[str] = []  # the objects of the envelope being made, synced before the ref moves
        self.requester = requester  # (employee key, folio) -> the requester who also receives it, or None
        self.count = 0

    def record(self, account: str, upn: str, employee_key: str, folio: str | None, password: str) -> None:
        """Seal `password` and store it; raises ReconcilerError (before the secret is used) when
        it cannot: the provider then fails that change and creates nothing."""
        recipients = self.delivery.for_unit(self.unit_of(employee_key, account))
        also = self.requester(employee_key, folio or "")
        if also is not None and also.key not in {r.key for r in recipients}:
            recipients = recipients + (also,)
        if not recipients:  # the run refuses to start without them (engine); never sealed to nobody
            raise ReconcilerError(_("no recipient to seal the secret of {account} to: declare delivery.recipients "
                                    "in the inventory", account=account))
        import pyrage

        holder, folio = employee_key or account, folio or ""
        self._written = []
        try:
            text = self.letter(account=account, upn=upn, employee_key=employee_key, folio=folio, secret=password)
            sealed = pyrage.encrypt(text.encode("utf-8"), [r.sealer() for r in recipients], armored=True)
            del text, password
            name = file_name(self.target, account)
            ref = ref_name(holder, folio)
            old, commit = self._prepare(ref, {name: sealed}, folio, holder)
            self.announce({"key": account, "employee_key": employee_key, "folio": folio, "envelope": ref,
                           "envelope_commit": commit, "envelope_file": name,
                           "recipients": [r.name for r in recipients],
                           "recipient_keys": [r.fingerprint() for r in recipients]})
            gitobjects.durable(self.repo, self._written)
            # Refused when another run moved it meanwhile; on disk (fsync) before the secret is used.
            self.repo.git.execute(["git", "-c", "core.fsync=reference", "-c", "core.fsyncMethod=fsync", "update-ref",
                                   ref, commit, old or "0" * 40])
            gitobjects.durable_ref(self.repo, ref)
            self._written = []
        except ReconcilerError:
            raise
        except Exception as exc:  # pyrage, Git, the carta's fonts, a full disk: the change fails, nothing is made
            raise ReconcilerError(_("cannot seal the secret of {account}: {error}", account=account,
                                    error=plain(str(exc)))) from None
        self.count += 1

    def close(self) -> None:
        """Nothing is held open: each secret is in Git, sealed, once `record` returns."""

    def _prepare(self, ref: str, files: dict[str, bytes], folio: str, holder: str) -> tuple[str | None, str]:
        """(the ref's commit now, a new commit holding what it held of this envelope, `files` and a
        fresh carta), written but not yet pointed at.  A ref whose envelope.json names another
        holder or folio (a commit someone else made there) is not built on."""
        old = gitobjects.resolve(self.repo, ref)
        entries, made = _own_entries(self.repo, old, holder, folio) if old else ({}, None)
        entries.update({name: self._track(gitobjects.blob(self.repo, data)) for name, data in files.items()})
        now = int(dt.datetime.now(dt.timezone.utc).timestamp())
        entries[ABOUT] = self._track(gitobjects.blob(self.repo, _about(holder, folio, made or now)))
        carta = self.carta(holder, folio)
        if carta is not None:
            entries[CARTA] = self._track(gitobjects.blob(self.repo, carta))
        tree = gitobjects.tree(self.repo, entries)
        message = f"reconciler envelope\n\ntarget {self.target}\nrun {self.run_id}\n"  # not for people
        commit = gitobjects.orphan_commit(self.repo, tree, _signed(message, self.key, ref, tree))
        self._written += [tree, commit]
        return old, commit

    def _track(self, binsha: bytes) -> bytes:
        self._written.append(binsha.hex())
        return binsha


def _about(holder: str, folio: str, made: int) -> bytes:
    """envelope.json: whose, which request, and when its first secret was sealed (unix time:
    the age the delivery limit counts, which a later secret of the same request does not reset)."""
    return json.dumps({"holder": holder, "folio": folio, "made": made}, ensure_ascii=False,
                      sort_keys=True).encode("utf-8")


def _own_entries(repo, commit: str, holder: str, folio: str) -> tuple[dict[str, bytes], int | None]:
    """What the envelope at `commit` holds, and when it was first sealed, if its envelope.json
    is this holder's and folio's; nothing otherwise."""
    try:
        tree = repo.commit(commit).tree
        about = json.loads(tree[ABOUT].data_stream.read(4096))
        if (about.get("holder"), about.get("folio")) != (holder, folio):
            return {}, None
        return {b.name: b.binsha for b in tree.blobs}, int(about["made"])
    except Exception:  # a ref pointing at a blob, a tree without envelope.json: nothing of ours
        return {}, None


# -- what is there, and what goes -------------------------------------------------------------

@dataclass(frozen=True)
class Envelope:
    ref: str
    commit: str
    holder: str
    folio: str
    made: dt.datetime  # when its first file was sealed
    files: tuple[str, ...]  # the sealed files it holds (not the carta)
    tree: str = ""
    signature: str | None = None

    def signed_by(self, key) -> bool:
        """Whether the apply key `key` signed this envelope as it is."""
        return bool(self.signature) and key.valid(envelope_statement(self.ref, self.tree), self.signature, NAMESPACE)


def envelopes(repo) -> list[Envelope]:
    """Every envelope in the repository that still holds a secret, as its envelope.json says
    (a ref that is not one, or is empty, is left out)."""
    try:
        listing = repo.git.for_each_ref("--format=%(refname) %(objectname) %(objecttype) %(creatordate:unix)", REFS)
    except Exception:
        return []
    found = []
    for line in filter(None, listing.splitlines()):
        ref, commit, kind, stamp = (line.split(" ") + ["", "", ""])[:4]
        if kind != "commit":
            continue
        try:
            tree = repo.commit(commit).tree
            about = json.loads(tree[ABOUT].data_stream.read(4096))
            holder, folio = str(about["holder"]), str(about["folio"])
            files = tuple(sorted(b.name for b in tree.blobs if b.name.endswith(".age")))
            made = dt.datetime.fromtimestamp(int(about.get("made") or stamp), dt.timezone.utc)
        except Exception:
            continue  # not an envelope this program made: left alone
        if files and ref == ref_name(holder, folio):
            message = repo.commit(commit).message
            signature = message[message.index(_SIGNATURE):].strip() if _SIGNATURE in message else None
            found.append(Envelope(ref, commit, holder, folio, made, files, tree.hexsha, signature))
    return found


def remove_files(repo, envelope: Envelope, names: set[str], why: str, key=None) -> str:
    """Take `names` out of the envelope: a new commit without them (and without a parent: they
    are no longer reachable from it).  With no sealed file left it holds envelope.json only."""
    entries = {n: sha for n, sha in gitobjects.tree_entries(repo, envelope.commit) if n not in names}
    if not any(n.endswith(".age") for n in entries):
        entries = {n: sha for n, sha in entries.items() if n == ABOUT}
    tree = gitobjects.tree(repo, entries)
    commit = gitobjects.orphan_commit(repo, tree, _signed(f"reconciler envelope\n\nremoved {why}\n", key, envelope.ref, tree))  # not for people
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
