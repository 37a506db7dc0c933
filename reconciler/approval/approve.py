"""Making approvals: an approver's signature over a pull request (`reconciler approve`).

The approver signs the pull request's head commit and the protected branch's commit it goes
onto: what `git diff BASE HEAD` shows is what they approve, and nothing else (ledger.py).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from reconciler.approval.signatures import Signed, Statement, attach, sign


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def authors(repo, base: str, head: str) -> tuple[str, ...]:
    """The authors' emails of the commits `head` brings onto `base`: the requesters."""
    out = repo.git.log("--no-merges", "--format=%ae", f"{base}..{head}")
    return tuple(sorted({e for e in out.split() if e}))


def approval_statement(repo, base: str, head: str, signer: str, fingerprint: str = "") -> Statement:
    base_sha, head_commit = repo.commit(base).hexsha, repo.commit(head)
    return Statement("approval", signer, base_sha, head_commit.hexsha, head_commit.tree.hexsha, now(),
                     requesters=authors(repo, base_sha, head_commit.hexsha), fingerprint=fingerprint)


def approve(repo, base: str, head: str, signer: str, key: str | Path, fingerprint: str = "") -> Signed:
    """Sign (base, head) as `signer` with `key` and attach it to the base's approvals note."""
    signed = sign(approval_statement(repo, base, head, signer, fingerprint), key)
    attach(repo, signed)
    return signed
