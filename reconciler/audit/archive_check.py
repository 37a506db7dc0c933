"""Checking an audit archive (`reconciler audit export`) with nothing but the archive: this file
is copied into every archive as verify.py, and runs there on any machine with Python 3 and
OpenSSH (ssh-keygen), and Git for the repository bundle.  It imports nothing of ours, so it
must stay standard-library only; `reconciler audit verify-archive` runs the same code.

What it checks:
  1. MANIFEST.json is signed by the apply key, whose public half the checker gives (--key: as
     the institution keeps it, never the archive's own word), and every file it lists is there
     with its SHA-256, and nothing else is;
  2. each target's records form its hash chain, from the record before the first (the anchor
     the manifest gives) to the last, with no gap, edit or reordering;
  3. each record is in a git note batch sealed by the apply key (its SSH signature over the
     records and the commit they were noted on);
  4. every commit a record names is in the repository bundle (the desired state it applied,
     the pull request that landed it), with the approvals' and the work orders' refs.

Its words are kept as message ids with English templates; the archive holds them in the
language it was exported in (messages.json), and the reconciler says them through its catalogs.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

FORMAT = "reconciler-audit-archive/1"
SEAL_TAG = "reconciler-seal-v1"
AUDIT_NAMESPACE = "reconciler-audit"
MANIFEST_NAMESPACE = "reconciler-archive"  # what the apply key's signature of MANIFEST.json is for
PRINCIPAL = "reconciler-apply"
GENESIS = "0" * 64


def N_(message: str) -> str:  # noqa: N802 - marks a message for the catalogs, as reconciler.i18n.N_
    return message


MESSAGES = {
    "manifest": N_("MANIFEST.json is missing or is not an archive manifest of this format"),
    "malformed": N_("MANIFEST.json: {field} is not what an archive manifest holds"),
    "unsigned": N_("MANIFEST.json is not signed by the apply key (MANIFEST.json.sig): the list of files and records "
                   "it gives cannot be trusted"),
    "unreadable": N_("{file}: cannot be read as UTF-8 text: {error}"),
    "long_line": N_("{file} line {line}: longer than any audit record"),
    "missing": N_("{file} is listed in the manifest but missing"),
    "altered": N_("{file} does not match its SHA-256 in the manifest: it was altered"),
    "unlisted": N_("{file} is not listed in the manifest"),
    "not_record": N_("{file} line {line}: not a JSON record"),
    "seq": N_("{file} line {line}: expected seq {expected}, found {seq}: a record was removed or reordered"),
    "prev": N_("{file} line {line} (seq {seq}): its prev hash does not match the record before it"),
    "hash": N_("{file} line {line} (seq {seq}): its content does not match its hash: the record was edited"),
    "count": N_("{file}: {found} records, the manifest says {expected}"),
    "last": N_("{file}: the last record's hash is not the one the manifest gives"),
    "unsealed": N_("{file} seq {seq}: in no note batch the apply key sealed"),
    "key_differs": N_("the archive names another apply key ({fingerprint}) than the one it is checked with"),
    "no_key": N_("no apply key to check it with: give the apply key's public half as the institution keeps it "
                 "(--key, or RECONCILER_APPLY_PUBLIC_KEY)"),
    "bad_seal": N_("notes/{file}: a batch whose seal does not verify with the apply key"),
    "no_git": N_("git is not installed: the repository bundle is not checked"),
    "bundle": N_("repository.bundle cannot be read by git: {error}"),
    "commit_missing": N_("commit {commit}, named by the records, is not in the repository bundle"),
    "no_ssh": N_("ssh-keygen is not installed (OpenSSH 8.2 or later): the seals cannot be checked"),
    # what it says when it is done
    "key": N_("apply key given with the check: {fingerprint}"),
    "target_ok": N_("{target}: {n} records, seq {first} to {last}, chain intact, every one sealed"),
    "bundle_ok": N_("repository bundle: {n} commits named by the records, all present"),
    "ok": N_("The archive verifies: {records} records of {targets} targets, {since} to {until}; keep it until "
             "{keep_until}."),
    "bad": N_("The archive does NOT verify (problems found: {n})."),
}


class Said:
    """One thing the check says: a message id and its values, put into words by `words`."""

    def __init__(self, code: str, **values):
        self.code, self.values = code, values

    def words(self, templates: dict) -> str:
        template = templates.get(self.code)
        try:
            return (template if isinstance(template, str) else MESSAGES[self.code]).format(**self.values)
        except (KeyError, IndexError, ValueError, AttributeError):
            return MESSAGES[self.code].format(**self.values)


def canonical(record: dict) -> str:
    """As the audit trail hashes a record (reconciler/audit/trail.py: canonical)."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def record_hash(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a target's name, as the inventory allows
HEX = re.compile(r"^[0-9a-f]{64}$")
LONGEST_LINE = 1 << 20  # bytes: no audit record is near this


def check(root: Path, pinned_key: str | None) -> tuple[list[Said], list[Said]]:
    """(problems, what was verified) for the archive extracted at `root`, with the apply key's
    public half `pinned_key` (as the institution keeps it: never the archive's own word)."""
    root = Path(root)
    try:
        text = (root / "MANIFEST.json").read_bytes()
        manifest = json.loads(text.decode("utf-8"))
        if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT):  # not an assert: -O keeps it
            raise ValueError("not a manifest")  # not for people: caught below
    except (OSError, ValueError, RecursionError):
        return [Said("manifest")], []
    if not pinned_key:
        return [Said("no_key")], []
    said = [Said("key", fingerprint=_fingerprint(pinned_key))]
    if not _signed(text, root / "MANIFEST.json.sig", pinned_key):
        own = manifest.get("apply_key")
        if isinstance(own, str) and own.split()[:2] != pinned_key.split()[:2]:
            return [Said("key_differs", fingerprint=_fingerprint(own)), Said("unsigned")], said
        return [Said("unsigned")], said
    problems = _shape(manifest) or _files(root, manifest)
    if problems:  # an altered archive: nothing in it is read further
        return problems, said
    wanted = _record_hashes(root, manifest, problems)
    sealed = _sealed(root, pinned_key, wanted, problems)
    commits: set[str] = set()
    for target in manifest["targets"]:
        before = len(problems)
        commits |= _chain(root, target, sealed, problems)
        if len(problems) == before:
            said.append(Said("target_ok", target=target["name"], n=target["records"], first=target["first_seq"],
                             last=target["last_seq"]))
    _bundle(root, manifest, commits, problems, said)
    return problems, said


def _shape(manifest: dict) -> list[Said]:
    """The manifest's fields are what export writes: anything else is refused before use."""
    files, targets = manifest.get("files"), manifest.get("targets")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) and HEX.match(v)
                                              for k, v in files.items()):
        return [Said("malformed", field="files")]
    if not isinstance(targets, list) or not targets:
        return [Said("malformed", field="targets")]
    for t in targets:
        ints = ("records", "first_seq", "last_seq")
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not NAME.match(t["name"]) \
                or not all(isinstance(t.get(k), int) and not isinstance(t.get(k), bool) and t[k] >= 0 for k in ints) \
                or not all(isinstance(t.get(k), str) and HEX.match(t[k]) for k in ("anchor_prev", "last_hash")) \
                or f"records/{t['name']}.jsonl" not in files:
            return [Said("malformed", field="targets")]
    for k in ("since", "until", "keep_until"):
        if not isinstance(manifest.get(k), str):
            return [Said("malformed", field=k)]
    return []


def _signed(text: bytes, signature: Path, key: str) -> bool:
    """Is MANIFEST.json signed by the apply key?"""
    try:
        armored = signature.read_text(encoding="ascii")
    except (OSError, ValueError):
        return False
    return _ssh_verify(text, armored.encode("ascii"), key, MANIFEST_NAMESPACE)


def _ssh_verify(data: bytes, signature: bytes, key: str, namespace: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        signers, sig = Path(tmp) / "allowed_signers", Path(tmp) / "signature"
        signers.write_text(f'{PRINCIPAL} namespaces="{namespace}" {" ".join(key.split()[:2])}\n', encoding="ascii")
        sig.write_bytes(signature)
        try:
            done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", PRINCIPAL, "-n",
                                   namespace, "-s", str(sig)], input=data, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


def _record_hashes(root: Path, manifest: dict, problems: list) -> set[str]:
    """The hashes of the archive's records: only the note batches holding one are checked."""
    out = set()
    for target in manifest["targets"]:
        for _number, line in _lines(root, f"records/{target['name']}.jsonl", problems):
            out.add(hash_of(line))
    return out


def _lines(root: Path, name: str, problems: list):
    """The lines of a file of the archive, each bounded; a problem for one that is not text."""
    try:
        with (root / name).open("rb") as f:
            number = 0
            while raw := f.readline(LONGEST_LINE + 1):
                number += 1
                if len(raw) > LONGEST_LINE:
                    problems.append(Said("long_line", file=name, line=number))
                    return
                yield number, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Said("unreadable", file=name, error=exc.reason))
    except OSError as exc:
        problems.append(Said("unreadable", file=name, error=exc.strerror or exc))


def _files(root: Path, manifest: dict) -> list[Said]:
    problems = []
    listed = manifest.get("files", {})
    for name, digest in sorted(listed.items()):
        path = root / name
        if ".." in Path(name).parts or Path(name).is_absolute() or not path.is_file() or path.is_symlink():
            problems.append(Said("missing", file=name))
        elif sha256_file(path) != digest:
            problems.append(Said("altered", file=name))
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if (path.is_file() or path.is_symlink()) and name not in ("MANIFEST.json", "MANIFEST.json.sig") \
                and name not in listed:
            problems.append(Said("unlisted", file=name))
    return problems


def _fingerprint(key: str) -> str:
    try:
        blob = base64.b64decode(key.split()[1], validate=True)
    except (IndexError, ValueError, binascii.Error):  # a non-ASCII key is a ValueError
        return "?"
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def _sealed(root: Path, key: str, wanted: set[str], problems: list) -> set[str]:
    """The hashes of the archive's records that are in a note batch the key sealed; only the
    batches holding one of them cost a signature check."""
    hashes: set[str] = set()
    for note in sorted((root / "notes").glob("*.note")):
        name = f"notes/{note.name}"
        commit = note.name[: -len(".note")]
        batch: list[str] = []
        for _number, raw in [*_lines(root, name, problems), (0, "")]:
            text = raw.rstrip("\n")
            if text.startswith(SEAL_TAG + " "):
                mine = {hash_of(t) for t in batch} & wanted
                if mine:
                    if _verify_seal("".join(t + "\n" for t in batch), text, commit, key):
                        hashes |= mine
                    else:
                        problems.append(Said("bad_seal", file=note.name))
                batch = []
            elif text.strip():
                batch.append(text)
            else:
                batch = []  # a batch no seal ended counts for nothing
    return hashes


def hash_of(text: str) -> str:
    try:
        return str(json.loads(text).get("hash"))
    except (ValueError, AttributeError, RecursionError):
        return ""


def _verify_seal(records_text: str, line: str, commit: str, key: str) -> bool:
    try:
        signature = base64.b64decode(line.partition(" ")[2], validate=True)
    except binascii.Error:
        return False
    return _ssh_verify(f"commit {commit}\n{records_text}".encode("utf-8"), signature, key, AUDIT_NAMESPACE)


def _chain(root: Path, target: dict, sealed: set[str], problems: list) -> set[str]:
    """Check one target's records; the commits they name."""
    name = f"records/{target['name']}.jsonl"
    prev, seq, count, last, commits = target["anchor_prev"], target["first_seq"] - 1, 0, None, set()
    for number, line in _lines(root, name, problems):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):  # not an assert: -O keeps it
                raise ValueError("not a record")  # not for people: caught below
        except (ValueError, RecursionError):
            problems.append(Said("not_record", file=name, line=number))
            return commits
        count += 1
        if record.get("seq") != seq + 1:
            problems.append(Said("seq", file=name, line=number, expected=seq + 1, seq=record.get("seq")))
            return commits
        if record.get("prev") != prev:
            problems.append(Said("prev", file=name, line=number, seq=record["seq"]))
            return commits
        if record.get("hash") != record_hash(record):
            problems.append(Said("hash", file=name, line=number, seq=record["seq"]))
            return commits
        if record["hash"] not in sealed:
            problems.append(Said("unsealed", file=name, seq=record["seq"]))
        prev, seq, last = record["hash"], record["seq"], record["hash"]
        commits |= {c for c in (record.get("commit"), (record.get("solicitud") or {}).get("landed"))
                    if isinstance(c, str) and len(c) == 40 and all(x in "0123456789abcdef" for x in c)}
    if count != target["records"]:
        problems.append(Said("count", file=name, found=count, expected=target["records"]))
    elif last != target["last_hash"]:
        problems.append(Said("last", file=name))
    return commits


def _bundle(root: Path, manifest: dict, commits: set[str], problems: list, said: list) -> None:
    if "repository.bundle" not in manifest.get("files", {}):
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
        try:
            subprocess.run(["git", "init", "-q", "--bare", tmp], check=True, capture_output=True, env=env)
            done = subprocess.run(["git", "-C", tmp, "fetch", "-q", str(root / "repository.bundle"), "refs/*:refs/*"],
                                  capture_output=True, env=env, timeout=1800)
        except subprocess.TimeoutExpired:
            problems.append(Said("bundle", error="timeout"))
            return
        except FileNotFoundError:
            problems.append(Said("no_git"))
            return
        if done.returncode != 0:
            problems.append(Said("bundle", error=done.stderr.decode("utf-8", "replace").strip()[:300]))
            return
        present = subprocess.run(["git", "-C", tmp, "cat-file", "--batch-check"], capture_output=True, env=env,
                                 timeout=600, input="".join(c + "\n" for c in sorted(commits)).encode("ascii")
                                 ).stdout.decode("utf-8", "replace")
        missing = [line.split()[0] for line in present.splitlines() if line.endswith(" missing")]
        for commit in missing:
            problems.append(Said("commit_missing", commit=commit[:12]))
        if not missing:
            said.append(Said("bundle_ok", n=len(commits)))


# Problems that leave the archive's own files unproven: its messages.json is not used then.
UNPROVEN = frozenset({"manifest", "no_key", "unsigned", "key_differs", "malformed", "missing", "altered", "unlisted"})


def main(argv: list[str]) -> int:
    """python3 verify.py --key 'ssh-ed25519 AAAA…'   (or --key FILE.pub; in the archive's directory)"""
    root = Path(__file__).resolve().parent
    if len(argv) != 2 or argv[0] != "--key":
        print(main.__doc__, file=sys.stderr)
        return 2
    given = Path(argv[1])
    pinned = given.read_text(encoding="ascii", errors="replace").strip() if given.is_file() else argv[1]
    problems, said = check(root, pinned)
    templates = {}
    if not any(p.code in UNPROVEN for p in problems):  # its words, once the signed manifest vouches for them
        try:
            templates = json.loads((root / "messages.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            templates = {}
    for item in said:
        print("✓ " + item.words(templates))
    for item in problems:
        print("✗ " + item.words(templates))
    if problems:
        print(Said("bad", n=len(problems)).words(templates))
        return 1
    manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
    print(Said("ok", records=sum(t["records"] for t in manifest["targets"]), targets=len(manifest["targets"]),
               since=manifest["since"], until=manifest["until"], keep_until=manifest["keep_until"]).words(templates))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
