"""The apply key: what apply leaves in Git is signed by a key only the protected pipeline holds.

A remote's refs and notes can be pushed by anyone with push rights.  So:
  - `refs/reconciler/applied/<target>` is a signed tag object (Git's own SSH-signed tag format,
    namespace "git": `git verify-tag` checks it) whose message names the target and the
    commit.  An incremental plan, and the forward-only check, count a ref only when the apply
    key signed it; otherwise the plan is full and says why;
  - each run's audit records in refs/notes/reconciler end with a seal line: the SSH signature
    (namespace "reconciler-audit") of the records before it.  Deleting a record, renumbering
    and re-hashing the rest needs the key to seal again; what is not sealed never counts (a
    password reset a forged note says was done is done again).

The private key is RECONCILER_APPLY_KEY (a file; only the apply job has it).  Everyone else who
checks (the pull-request plan job, auditors) needs only the public half:
RECONCILER_APPLY_PUBLIC_KEY (the key line, or a file holding it); the private key's .pub file
is used when present.  Without any, nothing is signed and nothing unsigned is trusted.
"""
from __future__ import annotations

import base64
import binascii
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from reconciler.approval.signatures import SignatureError, public_key, ssh_sign, ssh_verify
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy

TAG_NAMESPACE = "git"
AUDIT_NAMESPACE = "reconciler-audit"
PRINCIPAL = "reconciler-apply"
SEAL_TAG = "reconciler-seal-v1"
_SIGNATURE = "-----BEGIN SSH SIGNATURE-----"  # not for people


@dataclass(frozen=True)
class ApplyKey:
    public: str  # "type base64"
    private: Path | None = None  # only where apply runs

    @staticmethod
    def from_env(env: dict | None = None) -> "ApplyKey | None":
        """The key the environment names; None when it names none.  A variable that is set
        but names no usable key is an error, never a silent run without one (refs unsigned,
        notes unsealed, and every later run trusting neither)."""
        env = os.environ if env is None else env
        private = Path(env["RECONCILER_APPLY_KEY"]) if env.get("RECONCILER_APPLY_KEY") else None
        given = env.get("RECONCILER_APPLY_PUBLIC_KEY", "")
        public = public_key(given) if given else None
        if given and public is None:
            try:
                public = public_key(Path(given).read_text(encoding="ascii", errors="replace"))
            except OSError:
                public = None
            if public is None:
                raise ReconcilerError(_("RECONCILER_APPLY_PUBLIC_KEY is neither an SSH public key nor a file "
                                        "holding one"))
        if public is None and private is not None:
            public = _public_of(private)
            if public is None:
                raise ReconcilerError(_("RECONCILER_APPLY_KEY names {key}, whose public key cannot be had "
                                        "(no {key}.pub, and the key is missing or has a passphrase)", key=private))
        return ApplyKey(public, private) if public else None

    def sign(self, text: str, namespace: str) -> str:
        if self.private is None:
            raise SignatureError(_("only the apply job signs: RECONCILER_APPLY_KEY is not set"))
        return ssh_sign(text, self.private, namespace)

    def valid(self, text: str, signature: str, namespace: str) -> bool:
        return ssh_verify(text, signature, PRINCIPAL, (self.public,), namespace)


def _public_of(private: Path) -> str | None:
    try:
        return public_key(Path(f"{private}.pub").read_text(encoding="ascii"))
    except OSError:
        pass
    try:
        done = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(private)], capture_output=True, timeout=30)
    except FileNotFoundError:
        return None
    return public_key(done.stdout.decode("ascii", "replace")) if done.returncode == 0 else None


# -- applied refs --------------------------------------------------------------------------------

_ROOTS: dict[tuple[str, str], str] = {}  # (git dir, commit) -> root: a walk of the whole history


def root_of(repo, commit: str) -> str:
    """The first commit of `commit`'s first-parent line: which repository a tag is for (an
    apply key shared by two repositories does not let one's tag count in the other)."""
    if (repo.git_dir, commit) not in _ROOTS:
        try:
            _ROOTS[repo.git_dir, commit] = repo.git.rev_list("--max-parents=0", "--first-parent", commit).split()[-1]
        except Exception:
            return ""
    return _ROOTS[repo.git_dir, commit]


def applied_tag(repo, key: ApplyKey, target: str, commit: str) -> str:
    """A signed tag object saying `target` is applied up to `commit`; returns its id."""
    payload = (f"object {commit}\ntype commit\ntag reconciler-applied-{target}\n"  # not for people: git parses it
               f"tagger reconciler <reconciler@localhost> {int(time.time())} +0000\n\n"
               f"reconciler applied\ntarget {target}\ncommit {commit}\nroot {root_of(repo, commit)}\n")
    signed = payload + key.sign(payload, TAG_NAMESPACE)
    done = subprocess.run(["git", "-C", repo.git_dir, "mktag"], input=signed.encode("utf-8"), capture_output=True)
    if done.returncode != 0:
        raise SignatureError(_("git mktag refused the applied tag: {error}",
                               error=done.stderr.decode(errors="replace").strip()))
    return done.stdout.decode("ascii").strip()


def verified_applied(repo, ref: str, target: str, key: ApplyKey | None) -> tuple[str | None, str]:
    """(the commit `ref` says is applied, "") when the apply key signed it for `target`, else
    (None, why it does not count).  A missing ref is (None, "")."""
    sha = repo.git.rev_parse("--verify", "-q", ref, with_exceptions=False).strip()
    if not sha:
        return None, ""
    if key is None:
        return None, lazy("{ref} cannot be checked: no apply key is configured (RECONCILER_APPLY_KEY or "
                          "RECONCILER_APPLY_PUBLIC_KEY)", ref=ref)
    if repo.git.cat_file("-t", sha) != "tag":
        return None, lazy("{ref} is not signed by the apply key", ref=ref)
    raw = repo.odb.stream(bytes.fromhex(sha)).read().decode("utf-8", "surrogateescape")
    payload, marker, rest = raw.partition(_SIGNATURE)
    header, _, message = payload.partition("\n\n")
    fields = dict(line.split(" ", 1) for line in header.splitlines() if " " in line)
    said = dict(line.split(" ", 1) for line in message.splitlines() if " " in line)
    commit = fields.get("object", "")
    if not marker or not key.valid(payload, marker + rest, TAG_NAMESPACE):
        return None, lazy("{ref} is not signed by the apply key", ref=ref)
    if said.get("target") != target or said.get("commit") != commit or fields.get("type") != "commit":
        return None, lazy("{ref} is signed for another target or commit", ref=ref)
    if said.get("root") != root_of(repo, commit):
        return None, lazy("{ref} is signed for another repository", ref=ref)
    return commit, ""


# -- sealed audit notes --------------------------------------------------------------------------

def seal(records_text: str, key: ApplyKey, commit: str) -> str:
    """The seal line for a batch of record lines (the text, ending in a newline) noted on
    `commit`: the commit is signed too, so a sealed batch moved to another commit is not."""
    signature = key.sign(f"commit {commit}\n{records_text}", AUDIT_NAMESPACE)
    return f"{SEAL_TAG} {base64.b64encode(signature.encode('ascii')).decode('ascii')}"


def sealed(records_text: str, line: str, key: ApplyKey | None, commit: str) -> bool:
    """Does the seal `line` sign exactly these record lines, on this commit, with the apply key?"""
    tag, _, b64 = line.partition(" ")
    if key is None or tag != SEAL_TAG:
        return False
    try:
        signature = base64.b64decode(b64, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return key.valid(f"commit {commit}\n{records_text}", signature, AUDIT_NAMESPACE)
