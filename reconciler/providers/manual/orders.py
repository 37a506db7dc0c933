"""Work orders, kept in the desired-state repository beside the envelopes:

    refs/reconciler/work-orders/<target>/<folio>   a commit whose tree holds
        orden.json      the order: folio, target, system, movement, person, unit, what backs it,
                        when it was issued and when it is due
        orden.md        the document the operator receives (document.py); orden.pdf, the same on paper
        confirmado.json once done: when, by whom, under which ticket of the operator's, and the
                        desired-state commit whose approved confirmation recorded it

An order is written once, by the apply that issues it, as a commit with no parent; its
confirmation, once approved (desired_state/work_orders.yaml, by pull request), is recorded by
the next apply as a second commit on top of it, holding the same files and confirmado.json.
Nothing else ever moves the ref.  Each commit is signed with the apply key (the statement
`order_statement` over the ref and its tree, in the commit message).  With an apply key
configured, a plan counts only what it signed (anyone able to push refs could otherwise forge an
open baja order and keep the real one from being issued, or a confirmation); without one, it
counts them all and says so.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from reconciler import gitobjects
from reconciler.errors import ReconcilerError, plain
from reconciler.i18n import _, lazy

REFS = "refs/reconciler/work-orders/"
ORDER, DOCUMENT, DONE = "orden.json", "orden.md", "confirmado.json"
NAMESPACE = "reconciler-work-order"  # what an apply key's signature of a work order is for
_SIGNATURE = "-----BEGIN SSH SIGNATURE-----"  # not for people


@dataclass(frozen=True)
class Order:
    """One work order, as orden.json holds it."""

    folio: str
    target: str
    system: str
    movement: str  # "alta" | "baja"
    employee_key: str
    person: str  # the person's name when it was issued
    unit: str | None
    issued: str  # when (UTC, ISO 8601 to the microsecond: the order of a person's orders)
    due: str  # the institution's date by which it is done (issued + the target's sla_days)
    solicitud: str | None = None  # the folio of the request that backs it
    commit: str | None = None  # the applied desired-state commit that declared it
    done: "Done | None" = field(default=None, compare=False)  # its confirmation, once recorded

    def to_json(self) -> bytes:
        fields = {k: v for k, v in asdict(self).items() if k != "done"}
        return json.dumps(fields, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")


@dataclass(frozen=True)
class Done:
    """An order's confirmation, as the apply that recorded it wrote confirmado.json."""

    date: str  # the day the operator did it
    by: str
    ticket: str
    commit: str | None = None  # the desired-state commit whose approved confirmation this is

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")


def order_statement(ref: str, tree: str) -> str:
    """What the apply key signs: this ref holds this tree (the order and its document)."""
    return f"reconciler work order\nref {ref}\ntree {tree}\n"  # not for people: signed bytes


def ref_name(target: str, folio: str) -> str:
    return f"{REFS}{target}/{folio}"


def new_folio(prefix: str, employee_key: str, movement: str, solicitud: str | None, taken: set[str]) -> str:
    """The folio of the order a plan proposes: the same for the same person, movement and
    request whenever it is planned (plans and the apply that follows them agree, and so do
    their fingerprints), distinct from every folio already `taken` (every ref there is, counted
    or not, and every folio a confirmation names: a folio is never issued twice)."""
    for n in range(1000):
        digest = hashlib.sha256(f"{employee_key}\0{movement}\0{solicitud or ''}\0{n}".encode("utf-8")).hexdigest()
        folio = prefix + digest[:6].upper()
        if folio not in taken:
            return folio
    raise ReconcilerError(_("no free work order folio for {key}", key=employee_key))


class Ledger:
    """The work orders of the desired-state repository `repo`; `key` is the apply key
    (audit/seal.py: its public half checks orders, its private half, where apply runs, signs
    them), or None."""

    def __init__(self, repo, key=None, commit: str | None = None):
        self.repo, self.key, self.commit = repo, key, commit

    def orders(self, target: str) -> tuple[list[Order], list[str]]:
        """The target's orders in the order they were issued (each with its confirmation, once
        recorded), and what a person should know about refs that do not count (not signed by
        the apply key, or not an order of ours).  `self.names` keeps every folio a ref takes."""
        try:
            listing = self.repo.git.for_each_ref("--format=%(refname) %(objectname) %(objecttype)",
                                                 f"{REFS}{target}/")
        except Exception as exc:  # noqa: BLE001 - git's own failure, as text
            raise ReconcilerError(_("cannot list the work orders of {target}: {error}", target=target,
                                    error=plain(str(exc)))) from None
        found, notes = [], []
        self.names = {line.split(" ")[0].rpartition("/")[2] for line in listing.splitlines() if line}
        if self.key is None and listing.strip():
            notes.append(lazy("target {target}: work orders cannot be checked: no apply key is configured "
                              "(RECONCILER_APPLY_KEY or RECONCILER_APPLY_PUBLIC_KEY)", target=target))
        for line in filter(None, listing.splitlines()):
            ref, sha, kind = (line.split(" ") + ["", ""])[:3]
            order = self._read(ref, sha) if kind == "commit" else None
            if order is None or ref != ref_name(target, order.folio) or order.target != target:
                notes.append(lazy("{ref} is not a work order of this program's: not counted", ref=ref))
            elif self.key is not None and not self._signed(ref, sha):
                notes.append(lazy("{ref} is not signed by the apply key: not counted", ref=ref))
            else:
                found.append(order)
        return sorted(found, key=lambda o: (o.issued, o.folio)), notes

    def _read(self, ref: str, sha: str) -> Order | None:
        try:
            tree = self.repo.commit(sha).tree
            data = json.loads(tree[ORDER].data_stream.read(65536))
            done = None
            if DONE in tree:
                said = json.loads(tree[DONE].data_stream.read(65536))
                done = Done(str(said["date"]), str(said["by"]), str(said["ticket"]), said.get("commit"))
            return Order(**{k: data.get(k) for k in Order.__dataclass_fields__ if k != "done"}, done=done)
        except Exception:  # noqa: BLE001 - a ref someone else made there: not an order
            return None

    def _signed(self, ref: str, sha: str) -> bool:
        commit = self.repo.commit(sha)
        message = commit.message
        if _SIGNATURE not in message:
            return False
        signature = message[message.index(_SIGNATURE):].strip()
        return self.key.valid(order_statement(ref, commit.tree.hexsha), signature, NAMESPACE)

    def issue(self, order: Order, documents: dict[str, bytes]) -> str:
        """Store the order and its document under its ref, signed, on disk before the ref moves;
        the commit.  An order already there with that folio is never replaced."""
        entries = {ORDER: gitobjects.blob(self.repo, order.to_json())}
        entries.update({name: gitobjects.blob(self.repo, data) for name, data in documents.items() if name != ORDER})
        return self._store(order, entries, None, f"reconciler work order {order.folio}")  # not for people

    def confirm(self, order: Order, done: Done) -> str:
        """Record `order`'s approved confirmation: a commit on top of the order's, holding its
        files and confirmado.json; the ref moves only from the order it was read at."""
        ref = ref_name(order.target, order.folio)
        old = gitobjects.resolve(self.repo, ref)
        if old is None or order.done is not None:
            raise ReconcilerError(_("work order {folio} is not open in the repository any more", folio=order.folio))
        entries = {b.name: b.binsha for b in self.repo.commit(old).tree.blobs if b.name != DONE}
        entries[DONE] = gitobjects.blob(self.repo, done.to_json())
        return self._store(order, entries, old, f"reconciler work order {order.folio} confirmed")  # not for people

    def _store(self, order: Order, entries: dict[str, bytes], parent: str | None, title: str) -> str:
        if self.key is not None and self.key.private is None:  # unsigned, no later plan would count it
            raise ReconcilerError(_("only the apply job issues work orders: RECONCILER_APPLY_KEY is not set"))
        ref = ref_name(order.target, order.folio)
        tree = gitobjects.tree(self.repo, entries)
        message = f"{title}\n\ntarget {order.target}\n"  # not for people
        if self.key is not None:
            message += "\n" + self.key.sign(order_statement(ref, tree), NAMESPACE)
        commit = gitobjects.orphan_commit(self.repo, tree, message, parent)
        gitobjects.durable(self.repo, [b.hex() for b in entries.values()] + [tree, commit])
        done = self.repo.git.execute(["git", "-c", "core.fsync=reference", "-c", "core.fsyncMethod=fsync",
                                      "update-ref", ref, commit, parent or "0" * 40],
                                     with_exceptions=False, with_extended_output=True)
        if done[0] != 0:  # another run moved it, or a ref someone pushed stands there
            raise ReconcilerError(_("cannot record work order {folio}: {ref} is already there, or moved meanwhile "
                                    "({error})", folio=order.folio, ref=ref,
                                    error=plain(done[2].strip().splitlines()[-1] if done[2].strip() else done[0])))
        gitobjects.durable_ref(self.repo, ref)
        return commit

    def vanished(self, recorded: list[dict]) -> list[str]:
        """What became of the refs the sealed audit records say apply stored: each must still
        be there, at the commit recorded or at the confirmation recorded on top of it.  A ref
        deleted or moved by someone with push rights is said here (a plan alone would only
        issue the order again)."""
        listing = self.repo.git.for_each_ref("--format=%(objectname) %(refname)", REFS)
        refs = {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in listing.splitlines() if line.strip()}
        out = []
        for record in recorded:
            ref, commit = record["evidence"].get("ref"), record["evidence"].get("commit")
            sha = refs.get(ref)
            if sha is None:
                out.append(lazy("{ref} is gone: apply stored it (audit record seq {seq} of {target}); someone deleted "
                                "the ref", ref=ref, seq=record.get("seq"), target=record.get("target")))
            elif sha != commit and not self._confirmed_on(ref, sha, commit):
                out.append(lazy("{ref} was moved: apply stored {commit} there (audit record seq {seq} of {target})",
                                ref=ref, commit=str(commit)[:12], seq=record.get("seq"), target=record.get("target")))
        return out

    def _confirmed_on(self, ref: str, sha: str, commit: str) -> bool:
        """Is `sha` the confirmation apply records on top of the order `commit`: a commit whose
        parent it is, holding confirmado.json, signed by the apply key (when one is configured)?"""
        if self.repo.git.cat_file("-t", sha, with_exceptions=False) != "commit":
            return False
        top = self.repo.commit(sha)
        if [p.hexsha for p in top.parents] != [commit] or DONE not in top.tree:
            return False
        return self.key is None or self._signed(ref, sha)

    def document(self, target: str, folio: str) -> str | None:
        """The document of an order, as it was sent; None for no such order, or one the apply
        key did not sign (when a key is configured)."""
        ref = ref_name(target, folio)
        try:
            sha = self.repo.git.rev_parse("--verify", "-q", ref)
            if self.key is not None and not self._signed(ref, sha):
                return None
            return self.repo.commit(sha).tree[DOCUMENT].data_stream.read().decode("utf-8")
        except Exception:  # noqa: BLE001 - no such order
            return None
