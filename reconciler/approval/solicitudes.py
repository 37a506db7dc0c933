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

import json
import re
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from reconciler.approval.ledger import Line
from reconciler.desired.checks import people_keys
from reconciler.desired.entries import Outline, entry_texts, known, lines_of, split_known, text_of_blob, unit_line
from reconciler.desired.files import blob_text, identity_at
from reconciler.desired.model import Source
from reconciler.desired.yamlfile import LineIndex, parse_yaml
from reconciler.i18n import lazy

if TYPE_CHECKING:  # the policy's types are read without Git; History is handed a repository
    import git

_IDENTITY = re.compile(r"^\s*(?P<name>[^<>]*?)\s*<(?P<email>[^<>@\s]+@[^<>\s]+)>\s*$")
_GITHUB = (re.compile(r"^Merge pull request #(\d+)"),  # not for people: the forge's merge title, parsed
           re.compile(r"\(#(\d+)\)\s*$"))  # merge, squash title
_SHA_LINE = re.compile(r"^[0-9a-f]{40} \d+ \d+")
_GITLAB = re.compile(r"^See merge request \S*!(\d+)\s*$", re.MULTILINE)  # anywhere in the body; not for people


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
    approvers: tuple[Identity, ...]  # whose signed approvals counted (set by review)
    approved_at: str  # when it landed on the protected branch (ISO 8601)
    claimed: tuple[Identity, ...] = ()  # Approved-by trailers: what the message says, never proof
    unreadable_trailers: tuple[str, ...] = ()  # Approved-by values that are not "Name <email>"

    def to_dict(self) -> dict:
        return {"commit": self.commit, "landed": self.landed, "how": self.how,
                "pull_request": self.pull_request, "requester": str(self.requester),
                "approvers": [str(a) for a in self.approvers], "approved_at": self.approved_at,
                "trailers": [str(a) for a in self.claimed]}

    def summary(self) -> str:
        if self.pull_request:
            return lazy("PR {pull_request}, commit {commit} ({how}), requested by {requester}",
                        pull_request=self.pull_request, commit=self.landed[:10], how=how_words(self.how),
                        requester=self.requester.name)
        return lazy("commit {commit} ({how}), requested by {requester}", commit=self.landed[:10],
                    how=how_words(self.how), requester=self.requester.name)


def how_words(how: str) -> str:
    """How a commit landed (Provenance.how, a code value in JSON), in words."""
    words = {"merge commit": lazy("merge commit"),  # not for people: the keys are the code values
             "squash merge": lazy("squash merge"),  # not for people: the key
             "commit": lazy("pushed directly")}
    return words.get(how, how)


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


BATCHED_SPANS = 2000  # line ranges of one file blamed in one process; beyond, the whole file


class History:
    """Provenance lookups against one commit of the protected branch, with caches: a plan with
    thousands of changes runs one blame per file, not per person.  Every answer is a landing:
    a commit of the branch's first-parent line (blame and log follow only first parents), so a
    line brought back by merging an old branch again is the new merge's, not the old one's."""

    def __init__(self, repo: git.Repo, commit: git.Commit, by_span: bool = False):
        """by_span: blame only the lines asked about (`git blame -L`), for plans with a few
        changes in large files; otherwise each file is blamed once, whole."""
        self.repo, self.commit, self.by_span = repo, commit, by_span
        self._blames: dict[str, list[tuple[int, int, str]]] = {}
        self._texts: dict[str, tuple] = {}  # file -> (text, people entries, LineIndex), each when needed
        self._outlines: dict[str, Outline | None] = {}
        self._yaml_keys: dict[str, list] = {}  # file -> its people's keys, for a file the scanner cannot split
        self._provenance: dict[str, Provenance] = {}
        self._removals: dict[tuple[str, str], str | None] = {}
        self._spans: dict[tuple[str, int, int], list[str]] = {}
        self._entries: dict[tuple[str, str], dict[str, str] | None] = {}
        self._file_log: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
        self._status_log: dict[str, list[str]] = {}
        self._long_files: dict[str, bool] = {}

    @cached_property
    def line(self) -> Line:
        return Line(self.repo, self.commit.hexsha)

    def _span(self, source: Source) -> tuple[int, int] | None:
        """The lines of a declaration at this commit.  People's entries are found by their
        file's outline when the loader read them from the parse cache, else by the text
        scanner (files of thousands of people); anything else through the YAML nodes."""
        outline = self._outline(source.file)
        if outline is not None and source.path[:1] == ("people",) and len(source.path) > 1:
            return outline.span(source.path[1])
        if outline is not None and source.path == ("unit",) and outline.unit_line is not None:
            return outline.unit_line, outline.unit_line
        text, entries, index = self._text(source.file)
        if text is None:
            return None
        if entries is not None and source.path[:1] == ("people",) and len(source.path) > 1:
            i = source.path[1]
            return lines_of(text, entries[i]) if 0 <= i < len(entries) else None
        if entries is not None and source.path == ("unit",) and (line := unit_line(text)) is not None:
            return line, line
        if index is None:
            index = LineIndex(text)
            self._texts[source.file] = (text, entries, index)
        return index.span(source.path)

    def _outline(self, path: str) -> Outline | None:
        """The outline the loader found in the parse cache for the file at this commit."""
        if path not in self._outlines:
            self._outlines[path] = known(identity_at(self.commit, path))
        return self._outlines[path]

    def _text(self, path: str) -> tuple:
        """(text, people entries, LineIndex) of the file at this commit, each when needed."""
        if path not in self._texts:
            # The text a partial load split (text_of_blob): a regular file's, or None.
            identity = identity_at(self.commit, path)
            text = text_of_blob(identity, lambda: blob_text(self.commit, path))
            entries = split_known(identity, text) if text is not None else None
            self._texts[path] = (text, entries, None)
        return self._texts[path]

    def _key(self, source: Source) -> str | None:
        """The employee key of the person a people source names, at this commit."""
        if source.path[:1] != ("people",) or len(source.path) < 2:
            return None
        i = source.path[1]
        if (outline := self._outline(source.file)) is not None:
            return outline.keys[i] if 0 <= i < len(outline.keys) else None
        text, entries, _index = self._text(source.file)
        if entries is not None:
            return entries[i].key if 0 <= i < len(entries) else None
        keys = self._parsed_keys(source.file, text) if text is not None else []
        key = keys[i] if 0 <= i < len(keys) else None
        return key if isinstance(key, str) else None

    def _parsed_keys(self, path: str, text: str) -> list:
        """The people's keys of a file the scanner leaves to YAML, as YAML reads them."""
        if path not in self._yaml_keys:
            data, problems = parse_yaml(text, path)
            self._yaml_keys[path] = (people_keys(data) if not problems else None) or []
        return self._yaml_keys[path]

    def _blame(self, path: str, *span: str) -> list[tuple[int, int, str]]:
        """(first line, last line, landing) of each blamed range of the file, or of `-L a,b`."""
        # No -M/-C: they attribute a line to an older commit that wrote the same text anywhere
        # (a copied `- vpn` would be credited to someone else's approved entry).
        out = self.repo.git.blame("--first-parent", "--incremental", *span, self.commit.hexsha, "--", path)
        ranges = []
        for row in out.splitlines():
            if _SHA_LINE.match(row):
                sha, _, final, count = row.split()[:4]
                ranges.append((int(final), int(final) + int(count) - 1, sha))
        return ranges

    def prefetch(self, sources) -> None:
        """Blame at once what a plan's changes will ask of long people files: one `git blame`
        per file with one -L per declaration (and the file's `unit:` line), not one blame per
        person (100 hand edits in files of 100,000 people: 100 processes that each walk the
        file's history).  A file asked about for more lines than BATCHED_SPANS is left to one
        blame, whole, as before."""
        wanted: dict[str, set[tuple[int, int]]] = {}
        for source in sources:
            if source.path[:1] != ("people",):
                continue
            for asked in (source, Source(source.file, None, ("unit",))):
                span = self._span(asked)
                if span is not None and self._long(asked.file) and (asked.file, *span) not in self._spans:
                    wanted.setdefault(asked.file, set()).add(span)
        batches = {path: spans for path, spans in wanted.items() if len(spans) <= BATCHED_SPANS}
        # One process per file, run side by side: each mostly waits on its own git.
        with ThreadPoolExecutor(max_workers=4) as pool:
            blamed = pool.map(self._blame_spans, batches.items())
            for (path, spans), ranges in zip(batches.items(), blamed):
                for first, last in spans if ranges is not None else ():
                    self._spans[path, first, last] = sorted({sha for a, b, sha in ranges if a <= last and b >= first})

    def _blame_spans(self, item: tuple[str, set[tuple[int, int]]]) -> list[tuple[int, int, str]] | None:
        """One blame of a file's spans; None when git refuses them (a line past the file's end:
        an outline the parse cache holds that is not the file's), and the file is blamed whole."""
        from git import GitCommandError

        path, spans = item
        try:
            return self._blame(path, *[arg for first, last in sorted(spans) for arg in ("-L", f"{first},{last}")])
        except GitCommandError:
            return None

    def _long(self, path: str) -> bool:
        """Worth blaming by line range: a people file of thousands of lines.  Small files
        (units, entitlements) are blamed once, whole, and asked many times."""
        if path not in self._long_files:
            if (outline := self._outline(path)) is not None:
                self._long_files[path] = outline.newlines > 2000
                return self._long_files[path]
            text = self._texts.get(path, (None,))[0]
            if text is None:
                return False  # not read yet: asked again once it is
            self._long_files[path] = text.count("\n") > 2000
        return self._long_files[path]

    def written_by(self, source: Source) -> list[str]:
        """The landings that wrote the lines of one declaration as they are now (for a person,
        with their file's `unit:` line: changing it moves everyone in the file).  A source
        whose path is ("files",) names a folder: the landings that added, removed or renamed
        a file in it (where file names decide an order); ("landings",), every landing that
        changed anything in it (where a deleted line decides as much as a written one)."""
        if source.path == ("files",):
            return self.listing_changes(source.file)
        if source.path == ("landings",):
            return self.folder_landings(source.file)
        found = self._written(source)
        if source.path[:1] == ("people",) and found:
            found = sorted(set(found) | set(self._written(Source(source.file, None, ("unit",)))))
        return found

    def _written(self, source: Source) -> list[str]:
        span = self._span(source)
        if span is None:
            return []
        first, last = span
        key = (source.file, first, last)
        if key in self._spans:  # blamed by line range (prefetch, or by_span below)
            return self._spans[key]
        if self.by_span and self._long(source.file):
            if key not in self._spans:
                self._spans[key] = sorted({sha for *_, sha in self._blame(source.file, "-L", f"{first},{last}")})
            return self._spans[key]
        if source.file not in self._blames:
            self._blames[source.file] = self._blame(source.file)
        return sorted({sha for a, b, sha in self._blames[source.file] if a <= last and b >= first})

    def _entry(self, sha: str | None, path: str, key: str) -> str | None:
        """The text of person `key`'s entry in `path` at commit `sha` (None: not there)."""
        if sha is None:
            return None
        texts = self._entry_texts(sha, path)
        return texts.get(key) if texts is not None else "(a file YAML cannot read)"  # not for people: compared

    def _entry_texts(self, sha: str, path: str) -> dict[str, str] | None:
        """Each person's entry in `path` at `sha`, by employee key: its text, or, in a file the
        scanner leaves to YAML (a value that goes on over lines), its parsed data as a
        one-item YAML list (JSON); None when YAML cannot read the file either."""
        if (sha, path) not in self._entries:
            text = blob_text(self.repo.commit(sha), path)
            texts = entry_texts(text)
            if texts is None:
                data, problems = parse_yaml(text or "", path)
                people = data.get("people") if isinstance(data, dict) and not problems else None
                texts = {p["employee_key"]: json.dumps([p], ensure_ascii=False, sort_keys=True, default=str)
                         for p in people if isinstance(p, dict) and isinstance(p.get("employee_key"), str)
                         } if isinstance(people, list) else None
            self._entries[sha, path] = texts
        return self._entries[sha, path]

    def silent_changes(self, source: Source) -> list[str]:
        """Landings after the newest one that wrote a line of a person's entry which still
        changed that entry: they only removed lines, which blame cannot show (a deleted
        line can grant as well as revoke)."""
        if source.path[:1] != ("people",) or len(source.path) < 2:
            return []
        written = self.written_by(source)
        key = self._key(source)
        if not written or key is None:
            return []
        since = max(written, key=lambda sha: self.line.position.get(sha, -1))
        if (source.file, since) not in self._file_log:
            rows = self.repo.git.log("--first-parent", "--format=%H %P", f"{since}..{self.commit.hexsha}",
                                     "--", source.file).splitlines()
            self._file_log[source.file, since] = [(r.split()[0], (r.split()[1:2] or [None])[0]) for r in rows]
        return [landed for landed, parent in self._file_log[source.file, since]
                if self._entry(landed, source.file, key) != self._entry(parent, source.file, key)]

    def status_landing(self, source: Source) -> str | None:
        """The landing that made a person's `status` baja: the decision a baja carries out,
        found by the value (not by a line: a comment or quotes added to the line later, or a
        multi-line value above it, change nothing), whoever edited the entry since."""
        key = self._key(source)
        if key is None:
            return None
        if source.file not in self._status_log:  # once per file: a mass baja asks it hundreds of times
            self._status_log[source.file] = self.repo.git.log(
                "-n", "1000", "--first-parent", "--format=%H %P", self.commit.hexsha, "--", source.file).splitlines()
        for row in self._status_log[source.file]:  # newest first: the first that turned it into baja
            landed, *parents = row.split()
            if self._status(landed, source.file, key) != "baja":
                return None
            if self._status(parents[0] if parents else None, source.file, key) != "baja":
                return landed
        return None

    def _status(self, sha: str | None, path: str, key: str) -> object:
        text = self._entry(sha, path, key)
        if text is None:
            return None
        data, problems = parse_yaml(textwrap.dedent(text), path)
        item = data[0] if not problems and isinstance(data, list) and data else None
        return item.get("status") if isinstance(item, dict) else None

    def last_change(self, origins: tuple[Source, ...]) -> str | None:
        """The newest landing among those that wrote the lines of the declarations: a person's
        entry and the unit and entitlements it refers to (renaming a group changes everyone).
        Newest by the line's order: dates tie within a second and lie across machines."""
        landings = {sha for source in origins for sha in self.written_by(source)}
        return max(landings, key=lambda sha: self.line.position.get(sha, -1)) if landings else None

    def removal(self, key: str, directory: str) -> str | None:
        """The last landing that removed the key (an employee key, a line's number, a rule's
        name) under `directory`: a baja by removal.  For people, a landing that only mentions
        the key (a comment) is passed over: the removal is where their entry stopped existing."""
        if (key, directory) not in self._removals:
            pattern = r"(^|[^A-Za-z0-9_.-])" + re.escape(key) + r"([^A-Za-z0-9_.-]|$)"
            rows = self.repo.git.log("-n", "500", "--first-parent", "--format=%H %P", "--pickaxe-regex",
                                     f"-S{pattern}", self.commit.hexsha, "--", directory).splitlines()
            found = None
            for row in rows:
                landed, *parents = row.split()
                if not directory.endswith("/users") or (
                        parents and self._declares(parents[0], directory, key)
                        and not self._declares(landed, directory, key)):
                    found = landed
                    break
            self._removals[key, directory] = found
        return self._removals[key, directory]

    def _declares(self, sha: str, directory: str, key: str) -> bool:
        return bool(self._declaring(sha, directory, key))

    def _declaring(self, sha: str, directory: str, key: str) -> list[str]:
        """The people files under `directory` at `sha` that declare `key`: an entry for that
        employee key, or an entry whose lines (comments aside) name it (a mailbox address)."""
        files = self.repo.git.grep("-l", "-F", key, sha, "--", directory, with_exceptions=False).splitlines()
        word = re.compile(r"(^|[^A-Za-z0-9_.@-])" + re.escape(key) + r"([^A-Za-z0-9_.@-]|$)")
        found = []
        for f in files:
            path = f.split(":", 1)[1] if ":" in f else None
            texts = (self._entry_texts(sha, path) or {}) if path else {}
            if key in texts or any(word.search(line) for t in texts.values() for line in t.split("\n")
                                   if not line.lstrip().startswith("#")):
                found.append(path)
        return found

    def removed_unit(self, landed: str, directory: str, key: str) -> str | None:
        """The unit of the people file that declared `key` right before landing `landed`
        removed it: whose baja it is, when the object itself no longer says (an account left
        in the bajas OU by an interrupted baja).  None unless exactly one unit did."""
        parents = self.line.parents.get(landed, ())
        if not parents:
            return None
        units = set()
        for path in self._declaring(parents[0], directory, key):
            # Parsed as the loader parses it (a text match could be fooled by a line inside a
            # quoted value), and only a file whose entries have that employee key counts.
            data, problems = parse_yaml(blob_text(self.repo.commit(parents[0]), path) or "", path)
            people = data.get("people") if isinstance(data, dict) and not problems else None
            if isinstance(people, list) and any(isinstance(p, dict) and p.get("employee_key") == key for p in people):
                units.add(data.get("unit"))
        unit = units.pop() if len(units) == 1 else None
        return unit if isinstance(unit, str) and _KEY.fullmatch(unit) else None

    def listing_changes(self, directory: str) -> list[str]:
        """The landings that added, deleted or renamed a file under `directory`: where rules
        are evaluated in file-name order, they decide the order as much as the rules' lines."""
        out = self.repo.git.log("--first-parent", "--no-renames", "--diff-filter=ADR", "--format=%H",
                                self.commit.hexsha, "--", directory)
        return out.split()

    def folder_landings(self, directory: str) -> list[str]:
        """Every landing that changed a file under `directory`, deletions included."""
        out = self.repo.git.log("--first-parent", "--format=%H", self.commit.hexsha, "--", directory)
        return out.split()

    def files_changed(self, sha: str, directory: str) -> tuple[str, ...]:
        """The files under `directory` that landing `sha` changed (where a removal was made)."""
        parents = self.line.parents.get(sha, ())
        if parents:
            out = self.repo.git.diff("--name-only", parents[0], sha, "--", directory)
        else:
            out = self.repo.git.show("--name-only", "--format=", sha, "--", directory)
        return tuple(sorted(line for line in out.splitlines() if line))

    def provenance(self, landed: str) -> Provenance:
        """Who asked for a landing and what its message claims (trailers: information only)."""
        if landed not in self._provenance:
            commit = self.repo.commit(landed)
            merged = self.repo.commit(commit.parents[1]) if len(commit.parents) > 1 else commit
            how = ("merge commit" if len(commit.parents) > 1  # not for people: a code value (how_words says it)
                   else "squash merge" if pull_request_of(commit.message) else "commit")  # not for people
            claimed, unreadable = approvers_of(commit)
            self._provenance[landed] = Provenance(
                commit=merged.hexsha, landed=landed, how=how, pull_request=pull_request_of(commit.message),
                requester=Identity(merged.author.name, merged.author.email), approvers=(),
                approved_at=commit.committed_datetime.isoformat(), claimed=claimed, unreadable_trailers=unreadable)
        return self._provenance[landed]

    def of(self, origins: tuple[Source, ...], removed: tuple[str, str] | None) -> Provenance | None:
        """Provenance of a change declared at `origins`, or of a removal: `removed` is the text
        the declaration had and the directory it was in."""
        sha = self.last_change(origins) if origins else None
        if sha is None and removed is not None:
            sha = self.removal(*removed)
        return self.provenance(sha) if sha else None


_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a unit's key, as units.schema.json spells it
