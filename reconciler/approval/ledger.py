"""Which signed approvals cover which commits of the protected branch.

The protected branch is read as its first-parent line: each commit on it is one landing (a
merge commit, a squash, each commit of a fast-forward or rebase merge, or a direct push).  A
signed statement for (base B, head H) covers a stretch of that line that starts right after B:

  - an approver's statement covers (B, Y], Y being the first commit after B whose tree is
    H's tree: the branch's net change from B is exactly what was reviewed, however it landed
    (squash, fast-forward, rebase, or a merge of an up-to-date branch); or, when H was merged
    with a merge commit M onto a newer tip, just M, if M's tree is the clean merge of its
    first parent and H (`git merge-tree`): what M brings is H's reviewed change and nothing else;
  - the merge bot's attestation names Y itself (the commit its merge made) and covers (B, Y],
    under the same test of Y's tree.

Because the stretch starts at B, which has one successor on the line, a statement covers one
stretch once: replaying it later (after the access was revoked) covers nothing.  A stretch's
net change is the reviewed one, so every line a commit inside it wrote and that is still there
was in the reviewed difference.
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

    @cached_property
    def _by_tree(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for i, sha in enumerate(self.order):
            found.setdefault(self.tree[sha], []).append(i)
        return found

    @cached_property
    def _merged(self) -> dict[str, list[int]]:
        """Second (and further) parents of the line's merge commits -> the merges' positions."""
        found: dict[str, list[int]] = {}
        for i, sha in enumerate(self.order):
            for p in self.parents[sha][1:]:
                found.setdefault(p, []).append(i)
        return found

    def first_with_tree(self, tree: str, after: int) -> int | None:
        return next((i for i in self._by_tree.get(tree, ()) if i > after), None)

    def merges_of(self, head: str) -> list[int]:
        return self._merged.get(head, [])


@dataclass(frozen=True)
class Stretch:
    """A run of landings (first, last] on the line, positions, with the statements covering it."""

    base: str
    last: str
    head: str
    first_position: int  # of the first commit covered (base's position + 1, or a merge's)
    last_position: int

    def covers(self, position: int) -> bool:
        return self.first_position <= position <= self.last_position


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
        st, line = signed.statement, self.line
        start = line.position[st.base]
        if st.kind == "attestation":
            end = line.position.get(st.landed)
            if end is None or end <= start or not self._lands(st.landed, st.base, st.head, st.tree):
                return None
            return Stretch(st.base, st.landed, st.head, start + 1, end)
        for merge in line.merges_of(st.head):  # merged with a merge commit onto a newer tip
            sha = line.order[merge]
            if merge > start and self._clean_merge(line.parents[sha][0], st.head) == line.tree[sha]:
                return Stretch(line.parents[sha][0], sha, st.head, merge, merge)
        end = line.first_with_tree(st.tree, start)
        return Stretch(st.base, line.order[end], st.head, start + 1, end) if end is not None else None

    def _lands(self, landed: str, base: str, head: str, tree: str) -> bool:
        """Did the merge that made `landed` bring exactly `head`'s reviewed tree?"""
        if self.line.tree[landed] == tree:
            return True
        parents = self.line.parents[landed]
        return len(parents) == 2 and parents[1] == head and self._clean_merge(parents[0], head) == self.line.tree[landed]

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

