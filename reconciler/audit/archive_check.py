"""Checking an audit archive (`reconciler audit export`) with nothing but the archive: this file
is copied into every archive as verify.py, and runs there on any machine with Python 3 and
OpenSSH (ssh-keygen), and Git for the repository bundle.  It imports nothing of ours, so it
must stay standard-library only; `reconciler audit verify-archive` runs the same code.

What it checks:
  1. every file the manifest lists is there with its SHA-256, and nothing else is;
  2. each target's records form its hash chain, from the record before the first (the anchor
     the manifest gives) to the last, with no gap, edit or reordering;
  3. each record is in a git note batch sealed by the apply key (its SSH signature over the
     records and the commit they were noted on); the key is the one pinned with --key, else
     the archive's own, whose fingerprint is printed to be compared with the institution's;
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
import subprocess
import sys
import tempfile
from pathlib import Path

FORMAT = "reconciler-audit-archive/1"
SEAL_TAG = "reconciler-seal-v1"
AUDIT_NAMESPACE = "reconciler-audit"
PRINCIPAL = "reconciler-apply"
GENESIS = "0" * 64


def N_(message: str) -> str:  # noqa: N802 - marks a message for the catalogs, as reconciler.i18n.N_
    return message


MESSAGES = {
    "manifest": N_("MANIFEST.json is missing or is not an archive manifest of this format"),
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
    "key_differs": N_("the archive's apply key is not the key given with --key"),
    "no_key": N_("no apply key: the archive names none and none was given with --key"),
    "bad_seal": N_("notes/{file}: a batch whose seal does not verify with the apply key"),
    "no_git": N_("git is not installed: the repository bundle is not checked"),
    "bundle": N_("repository.bundle cannot be read by git: {error}"),
    "commit_missing": N_("commit {commit}, named by the records, is not in the repository bundle"),
    "no_ssh": N_("ssh-keygen is not installed (OpenSSH 8.2 or later): the seals cannot be checked"),
    # what it says when it is done
    "key": N_("apply key: {fingerprint} ({source}); compare it with the institution's"),
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
        return templates.get(self.code, MESSAGES[self.code]).format(**self.values)


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


def check(root: Path, pinned_key: str | None = None) -> tuple[list[Said], list[Said]]:
    """(problems, what was verified) for the archive extracted at `root`."""
    root = Path(root)
    try:
        manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
        assert isinstance(manifest, dict) and manifest.get("format") == FORMAT
    except (OSError, ValueError, AssertionError):
        return [Said("manifest")], []
    problems = _files(root, manifest)
    if problems:  # an altered archive: nothing in it is read further
        return problems, []
    said: list[Said] = []
    key = _key(manifest, pinned_key, problems, said)
    sealed = _sealed(root, manifest, key, problems) if key else set()
    commits: set[str] = set()
    for target in manifest.get("targets", []):
        before = len(problems)
        named = _chain(root, target, sealed if key else None, problems)
        commits |= named
        if len(problems) == before:
            said.append(Said("target_ok", target=target["name"], n=target["records"], first=target["first_seq"],
                             last=target["last_seq"]))
    _bundle(root, manifest, commits, problems, said)
    return problems, said


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
        if (path.is_file() or path.is_symlink()) and name != "MANIFEST.json" and name not in listed:
            problems.append(Said("unlisted", file=name))
    return problems


def _key(manifest: dict, pinned: str | None, problems: list, said: list) -> str | None:
    own = manifest.get("apply_key")
    if pinned and own and pinned.split()[:2] != own.split()[:2]:
        problems.append(Said("key_differs"))
        return None
    key = pinned or own
    if not key:
        problems.append(Said("no_key"))
        return None
    said.append(Said("key", fingerprint=_fingerprint(key), source="--key" if pinned else "MANIFEST.json"))
    return key


def _fingerprint(key: str) -> str:
    try:
        blob = base64.b64decode(key.split()[1], validate=True)
    except (IndexError, binascii.Error):
        return "?"
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def _sealed(root: Path, manifest: dict, key: str, problems: list) -> set[str]:
    """The hashes of every record in a batch the key sealed, over all the notes."""
    hashes: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        signers = Path(tmp) / "allowed_signers"
        signers.write_text(f'{PRINCIPAL} namespaces="{AUDIT_NAMESPACE}" {" ".join(key.split()[:2])}\n',
                           encoding="ascii")
        for note in sorted((root / "notes").glob("*.note")):
            commit = note.name[: -len(".note")]
            batch: list[str] = []
            for text in note.read_text(encoding="utf-8").splitlines() + [""]:
                if text.startswith(SEAL_TAG + " "):
                    if _verify_seal("".join(t + "\n" for t in batch), text, commit, signers, problems):
                        hashes |= {hash_of(t) for t in batch}
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
    except (ValueError, AttributeError):
        return ""


def _verify_seal(records_text: str, line: str, commit: str, signers: Path, problems: list) -> bool:
    try:
        signature = base64.b64decode(line.partition(" ")[2], validate=True)
    except binascii.Error:
        return False
    with tempfile.NamedTemporaryFile(suffix=".sig") as sig:
        sig.write(signature)
        sig.flush()
        try:
            done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", PRINCIPAL, "-n",
                                   AUDIT_NAMESPACE, "-s", sig.name],
                                  input=f"commit {commit}\n{records_text}".encode("utf-8"), capture_output=True,
                                  timeout=60)
        except FileNotFoundError:
            if not any(p.code == "no_ssh" for p in problems):
                problems.append(Said("no_ssh"))
            return False
    return done.returncode == 0


def _chain(root: Path, target: dict, sealed: set[str] | None, problems: list) -> set[str]:
    """Check one target's records; the commits they name."""
    name = f"records/{target['name']}.jsonl"
    prev, seq, count, last, commits = target.get("anchor_prev", GENESIS), target.get("first_seq", 1) - 1, 0, None, set()
    with (root / name).open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                assert isinstance(record, dict)
            except (ValueError, AssertionError):
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
            if sealed is not None and record["hash"] not in sealed:
                problems.append(Said("unsealed", file=name, seq=record["seq"]))
            prev, seq, last = record["hash"], record["seq"], record["hash"]
            commits |= {c for c in (record.get("commit"), (record.get("solicitud") or {}).get("landed"))
                        if isinstance(c, str) and len(c) == 40}
    if count != target.get("records"):
        problems.append(Said("count", file=name, found=count, expected=target.get("records")))
    elif last != target.get("last_hash"):
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
                                  capture_output=True, env=env)
        except FileNotFoundError:
            problems.append(Said("no_git"))
            return
        if done.returncode != 0:
            problems.append(Said("bundle", error=done.stderr.decode("utf-8", "replace").strip()[:300]))
            return
        present = subprocess.run(["git", "-C", tmp, "cat-file", "--batch-check"], capture_output=True, env=env,
                                 input="".join(c + "\n" for c in sorted(commits)).encode("ascii")).stdout.decode()
        missing = [line.split()[0] for line in present.splitlines() if line.endswith(" missing")]
        for commit in missing:
            problems.append(Said("commit_missing", commit=commit[:12]))
        if not missing:
            said.append(Said("bundle_ok", n=len(commits)))


def main(argv: list[str]) -> int:
    """python3 verify.py [--key 'ssh-ed25519 AAAA…' | --key FILE.pub]   (in the archive's directory)"""
    root = Path(__file__).resolve().parent
    pinned = None
    if len(argv) == 2 and argv[0] == "--key":
        pinned = Path(argv[1]).read_text(encoding="ascii").strip() if Path(argv[1]).is_file() else argv[1]
    elif argv:
        print(main.__doc__, file=sys.stderr)
        return 2
    try:
        templates = json.loads((root / "messages.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        templates = {}
    problems, said = check(root, pinned)
    for item in said:
        print("✓ " + item.words(templates))
    for item in problems:
        print("✗ " + item.words(templates))
    manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8")) if not any(
        p.code == "manifest" for p in problems) else {}
    if problems:
        print(Said("bad", n=len(problems)).words(templates))
        return 1
    print(Said("ok", records=sum(t["records"] for t in manifest["targets"]), targets=len(manifest["targets"]),
               since=manifest["since"], until=manifest["until"], keep_until=manifest["keep_until"]).words(templates))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
