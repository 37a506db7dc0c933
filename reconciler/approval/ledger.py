"""Which signed approvals cover which commits of the protected branch.

The protected branch is read as its first-parent line: each commit on it is one landing (a
merge commit, a squash, each commit of a fast-forward or rebase merge, or a direct push).  A
signed statement for (base B, head H) covers a stretch of that line that starts right after B:

  - when the commit right after B is a merge commit M: M alone, if its parents are exactly
    B and H and its tree is H's, or the clean merge of B and H (`git merge-tree`): what M
    brings is H's reviewed change and nothing else;
  - otherwise (a squash, or a one-commit branch fast-forwarded or rebased): that commit
    alone, if its tree is H's tree: the change from B is exactly what was reviewed.  A
    fast-forward or rebase of several commits is not covered: blame credits each line to one
    of them, and a line one drops and the next puts back would pass as reviewed;
  - the merge bot's attestation names Y itself (the commit its merge made), under the same
    tests.

Because the stretch is the one commit right after B, which has one successor on the line, a
statement covers it once, where it was made: replaying it later (after the access was
revoked), or signing onto an old base to be judged by old rules, covers nothing.  Its change
is the reviewed one, so every line it wrote was in the reviewed difference (for a merge
commit, blame --first-parent credits it only with what differs from B).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from reconciler.approval.signatures import Signed, read_notes


class Line:
    """The first-parent line of the protected branch up to a commit: order, trees, parents."""

    def __init__(self, repo, tip: str):
        self.repo = repo
        rows = [r.split() for r in repo.git.log("--first-parent", "--format=%H %T %P", tip).splitlines()]
        rows.reverse()  # oldest first: a later landing has a larger position
        self.order = [r[0] for r in rows]
        self.position = {sha: i for i, sha in enumerate(self.order)}
        self.tree = {r[0]: r[1] for r in rows}
        self.parents = {r[0]: tuple(r[2:]) for r in rows}

    def __contains__(self, sha: str) -> bool:
        return sha in self.position


@dataclass(frozen=True)
class Stretch:
    """A run of landings (first, last] on the line, positions, with the statements covering it."""

    base: str
    last: str
    head: str
    first_position: int  # of the first commit covered (base's position + 1, or a merge's)
    last_position: int


class Ledger:
    """The approvals in refs/notes/reconciler-approvals placed on one line.  Signatures are not
    checked here: which keys count depends on the policy in force at each stretch's base."""

    def __init__(self, repo, line: Line):
        self.repo, self.line = repo, line
        self._clean: dict[tuple[str, str], str | None] = {}

    @cached_property
    def notes(self) -> dict[str, list[Signed | str]]:
        return read_notes(self.repo)

    @cached_property
    def stretches(self) -> dict[Stretch, list[Signed]]:
        found: dict[Stretch, list[Signed]] = {}
        for base, entries in self.notes.items():
            if base not in self.line:
                continue
            for signed in entries:
                if isinstance(signed, Signed) and signed.statement.base == base:
                    stretch = self._stretch(signed)
                    if stretch is not None:
                        found.setdefault(stretch, []).append(signed)
        return found

    def unreadable(self, base: str) -> list[str]:
        return [e for e in self.notes.get(base, ()) if isinstance(e, str)]

    @cached_property
    def _by_position(self) -> dict[int, list[Stretch]]:
        found: dict[int, list[Stretch]] = {}
        for stretch in self.stretches:
            for position in range(stretch.first_position, stretch.last_position + 1):
                found.setdefault(position, []).append(stretch)
        return found

    def covering(self, landed: str) -> dict[Stretch, list[Signed]]:
        """The stretches, with their statements, that contain the landing `landed`."""
        position = self.line.position.get(landed)
        return {s: self.stretches[s] for s in self._by_position.get(position, ())} if position is not None else {}

    def _stretch(self, signed: Signed) -> Stretch | None:
        """The stretch a statement covers, starting right after its base (B has one successor
        on the line: a statement is used once, never far from where it was made), or None."""
        st, line = signed.statement, self.line
        first = line.position[st.base] + 1
        if first >= len(line.order):
            return None  # not landed yet
        successor = line.order[first]
        parents = line.parents[successor]
        if len(parents) > 1:  # a merge commit: it covers itself, if it merges exactly the head onto B
            if parents[:2] == (st.base, st.head) and (st.kind == "approval" or st.landed == successor) and \
                    (line.tree[successor] == st.tree or self._clean_merge(st.base, st.head) == line.tree[successor]):
                return Stretch(st.base, successor, st.head, first, first)
            return None
        # A squash (or a one-commit branch fast-forwarded or rebased): that one commit, with the
        # head's tree.  Never several commits: blame credits each line to one of them, and a
        # line dropped by one and put back by the next would pass as reviewed when it was not
        # in the reviewed difference at all (a grant pushed before, laundered).
        if (st.kind == "attestation" and st.landed != successor) or line.tree[successor] != st.tree:
            return None
        return Stretch(st.base, successor, st.head, first, first)

    def _clean_merge(self, ours: str, theirs: str) -> str | None:
        """The tree of a clean merge of the two commits, or None (a conflict, or a head this
        clone does not have)."""
        if (ours, theirs) not in self._clean:
            try:
                out = self.repo.git.merge_tree("--write-tree", ours, theirs)
                self._clean[ours, theirs] = out.split()[0]
            except Exception:  # exit 1: conflicts; 128: unknown commit
                self._clean[ours, theirs] = None
        return self._clean[ours, theirs]

