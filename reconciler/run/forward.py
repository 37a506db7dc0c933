"""Only forward, only from the protected branch.

An apply takes a commit on the protected branch's first-parent line (what landed there, one
merge or squash at a time), never a commit of a branch under review, a commit inside a merged
branch, or an older commit of the branch: replaying an old commit would bring back access
revoked since.  Going back is a new, approved pull request.
"""
from __future__ import annotations

from reconciler.desired.source import DesiredSource, branch_commit
from reconciler.errors import ReconcilerError
from reconciler.i18n import _


class NotForward(ReconcilerError):
    """The commit to apply is not on the protected branch, or is behind what was applied."""


def protected_tip(source: DesiredSource, branch: str) -> str:
    """The protected branch's commit: the local branch, or the remote's (a CI checkout)."""
    sha = branch_commit(source.repo, branch) or branch_commit(source.repo, f"origin/{branch}")
    if sha:
        return sha
    raise NotForward(_("refusing to apply: the repository has no branch {branch!r} (nor origin/{branch}), the "
                       "protected branch whose commits are applied; nothing was changed", branch=branch))


def check_forward(source: DesiredSource, branch: str, applied: dict[str, list[str]]) -> None:
    """Refuse unless the source commit landed on `branch` and is at or after every target's
    applied commits (`applied`: target -> the commits known applied there, maybe none)."""
    sha = source.sha
    tip = protected_tip(source, branch)
    landed = source.repo.git.rev_list("--first-parent", tip).split()
    if sha not in landed:
        raise NotForward(_("refusing to apply commit {commit}: it is not on the first-parent line of {branch} "
                           "(at {tip}). Only what landed on the protected branch is applied, never a branch "
                           "under review or a commit inside a merged one; nothing was changed.",
                           commit=sha[:12], branch=branch, tip=tip[:12]))
    for target, known in applied.items():
        for done in known:
            _not_behind(source, sha, target, done)


def _not_behind(source: DesiredSource, sha: str, target: str, done: str) -> None:
    try:
        source.repo.commit(done)
    except Exception:  # a commit this clone does not have: it cannot be ordered, so refuse
        raise NotForward(_("refusing to apply commit {commit} to {target}: {applied}, applied there before "
                           "(this runner's audit trail says so), is not in this repository: its history was "
                           "rewritten, or the trail is another repository's. If the repository was recreated on "
                           "purpose, move the target's audit trail aside; nothing was changed.",
                           commit=sha[:12], target=target, applied=done[:12])) from None
    if done != sha and not source.repo.is_ancestor(done, sha):
        raise NotForward(_("refusing to apply commit {commit} to {target}: it is behind {applied}, already "
                           "applied there, and would bring back what was changed since. Going back is a new "
                           "approved pull request; nothing was changed.",
                           commit=sha[:12], target=target, applied=done[:12]))
