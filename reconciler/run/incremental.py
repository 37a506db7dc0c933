"""Incremental runs: only what changed since the commit last applied to each target.

`refs/reconciler/applied/<target>` records the last commit whose every change was applied and
verified.  From it, `git diff` names the people files that changed; only those are loaded, and
only the people whose entries differ between the two commits (added, removed or edited) are
planned and read from the target: one OR-batched search, not a read of the directory.
Anything a partial view cannot judge falls back to a full plan, and says why: units,
entitlements, a file's unit or its shared mailboxes changed, no applied commit yet, history rewritten, or (found by the provider) a
new employee key that already has an account, or a derived account name near an existing one.
A full run still catches drift made by hand: the nightly job runs one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import git

from reconciler.desired.entries import entry_texts, split_entries
from reconciler.desired.files import blob_text
from reconciler.desired.load import USER_SUFFIXES
from reconciler.desired.source import DESIRED_DIR, DesiredSource
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy, lazy_n


@dataclass(frozen=True)
class Scope:
    full: bool
    reason: str = ""
    bases: tuple[str, ...] = ()  # applied commits the diff starts from
    user_files: frozenset[str] = frozenset()  # relative to desired_state/: users/x.yaml
    # For each changed file, the employee keys whose entries to load (the changed ones in it).
    entries: dict = field(default_factory=dict)
    employee_keys: frozenset[str] = frozenset()  # whose entries differ between the base and now
    previous_keys: frozenset[str] = field(default_factory=frozenset)  # declared there at the base
    described: str = ""  # how another kind of partial plan describes itself (engine._settled_scope)

    def describe(self) -> str:
        """The plan's scope as people read it (a Message: its value, which code compares and
        the plan keeps, is the English text)."""
        if self.described and not self.full:
            return self.described
        if self.full:
            return lazy("full ({reason})", reason=self.reason) if self.reason else lazy("full")
        return lazy("incremental since {commits}: {files}, {people}",
                    commits=", ".join(b[:10] for b in self.bases),
                    files=lazy_n("{n} changed file", "{n} changed files", len(self.user_files)),
                    people=lazy_n("{n} changed person", "{n} changed people", len(self.employee_keys)))


def scope_since_applied(source: DesiredSource, refs: list[str]) -> Scope:
    if source.commit is None:
        raise ReconcilerError(_("--since-applied compares commits: it cannot be used with --working-tree"))
    repo, commit = source.repo, source.commit
    bases = []
    for ref in refs:
        try:
            bases.append(repo.commit(ref).hexsha)
        except (git.BadName, ValueError):
            if (repo.git_dir and (Path(repo.git_dir) / ref).exists()) or ref in repo.git.show_ref(with_exceptions=False):
                return Scope(True, lazy("the commit {ref} names is not in this clone (fetch the full history)",
                                        ref=ref))
            return Scope(True, lazy("no applied commit recorded yet ({ref})", ref=ref))
    bases = list(dict.fromkeys(bases))
    root = source.path_in_repo(DESIRED_DIR)
    changed: set[str] = set()
    for base in bases:
        try:
            if not repo.is_ancestor(base, commit.hexsha):
                return Scope(True, lazy("the applied commit {applied} is not in the history of {commit}",
                                        applied=base[:10], commit=commit.hexsha[:10]))
            out = repo.git.diff("--name-only", "--no-renames", base, commit.hexsha, "--", root)
        except git.GitCommandError:  # the applied commit is not in this clone (a shallow one?)
            return Scope(True, lazy("the applied commit {applied} is not in this clone (fetch the full history)",
                                    applied=base[:10]))
        changed.update(line for line in out.splitlines() if line)
    users = f"{root}/users/"
    others = sorted(p for p in changed if not p.startswith(users))
    if others:
        return Scope(True, lazy_n("{files} changed", "{files} changed", len(others), files=", ".join(others)))
    user_files = {p for p in changed if p.endswith(USER_SUFFIXES) and "/" not in p[len(users):]}
    touched: set[str] = set()
    before: set[str] = set()
    entries: dict[str, frozenset[str]] = {}
    for path in sorted(user_files):
        new_text = blob_text(commit, path)
        now = entry_texts(new_text)
        if now is None:
            return Scope(True, lazy("{path} is not in the block layout the incremental plan splits", path=path))
        mine: set[str] = set()
        for base in bases:
            old_text = blob_text(repo.commit(base), path)
            then = entry_texts(old_text)
            if then is None:
                return Scope(True, lazy("{path} at {commit} is not in the block layout the incremental plan splits",
                                        path=path, commit=base[:10]))
            before |= set(then)
            if _outside_people(old_text) != _outside_people(new_text):
                # The unit (everyone in the file moves) or its shared mailboxes changed.
                return Scope(True, lazy("{path} changed outside its people's entries (unit or shared mailboxes)",
                                        path=path))
            mine |= {key for key in set(now) | set(then) if now.get(key) != then.get(key)}
        touched |= mine
        entries[path[len(root) + 1:]] = frozenset(mine & set(now))
    rel = frozenset(entries)
    return Scope(False, bases=tuple(bases), user_files=rel, entries=entries, employee_keys=frozenset(touched),
                 previous_keys=frozenset(before))


def _outside_people(text: str | None) -> str:
    """What a people file says besides its people's entries: the unit, the shared mailboxes."""
    text = text or ""
    parts, pos = [], 0
    for e in split_entries(text) or ():
        parts.append(text[pos:e.start])
        pos = e.end
    return "".join(parts) + text[pos:]
