"""What a settled plan stands on, on the engine's side (providers/ad/settled.py is a target's).

A full `plan` that finds nothing to do on any target (no change, no conflict, no warning of a
target; reminders that follow from the inputs alone are kept with it, below) is remembered by
each target's provider; the next `plan` whose inputs are the same asks each
provider whether anything it reads has changed, before loading the desired state.  Only when
every target proves that nothing has does the run skip the desired state and the diff; when
they prove that only some people's objects changed, only those people are loaded and planned.
In a plan of targets of which only some can prove it, each one whose own part found nothing
is remembered on its own, and planned from its memory next time while the others are read
(engine.Run._settled).

The inputs are everything besides the targets that a plan's result depends on, as one digest:
the commit (not only its tree: review judges history), the inventory file, the reconciler's
own code and the libraries that read the YAML and the directory, the selected targets, the
institution's date (expiry and retention are judged by it), the refs that tell what was
applied and approved, and the targets' audit trails (which password resets were applied).
A plan that is not a plain full plan never uses nor leaves one: apply (it takes a lock and
writes), a pull request's plan, an incremental plan, `--full-read`, or a run that finds a
target's last run stopped before its end.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from reconciler.desired.schemacache import cache_dir, read_trusted, require_cached, write_private
from reconciler.i18n import Message
from reconciler.run import Moment

FORMAT = 1
REFS = ("refs/reconciler/applied/", "refs/notes/")  # applied commits, audit notes, approvals


@cache
def _code_digest() -> str:
    import ldap3
    import yaml

    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(f"{FORMAT}\0{sys.version}\0{ldap3.__version__}\0{yaml.__version__}".encode())
    for path in sorted([*package.rglob("*.py"), *package.rglob("*.json")]):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def inputs(repo, commit: str, prefix: str, inventory: str, targets: list[str], today: str,
           apply_key: str, trails: list[Path] = ()) -> str:
    """The digest of a plan's inputs besides the targets (see the module's docstring).
    `inventory`: the digest of the inventory's bytes the run loaded (file_digest).
    `apply_key`: its public key ("" without one): which applied refs and notes count.
    `trails`: every audit trail the run reads, whose records say which password resets were
    applied (any run that writes one changes its size)."""
    refs = repo.git.for_each_ref("--format=%(refname) %(objectname)", *REFS)
    parts = [_code_digest(), commit, prefix, inventory,
             "\0".join(targets), today, apply_key, refs, *map(_stat, trails)]
    return hashlib.sha256("\0\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def file_digest(path: Path) -> str:
    """The digest of a file's bytes, for `inputs` and `selection` ("-" when it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "-"


def _stat(path: Path) -> str:
    try:
        st = Path(path).stat()
    except OSError:
        return "-"
    return f"{path}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


# -- the engine's own memory: the warnings that stand with the settled plan -------------------
# A plan's reminders that follow from the inputs alone (a baja's line to release, equipment to
# collect, commits that landed without approval) do not stop a plan from being remembered:
# they are kept with it, as Messages, and a plan that stands on it shows them again, in the
# language of the run that shows them.  What a target said (a warning of its read) is never
# kept: a plan with one is not remembered.

@dataclass(frozen=True)
class Kept:
    """What the engine kept with a remembered plan."""
    reminders: tuple  # warnings that follow from the desired state (the engine's, not review's)
    reviewed: tuple  # review's own warnings (commits landed without approval, policy not in force)


@dataclass(frozen=True)
class Index:
    """Where a plan of some people finds them: each declared employee key's file (relative to
    desired_state/), and the groups of namesakes (naming.namesake_groups), whose account names
    are known only together: a plan of one loads the others too."""
    files: dict[str, str]
    namesakes: tuple[tuple[str, ...], ...] = ()

    def entries(self, keys) -> dict[str, frozenset] | None:
        """What to load to plan `keys` as the full plan would ({file: keys}), or None when one
        of them is not declared."""
        group_of = {k: group for group in self.namesakes for k in group}
        wanted = {k for key in keys for k in group_of.get(key, (key,))}
        if not all(k in self.files for k in wanted):
            return None
        entries: dict[str, set] = {}
        for key in wanted:
            entries.setdefault(self.files[key], set()).add(key)
        return {f: frozenset(k) for f, k in entries.items()}


def remember(selection: str, inputs: str, kept: Kept, index: Index) -> bool:
    """Keep `kept` for the plan of `inputs`, and `index` beside it (a plan of some people loads
    only their entries).  0600, atomically; False when a warning cannot be kept (then nothing
    is remembered, and the next plan is a normal one)."""
    path = _memory(selection)
    try:
        warnings = {"reminders": [_encode(w) for w in kept.reminders], "reviewed": [_encode(w) for w in kept.reviewed]}
    except TypeError:
        return False
    if path is None:
        return False
    keys = json.dumps({"format": FORMAT, "inputs": inputs, "index": index.files,
                       "namesakes": [list(g) for g in index.namesakes]}, ensure_ascii=False, separators=(",", ":"))
    text = json.dumps({"format": FORMAT, "inputs": inputs, **warnings}, ensure_ascii=False)
    return write_private(path.with_suffix(".keys.json"), keys.encode("utf-8", "surrogatepass")) \
        and write_private(path, text.encode("utf-8", "surrogatepass"))


def recall(selection: str, inputs: str) -> Kept | None:
    """What was kept with the plan of `inputs`, or None (no memory, another plan's, or one
    that cannot be read or is not the runner's own: a normal plan)."""
    raw = _read(_memory(selection), inputs)
    try:
        return Kept(*(tuple(_decode(w, top=True) for w in raw[part]) for part in ("reminders", "reviewed"))) \
            if raw is not None else None
    except Exception:  # noqa: BLE001 - a damaged memory means a normal plan, never a crash
        return None


def recall_index(selection: str, inputs: str) -> Index | None:
    """Where the plan of `inputs` found each declared person; or None."""
    path = _memory(selection)
    raw = _read(path.with_suffix(".keys.json") if path is not None else None, inputs)
    try:
        files, groups = raw["index"], raw["namesakes"]
        require_cached(isinstance(files, dict) and isinstance(groups, list))
        # Checked in C: a generator over 100,000 people took a tenth of a plan of a hundred.
        require_cached(not set(map(type, files.values())) - {str} and not set(map(type, groups)) - {list})
        require_cached(not set(map(type, (k for g in groups for k in g))) - {str})
        return Index(files, tuple(tuple(group) for group in groups))
    except Exception:  # noqa: BLE001 - none, another plan's or damaged: a normal plan
        return None


def _read(path: Path | None, inputs: str) -> dict | None:
    data = read_trusted(path) if path is not None else None
    if data is None:
        return None
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):  # damaged, or nested past any depth it writes
        return None
    return raw if isinstance(raw, dict) and raw.get("format") == FORMAT and raw.get("inputs") == inputs else None


def selection(inventory: str, targets: list[str]) -> str:
    """Which memory a run uses: one per inventory (`inventory`: the digest of the bytes the run
    loaded, file_digest) and selection of targets.  By content, not path: an inventory kept in
    the repository is read from a new temporary file on every run (proposal.approved_inventory),
    and its memory must be found again."""
    text = "\0".join([inventory, *targets])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _memory(selection: str) -> Path | None:
    base = cache_dir()
    return base.parent / "plans" / f"{selection}.json" if base is not None else None


def _encode(value):
    if isinstance(value, Moment):
        return {"moment": str.__str__(value)}
    if isinstance(value, Message):
        msgid, plural, n, args = value.__reduce__()[1]
        return {"id": msgid, "plural": plural, "n": n, "args": {k: _encode(v) for k, v in args.items()}}
    if value is None or isinstance(value, (str, int, float, bool)):
        return str(value) if isinstance(value, str) else value  # a str subclass kept as its text
    raise TypeError(type(value).__name__)  # not for people


def _decode(value, top: bool = False):
    if isinstance(value, dict) and set(value) == {"moment"}:
        return Moment(str(value["moment"]))
    if isinstance(value, dict):
        args = {str(k): _decode(v) for k, v in value["args"].items()}
        n = value["n"]
        require_cached(n is None or isinstance(n, int))
        return Message(str(value["id"]), None if value["plural"] is None else str(value["plural"]), n, args)
    require_cached(not top and (value is None or isinstance(value, (str, int, float, bool))))
    return value
