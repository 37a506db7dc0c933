"""`reconciler audit export`: the audit records of a period as one archive the institution's
archive keeps, which verifies on any machine from itself alone (archive_check.py, inside it as
verify.py).

    reconciler-audit-<since>-<until>/
        MANIFEST.json        the period, each target's records (count, first and last seq, the
                             hash before the first: the chain's anchor), how long to keep it,
                             the apply key's public half, every other file's SHA-256
        records/<target>.jsonl   the records, exactly as the trail holds them
        notes/<commit>.note  the git notes holding them, with the apply key's seals, verbatim
        repository.bundle    the commits they name (with their history), the approvals' notes,
                             the work orders and the applied refs (never the envelopes)
        verify.py, messages.json, LEEME.txt   the check, its words, how to run it

Each target keeps its records `audit_retention_years` (the inventory; by default 5): the archive
says until when (keep_until: the period's end plus the longest retention among its targets).
The reconciler deletes no record: trails and notes only grow.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.about import exact_version
from reconciler.audit import archive_check, trail
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, day_start, zone

BUNDLED_REFS = ("refs/notes/reconciler-approvals", "refs/reconciler/work-orders/", "refs/reconciler/applied/")
TEMPORARY = "refs/reconciler-export/"  # the named commits, for the bundle's heads (one folder per export)


@dataclass(frozen=True)
class Period:
    since: dt.date
    until: dt.date

    @property
    def start(self) -> str:
        """The first instant, UTC, as records write their time."""
        return day_start(self.since)

    @property
    def end(self) -> str:
        """The first instant after the period."""
        return day_start(self.until + dt.timedelta(days=1))


def period(since: str, until: str) -> Period:
    try:
        found = Period(dt.date.fromisoformat(since), dt.date.fromisoformat(until))
    except ValueError:
        raise ReconcilerError(_("--since and --until are dates: YYYY-MM-DD")) from None
    if found.until < found.since:
        raise ReconcilerError(_("--until {until} is before --since {since}", until=until, since=since))
    return found


def years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _selected(path: Path, span: Period) -> tuple[list[str], str]:
    """The record lines of one trail from the first recorded in the period to the last (and
    whatever lies between, should a clock have stepped back), after checking the whole chain;
    and the hash of the record before the first."""
    prev, first = trail.start(path)
    _count, broken, _hashes = trail.verify_chain(trail.parsed(path), prev, first)
    if broken:
        raise ReconcilerError(_("{file}: {problem}; run `reconciler audit verify` (a broken trail is not exported)",
                                file=path, problem=broken))
    selected, after, anchor_hash = [], [], prev
    beyond = (dt.datetime.fromisoformat(span.end) + dt.timedelta(days=1)).isoformat(timespec="seconds")
    for _number, line in trail.record_lines(path):
        record = json.loads(line)
        when = str(record.get("time", ""))
        if span.start <= when < span.end:
            if not selected:
                anchor_hash = prev
            selected += after  # records between two of the period's (a clock stepped back): kept, in order
            after = []
            selected.append(line)
        elif selected:
            if when >= beyond:
                break  # a day past the period: nothing of it follows
            after.append(line)
        prev = record["hash"]
    return selected, anchor_hash


def _notes(repo, wanted: set[str]) -> dict[str, str]:
    """The note text of every commit whose note holds one of the `wanted` record hashes."""
    if repo is None:
        return {}
    try:
        listing = repo.git.notes("--ref", trail.NOTES_REF, "list")
    except Exception:  # noqa: BLE001 - no notes at all
        return {}
    out = {}
    for line in listing.splitlines():
        blob, commit = line.split()
        # Read in this process from Git's object store: one git process per note would cost a
        # process per applied commit in the period.
        text = repo.odb.stream(bytes.fromhex(blob)).read().decode("utf-8", "replace").rstrip("\n") + "\n"
        if any(archive_check.hash_of(t) in wanted for t in text.split("\n") if t.startswith("{")):
            out[commit] = text
    return out


def _bundle(repo, commits: set[str], into: Path) -> None:
    """A git bundle of the named commits (and their history) and the refs auditors need.  The
    commits are bundled under refs of this export's own (removed after, even on failure)."""
    import secrets

    present = [c for c in sorted(commits) if repo.git.cat_file("-t", c, with_exceptions=False) == "commit"]
    refs = [line.split()[1] for line in repo.git.for_each_ref("--format=%(objectname) %(refname)",
                                                                *BUNDLED_REFS).splitlines() if line.strip()]
    mine = f"{TEMPORARY}{secrets.token_hex(6)}/"
    try:
        for n, commit in enumerate(present):
            repo.git.update_ref(f"{mine}{n}", commit)
        names = [f"{mine}{n}" for n in range(len(present))] + refs
        if names:
            repo.git.bundle("create", str(into), *names)
    finally:
        for n in range(len(present)):
            repo.git.update_ref("-d", f"{mine}{n}", with_exceptions=False)


def export(targets: list, repo, span: Period, key, out: Path) -> dict:
    """Write the archive of `targets`' records in `span` to `out` (.tar.gz); its manifest."""
    from reconciler.i18n import current

    if key is None or key.private is None:
        raise ReconcilerError(_("an archive is signed with the apply key, where apply runs: RECONCILER_APPLY_KEY is "
                                "not set"))
    root_name = f"reconciler-audit-{span.since.isoformat()}-{span.until.isoformat()}"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / root_name
        (root / "records").mkdir(parents=True)
        (root / "notes").mkdir()
        described, hashes, commits = [], set(), set()
        for target in targets:
            path = Path(target.audit_dir) / f"{target.name}{trail.SUFFIX}"
            if not path.exists():
                continue
            lines, anchor = _selected(path, span)
            if not lines:
                continue
            records = [json.loads(line) for line in lines]
            (root / "records" / f"{target.name}.jsonl").write_text("".join(line + "\n" for line in lines),
                                                                 encoding="utf-8")
            hashes |= {r["hash"] for r in records}
            commits |= {c for r in records for c in (r.get("commit"), (r.get("solicitud") or {}).get("landed"))
                        if isinstance(c, str) and len(c) == 40}
            years = target.audit_retention_years
            described.append({"name": target.name, "kind": target.kind, "retention_years": years,
                              "records": len(records), "first_seq": records[0]["seq"], "last_seq": records[-1]["seq"],
                              "anchor_prev": anchor, "last_hash": records[-1]["hash"],
                              "first_time": records[0].get("time"), "last_time": records[-1].get("time"),
                              "keep_until": years_after(span.until, years).isoformat()})
        if not described:
            raise ReconcilerError(_("no audit record between {since} and {until} in the targets' trails",
                                    since=span.since.isoformat(), until=span.until.isoformat()))
        for commit, text in _notes(repo, hashes).items():
            (root / "notes" / f"{commit}.note").write_text(text, encoding="utf-8")
        if repo is not None:
            _bundle(repo, commits, root / "repository.bundle")
        _explain(root)
        manifest = {"format": archive_check.FORMAT, "created": trail.now(), "reconciler": exact_version(),
                    "since": span.since.isoformat(), "until": span.until.isoformat(), "zone": str(zone()),
                    "language": current(), "apply_key": key.public,
                    "keep_until": max(t["keep_until"] for t in described), "targets": described,
                    "files": {p.relative_to(root).as_posix(): archive_check.sha256_file(p)
                              for p in sorted(root.rglob("*")) if p.is_file()}}
        text = json.dumps(manifest, ensure_ascii=False, indent=1)
        (root / "MANIFEST.json").write_text(text, encoding="utf-8")
        (root / "MANIFEST.json.sig").write_text(_signature(text, key), encoding="ascii")
        try:
            _tar(root, out)
        except OSError as exc:
            raise ReconcilerError(_("cannot write {path}: {error}", path=out, error=exc.strerror or exc)) from None
    return manifest


def _signature(text: str, key) -> str:
    from reconciler.approval.signatures import SignatureError

    try:
        return key.sign(text, archive_check.MANIFEST_NAMESPACE)
    except SignatureError as exc:
        raise ReconcilerError(_("could not sign the archive's manifest: {error}", error=exc)) from None


def _explain(root: Path) -> None:
    """verify.py, its words in the language of the day, and how to run it."""
    source = Path(archive_check.__file__).read_text(encoding="utf-8")
    (root / "verify.py").write_text(source, encoding="utf-8")
    words = {code: _(template) for code, template in archive_check.MESSAGES.items()}
    (root / "messages.json").write_text(json.dumps(words, ensure_ascii=False, indent=1), encoding="utf-8")
    (root / "LEEME.txt").write_text(_(
        "An archive of audit records made by reconciler audit export.\n\nTo check it, on any machine with Python 3, "
        "OpenSSH (ssh-keygen) and Git:\n\n    python3 verify.py --key apply-key.pub\n\nwith the apply key's public "
        "half as the institution keeps it, never a copy that came with the archive. verify.py is the reconciler's "
        "reconciler/audit/archive_check.py: compare it with the release's, or check the archive with the "
        "reconciler itself: reconciler audit verify-archive FILE.tar.gz --key apply-key.pub\n"), encoding="utf-8")


def _tar(root: Path, out: Path) -> None:
    """A gzip'd tar of `root`, readable by its owner only (the records name people)."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path in [root, *sorted(root.rglob("*"))]:
            info = tar.gettarinfo(str(path), arcname=path.relative_to(root.parent).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


MEMBERS_LIMIT = 100_000
BYTES_LIMIT = 8 << 30  # an archive bigger than this is not one of ours


def extract(archive: Path, into: Path, named: Path | None = None) -> Path:
    """Unpack an archive someone handed over, trusting nothing in it: one top directory, regular
    files and directories only, no path that climbs out or names a file twice, bounded in count
    and size (and in the room left where it is unpacked); the top directory.  `named`: the file
    as the person gave it, when `archive` is a copy."""
    import shutil
    import zlib

    import gzip

    shown = named or archive
    into.mkdir(parents=True, exist_ok=True)
    try:
        with gzip.open(archive, "rb") as raw, tarfile.open(fileobj=_Bounded(raw), mode="r:") as tar:
            members = _members(tar, shown, shutil.disk_usage(into).free)
            written: set[str] = set()
            for member in members:
                target = into / member.name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if member.name in written or target.is_dir():
                    raise ReconcilerError(_("{file}: member {member!r} is not part of an audit archive",
                                            file=shown, member=member.name[:200]))
                written.add(member.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as source, target.open("wb") as sink:
                    while block := source.read(READ_LIMIT):
                        sink.write(block)
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        raise ReconcilerError(_("{file} is not an archive, or is cut short: {error}", file=shown, error=exc)) from None
    return into / members[0].name.split("/")[0]


READ_LIMIT = 64 << 10  # bytes tarfile may ask for at once: our headers are tiny, and files are read in such blocks


class _Bounded:
    """The decompressed archive as tarfile reads it, refusing any single read larger than one
    of our headers or blocks: a crafted header (a PAX record of 400 MB) would otherwise be read
    whole into memory, and parsed, before any size is checked."""

    def __init__(self, raw):
        self.raw = raw

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > READ_LIMIT:
            raise tarfile.ReadError(_("a header larger than any audit archive has"))
        return self.raw.read(n)

    def seek(self, *args):
        return self.raw.seek(*args)

    def tell(self) -> int:
        return self.raw.tell()


def _members(tar, archive: Path, room: int) -> list:
    top, size, members = None, 0, []
    for n, member in enumerate(tar):
        parts = Path(member.name).parts
        if n >= MEMBERS_LIMIT or not parts or Path(member.name).is_absolute() or ".." in parts \
                or not (member.isfile() or member.isdir()) or (top is not None and parts[0] != top):
            raise ReconcilerError(_("{file}: member {member!r} is not part of an audit archive",
                                    file=archive, member=member.name[:200]))
        top = parts[0]
        size += member.size
        if size > BYTES_LIMIT or size > room // 2:
            raise ReconcilerError(_("{file} unpacks to more than any audit archive, or than the room left in {where}",
                                    file=archive, where=tempfile.gettempdir()))
        members.append(member)
    if not members:
        raise ReconcilerError(_("{file} is empty", file=archive))
    return members
