"""Provenance: which solicitud (pull request) caused a change, who asked and who approved it.

A change's solicitud is found from Git alone:
  1. the commit that last changed the declaration's lines (`git blame` of the person's entry,
     the unit or the entitlement); for a person removed from the YAML, the last commit that
     added or removed their employee key (`git log -S`);
  2. the commit on the protected branch's first-parent line that brought it there: the commit
     itself for a squash merge or a direct push, else the merge commit of its branch;
  3. that commit's message: the pull request number ("Merge pull request #12", "Title (#12)",
     "See merge request group/repo!12") and one `Approved-by: Name <email>` trailer per approver.
The requester is the author of the commit that changed the lines.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from reconciler.desired.entries import lines_of, split_entries
from reconciler.desired.files import blob_text
from reconciler.desired.model import Source
from reconciler.desired.yamlfile import LineIndex

if TYPE_CHECKING:  # the policy's types are read without Git; History is handed a repository
    import git

_IDENTITY = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>@\s]+@[^<>\s]+)>\s*$")
_GITHUB = (re.compile(r"^Merge pull request #(\d+)"), re.compile(r"\(#(\d+)\)\s*$"))  # merge, squash title
_SHA_LINE = re.compile(r"^[0-9a-f]{40} \d+ \d+")
_GITLAB = re.compile(r"^See merge request \S*!(\d+)\s*$", re.MULTILINE)  # anywhere in the body


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    @staticmethod
    def parse(text: str) -> "Identity | None":
        m = _IDENTITY.match(text)
        return Identity(m["name"], m["email"]) if m else None

    @property
    def key(self) -> str:
        return self.email.casefold()

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


@dataclass(frozen=True)
class Provenance:
    commit: str  # the commit that changed the declaration
    landed: str  # the commit on the protected branch that brought it (merge, squash or direct)
    how: str  # "merge commit", "squash merge" or "direct push"
    pull_request: str | None  # "#12" (GitHub) or "!12" (GitLab)
    requester: Identity
    approvers: tuple[Identity, ...]
    approved_at: str  # when it landed on the protected branch (ISO 8601)
    unreadable_trailers: tuple[str, ...] = ()  # Approved-by values that are not "Name <email>"

    def to_dict(self) -> dict:
        return {"commit": self.commit, "landed": self.landed, "how": self.how,
                "pull_request": self.pull_request, "requester": str(self.requester),
                "approvers": [str(a) for a in self.approvers], "approved_at": self.approved_at}

    def summary(self) -> str:
        pr = f"PR {self.pull_request}, " if self.pull_request else ""
        return f"{pr}commit {self.landed[:10]} ({self.how}), requested by {self.requester.name}"


def pull_request_of(message: str) -> str | None:
    title = message.split("\n", 1)[0]
    for pattern in _GITHUB:
        if m := pattern.search(title):
            return f"#{m.group(1)}"
    if m := _GITLAB.search(message):
        return f"!{m.group(1)}"
    return None


_TRAILER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*):[ \t]*(.*?)\s*$")


def trailers(message: str) -> list[tuple[str, str]]:
    """The `Key: value` lines of the message's last paragraph, as `git interpret-trailers
    --parse` reads them (without running it: a process per commit adds up)."""
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return []
    lines = paragraphs[-1].splitlines()
    parsed = [_TRAILER.match(line) for line in lines]
    if not parsed or not all(parsed):
        return []
    return [(m.group(1), m.group(2)) for m in parsed]


def approvers_of(commit: git.Commit) -> tuple[tuple[Identity, ...], tuple[str, ...]]:
    found, unreadable = [], []
    for key, value in trailers(commit.message):
        if key.casefold() != "approved-by":
            continue
        ident = Identity.parse(value)
        if ident is None:
            unreadable.append(value)
        elif ident.key not in {a.key for a in found}:
            found.append(ident)
    return tuple(found), tuple(unreadable)


class History:
    """Provenance lookups against one commit of the protected branch, with caches: a plan with
    thousands of changes runs one blame per file, not per person."""

    def __init__(self, repo: git.Repo, commit: git.Commit, by_span: bool = False):
        """by_span: blame only the lines asked about (`git blame -L`), for plans with a few
        changes in large files; otherwise each file is blamed once, whole."""
        self.repo, self.commit, self.by_span = repo, commit, by_span
        self._blames: dict[str, list] = {}
        self._texts: dict[str, tuple] = {}  # file -> (text, people entries, LineIndex), each when needed
        self._landing: dict[str, str] = {}
        self._provenance: dict[str, Provenance] = {}
        self._removals: dict[tuple[str, str], str | None] = {}
        self._spans: dict[tuple[str, int, int], list] = {}

    @cached_property
    def _first_parent(self) -> dict[str, int]:
        shas = self.repo.git.rev_list("--first-parent", self.commit.hexsha).split()
        return {sha: i for i, sha in enumerate(shas)}

    def landing(self, sha: str) -> str:
        """The first-parent commit that brought `sha` to the protected branch."""
        if sha in self._first_parent:
            return sha
        if sha not in self._landing:
            descendants = self.repo.git.rev_list("--ancestry-path", f"{sha}..{self.commit.hexsha}").split()
            on_line = [d for d in descendants if d in self._first_parent]
            self._landing[sha] = max(on_line, key=self._first_parent.__getitem__) if on_line else sha
        return self._landing[sha]

    def _span(self, source: Source) -> tuple[int, int] | None:
        """The lines of a declaration at this commit.  People's entries are found by the text
        scanner (files of thousands of people); anything else through the YAML nodes."""
        if source.file not in self._texts:
            text = blob_text(self.commit, source.file)
            entries = split_entries(text) if text is not None else None
            self._texts[source.file] = (text, entries, None)
        text, entries, index = self._texts[source.file]
        if text is None:
            return None
        if entries is not None and source.path[:1] == ("people",) and len(source.path) > 1:
            i = source.path[1]
            return lines_of(text, entries[i]) if 0 <= i < len(entries) else None
        if index is None:
            index = LineIndex(text)
            self._texts[source.file] = (text, entries, index)
        return index.span(source.path)

    def _blame(self, path: str) -> list:
        if path not in self._blames:
            self._blames[path] = list(self.repo.blame_incremental(self.commit.hexsha, path))
        return self._blames[path]

    def _long(self, path: str) -> bool:
        """Worth blaming by line range: a people file of thousands of lines.  Small files
        (units, entitlements) are blamed once, whole, and asked many times."""
        text = self._texts.get(path, (None,))[0]
        return text is not None and text.count("\n") > 2000

    def _blame_span(self, path: str, first: int, last: int) -> list:
        """The commits of a line range (asked twice per change: provenance and coverage)."""
        key = (path, first, last)
        if key not in self._spans:
            out = self.repo.git.blame("--porcelain", "-L", f"{first},{last}", self.commit.hexsha, "--", path)
            shas = {line[:40] for line in out.splitlines() if _SHA_LINE.match(line)}
            self._spans[key] = [self.repo.commit(sha) for sha in shas]
        return self._spans[key]

    def written_by(self, source: Source) -> list:
        """The commits that wrote the lines of one declaration as they are now (git blame)."""
        span = self._span(source)
        if span is None:
            return []
        first, last = span
        if self.by_span and self._long(source.file):
            return self._blame_span(source.file, first, last)
        return [e.commit for e in self._blame(source.file) if e.linenos.start <= last and e.linenos.stop - 1 >= first]

    def last_change(self, origins: tuple[Source, ...]) -> str | None:
        """The newest commit among those that wrote the lines of the declarations: a person's
        entry and the unit and entitlements it refers to (renaming a group changes everyone)."""
        commits = [c for source in origins for c in self.written_by(source)]
        if not commits:
            return None
        # The newest is the one that landed last on the protected branch (dates tie within a
        # second and lie across machines; the first-parent order does not).
        newest = min(commits, key=lambda c: (self._first_parent.get(self.landing(c.hexsha), 1 << 30),
                                             -c.committed_date))
        return newest.hexsha

    def removal(self, key: str, directory: str) -> str | None:
        """The last commit that added or removed the key (an employee key, a line's number, a
        rule's name) under `directory`: a baja by removal."""
        if (key, directory) not in self._removals:
            pattern = r"(^|[^A-Za-z0-9_.-])" + re.escape(key) + r"([^A-Za-z0-9_.-]|$)"
            out = self.repo.git.log("-1", "--format=%H", "--pickaxe-regex", f"-S{pattern}",
                                    self.commit.hexsha, "--", directory)
            self._removals[key, directory] = out.strip() or None
        return self._removals[key, directory]

    def files_changed(self, sha: str, directory: str) -> tuple[str, ...]:
        """The files under `directory` that commit `sha` changed (where a removal was made)."""
        out = self.repo.git.show("--name-only", "--format=", sha, "--", directory)
        return tuple(sorted(line for line in out.splitlines() if line))

    def provenance(self, sha: str) -> Provenance:
        if sha not in self._provenance:
            changed = self.repo.commit(sha)
            landed = self.repo.commit(self.landing(sha))
            how = ("merge commit" if len(landed.parents) > 1
                   else "squash merge" if pull_request_of(landed.message) else "direct push")
            approvers, unreadable = approvers_of(landed)
            self._provenance[sha] = Provenance(
                commit=sha, landed=landed.hexsha, how=how, pull_request=pull_request_of(landed.message),
                requester=Identity(changed.author.name, changed.author.email), approvers=approvers,
                approved_at=landed.committed_datetime.isoformat(), unreadable_trailers=unreadable)
        return self._provenance[sha]

    def of(self, origins: tuple[Source, ...], removed: tuple[str, str] | None) -> Provenance | None:
        """Provenance of a change declared at `origins`, or of a removal: `removed` is the text
        the declaration had and the directory it was in."""
        sha = self.last_change(origins) if origins else None
        if sha is None and removed is not None:
            sha = self.removal(*removed)
        return self.provenance(sha) if sha else None
