"""What a settled plan stands on, on the engine's side (providers/ad/settled.py is a target's).

A full `plan` that finds nothing to do on any target (no change, no conflict, no warning) is
remembered by each target's provider; the next `plan` whose inputs are the same asks each
provider whether anything it reads has changed, before loading the desired state.  Only when
every target proves that nothing has does the run skip the desired state and the diff.

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
import sys
from functools import cache
from pathlib import Path

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


def inputs(repo, commit: str, prefix: str, inventory: Path, targets: list[str], today: str,
           apply_key: str, trails: list[Path] = ()) -> str:
    """The digest of a plan's inputs besides the targets (see the module's docstring).
    `apply_key`: its public key ("" without one): which applied refs and notes count.
    `trails`: every audit trail the run reads, whose records say which password resets were
    applied (any run that writes one changes its size)."""
    refs = repo.git.for_each_ref("--format=%(refname) %(objectname)", *REFS)
    parts = [_code_digest(), commit, prefix, hashlib.sha256(Path(inventory).read_bytes()).hexdigest(),
             "\0".join(targets), today, apply_key, refs, *map(_stat, trails)]
    return hashlib.sha256("\0\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _stat(path: Path) -> str:
    try:
        st = Path(path).stat()
    except OSError:
        return "-"
    return f"{path}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
