"""Signed approvals: what an approver (or the merge bot) signs, and how it is checked.

An approval is a short text statement signed with an SSH key through `ssh-keygen -Y`, the
format of Git's own SSH signing (allowed-signers file, a namespace per purpose), so an auditor
checks it offline with OpenSSH alone.  Trailers in commit messages are only information for
people: anyone who can write a commit message can write one.

Two kinds of statement, both naming the commit the change goes onto (`base`, on the protected
branch) and the commit that was reviewed (`head`) with its tree:
  - an approver's (`reconciler approve`): signed with a key the policy lists for that approver;
  - the merge bot's attestation (`reconciler attest`): signed with the bot's key, naming the
    commit the merge made (`landed`), the pull request, its author and the forge accounts
    whose approvals were given for exactly `head`.

Statements live in the git notes ref refs/notes/reconciler-approvals, attached to their base
commit (which stays on the protected branch for ever, where a pull request's head may be
garbage-collected after a squash merge), one line per signature, so concurrent approvals merge
with `git notes merge -s cat_sort_uniq`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from reconciler.i18n import _, lazy, lazy_n

NAMESPACE = "reconciler-approval"
NOTES_REF = "refs/notes/reconciler-approvals"
LINE_TAG = "reconciler-approval-v1"
_SHA = re.compile(r"^[0-9a-f]{40}$")
# An OpenSSH public key: its type and base64 body; a comment is dropped (it is never trusted).
KEY = re.compile(r"^(ssh-ed25519|sk-ssh-ed25519@openssh\.com|ecdsa-sha2-nistp(256|384|521)|"
                 r"sk-ecdsa-sha2-nistp256@openssh\.com|rsa-sha2-(256|512)|ssh-rsa) ([A-Za-z0-9+/]+={0,3})(\s.*)?$")
_MAX_LINE = 16_384  # a signature line is about 1 KiB; a note is hostile input too
# Checking a signature costs a process: no more than this many are checked for one signer
# on one landing (an approver signs once; a flood in their name is cut, and said so).
# Reading a note costs nothing: every line is read, so junk can never push an approval out.
MAX_CHECKS_PER_SIGNER = 3
UNREADABLE_SHOWN = 3  # unreadable lines named per note; the rest are counted


class SignatureError(Exception):
    """Signing failed (no key, a wrong passphrase, ssh-keygen missing)."""


@dataclass(frozen=True)
class Statement:
    """What one signature says.  `signer` is the approver's email or the bot's name."""

    kind: str  # "approval" (an approver's own) or "attestation" (the merge bot's)
    signer: str
    base: str
    head: str
    tree: str
    signed_at: str
    requesters: tuple[str, ...] = ()  # approval: authors' emails of base..head, as the approver saw them
    landed: str = ""  # attestation: the commit the merge made on the protected branch
    pull_request: str = ""  # attestation: "#12" or "!12"
    forge: str = ""  # attestation: github | gitlab
    author: str = ""  # attestation: the pull request's author, a forge account
    approved_by: tuple[str, ...] = ()  # attestation: forge accounts that approved exactly `head`
    fingerprint: str = ""  # the plan fingerprint the signer saw, if any (information)

    def text(self) -> str:
        """The canonical text signed: one `key value` line per field, in a fixed order."""
        lines = ["reconciler approval statement v1"]  # not for people: the signed text
        for f in fields(self):
            value = getattr(self, f.name)
            for item in (value if isinstance(value, tuple) else (value,)):
                if item:
                    lines.append(f"{f.name.replace('_', '-')} {item}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def parse(text: str) -> "Statement":
        lines = text.split("\n")
        if lines[:1] != ["reconciler approval statement v1"] or lines[-1] != "":  # not for people
            raise ValueError(lazy("not an approval statement"))
        names = {f.name.replace("_", "-"): f for f in fields(Statement)}
        values: dict[str, object] = {}
        for line in lines[1:-1]:
            key, _sep, value = line.partition(" ")
            f = names.get(key)
            if f is None or not value or not value.isprintable():  # an ESC in a name would reach a terminal
                raise ValueError(lazy("unreadable statement line {line!r}", line=line[:60]))
            if f.type.startswith("tuple"):
                values[f.name] = (*values.get(f.name, ()), value)  # type: ignore[misc]
            elif f.name in values:
                raise ValueError(lazy("{field} given twice", field=key))
            else:
                values[f.name] = value
        missing = [f.name for f in fields(Statement) if f.default is MISSING and f.name not in values]
        if missing:
            raise ValueError(lazy("missing {fields}", fields=", ".join(missing)))
        statement = Statement(**values)  # type: ignore[arg-type]
        if statement.text() != text:
            raise ValueError(lazy("statement is not in canonical form"))
        if statement.kind not in ("approval", "attestation"):
            raise ValueError(lazy("unknown kind {kind!r}", kind=statement.kind))
        for name in ("base", "head", "tree") + (("landed",) if statement.kind == "attestation" else ()):
            if not _SHA.match(getattr(statement, name)):
                raise ValueError(lazy("{field} is not a full commit id", field=name))
        return statement


@dataclass(frozen=True)
class Signed:
    statement: Statement
    text: str  # the exact bytes signed (the statement's canonical text)
    signature: str  # the armored SSH signature

    def line(self) -> str:
        b64 = lambda s: base64.b64encode(s.encode("utf-8")).decode("ascii")  # noqa: E731
        return f"{LINE_TAG} {b64(self.text)} {b64(self.signature)}"

    @staticmethod
    def parse_line(line: str) -> "Signed":
        parts = line.split(" ")
        if len(line) > _MAX_LINE or len(parts) != 3 or parts[0] != LINE_TAG:
            raise ValueError(lazy("not a signed approval line"))
        try:
            text, signature = (base64.b64decode(p, validate=True).decode("utf-8") for p in parts[1:])
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(lazy("not base64 UTF-8")) from None
        if not signature.startswith("-----BEGIN SSH SIGNATURE-----"):  # not for people: the armor ssh-keygen writes
            raise ValueError(lazy("not an SSH signature"))
        return Signed(Statement.parse(text), text, signature)


def public_key(text: str) -> str | None:
    """`type base64` of an OpenSSH public key line (comment dropped), or None."""
    m = KEY.match(text.strip())
    return f"{m.group(1)} {m.group(4)}" if m else None


def ssh_sign(text: str, key: str | Path, namespace: str = NAMESPACE) -> str:
    """The armored `ssh-keygen -Y sign` signature of `text`: `key` is a private key file, or a
    public key whose private half an ssh-agent holds (as `git config user.signingkey` may name)."""
    try:
        done = subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-n", namespace, "-f", str(key)],
                              input=text.encode("utf-8"), capture_output=True, timeout=120)
    except FileNotFoundError:
        raise SignatureError(_("ssh-keygen is not installed (OpenSSH 8.2 or later signs)")) from None
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SignatureError(_("ssh-keygen could not sign with {key}: {reason}", key=key,
                               reason=why[-1] if why else _("no reason given")))
    return done.stdout.decode("ascii")


def sign(statement: Statement, key: str | Path) -> Signed:
    text = statement.text()
    return Signed(statement, text, ssh_sign(text, key))


@dataclass
class Verifier:
    """Checks signatures against the keys a policy lists; each (text, signature, keys) once."""

    _seen: dict[tuple, bool] = field(default_factory=dict)

    def valid(self, signed: Signed, principal: str, keys: tuple[str, ...]) -> bool:
        if not keys:
            return False
        cache = (signed.text, signed.signature, principal, keys)
        if cache not in self._seen:
            self._seen[cache] = ssh_verify(signed.text, signed.signature, principal, keys)
        return self._seen[cache]


def ssh_verify(text: str, signature: str, principal: str, keys: tuple[str, ...], namespace: str = NAMESPACE) -> bool:
    """Does `signature` sign `text` in `namespace` with one of `keys`?  A signature verified
    once is remembered (a pure function of these inputs) in the user's own cache, next to
    the compiled schemas and under the same rules, so a plan does not start ssh-keygen again
    for every approval it has seen before."""
    marker = _verified_marker(text, signature, principal, keys, namespace)
    if marker is not None and marker.is_file() and _trusted(marker):
        return True
    ok = _ssh_verify(text, signature, principal, keys, namespace)
    if ok and marker is not None:
        try:
            marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            marker.touch(mode=0o600)
        except OSError:
            pass  # only slower next time
    return ok


def _verified_marker(text: str, signature: str, principal: str, keys: tuple[str, ...], namespace: str) -> Path | None:
    from reconciler.desired.schemacache import cache_dir

    directory = cache_dir()
    if directory is None:
        return None
    digest = hashlib.sha256(json.dumps([namespace, principal, sorted(keys), text, signature],
                                       ensure_ascii=False).encode("utf-8", "surrogateescape")).hexdigest()
    return directory.parent / "verified" / digest


def _trusted(path: Path) -> bool:
    from reconciler.desired.schemacache import _trusted as ours

    try:
        return ours(path)
    except OSError:
        return False


def _ssh_verify(text: str, signature: str, principal: str, keys: tuple[str, ...], namespace: str) -> bool:
    # The principal is matched as a pattern list by ssh-keygen: quote it, and refuse what a
    # quoted pattern cannot hold.  Keys are re-written from their parsed parts only.
    if any(c in principal for c in '"\\*?,!\n\r\t ') or not principal or not keys:
        return False
    with tempfile.TemporaryDirectory(prefix="reconciler-verify-") as tmp:
        signers, sig = Path(tmp) / "allowed_signers", Path(tmp) / "signature"
        signers.write_text("".join(f'"{principal}" namespaces="{namespace}" {k}\n' for k in keys), encoding="utf-8")
        sig.write_bytes(signature.encode("ascii", "replace"))
        try:
            done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", principal,
                                   "-n", namespace, "-s", str(sig)],
                                  input=text.encode("utf-8", "surrogateescape"), capture_output=True, timeout=30,
                                  env={**os.environ, "LC_ALL": "C"})
        except FileNotFoundError:
            raise SignatureError(_("ssh-keygen is not installed: signatures cannot be verified")) from None
        except (subprocess.TimeoutExpired, UnicodeError, OSError):
            return False
    return done.returncode == 0


def read_notes(repo) -> dict[str, list[Signed | str]]:
    """Every signed approval in the notes ref, by the commit it is attached to (its base).
    Lines that do not parse are kept as strings: the plan says why they do not count."""
    try:
        listing = repo.git.notes("--ref", NOTES_REF, "list")
    except Exception:  # no notes ref yet
        return {}
    found: dict[str, list[Signed | str]] = {}
    for row in listing.splitlines():
        blob, _sep, commit = row.partition(" ")
        stream = repo.odb.stream(bytes.fromhex(blob))
        text = stream.read(min(stream.size, 1 << 20)).decode("utf-8", "replace")
        lines = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
        unreadable = 0
        for line in lines:
            try:
                found.setdefault(commit, []).append(Signed.parse_line(line))
            except (ValueError, TypeError) as exc:
                unreadable += 1
                if unreadable <= UNREADABLE_SHOWN:
                    # The parser's reason is a Message: kept as such, the plan shows it in its language.
                    why = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
                    found.setdefault(commit, []).append(lazy("unreadable approval line on {commit}: {error}",
                                                             commit=commit[:10], error=why))
        if unreadable > UNREADABLE_SHOWN:
            found.setdefault(commit, []).append(lazy_n("{n} more unreadable approval line on {commit}",
                                                       "{n} more unreadable approval lines on {commit}",
                                                       unreadable - UNREADABLE_SHOWN, commit=commit[:10]))
    return found


def attach(repo, signed: Signed) -> None:
    """Add the signature to its base commit's note (kept if already there)."""
    base = signed.statement.base
    try:
        current = repo.git.notes("--ref", NOTES_REF, "show", base)
    except Exception:
        current = ""
    if signed.line() in current.splitlines():
        return
    repo.git.notes("--ref", NOTES_REF, "add", "-f", "-m", (current.rstrip("\n") + "\n" + signed.line()).strip(), base)


def push(repo, remote: str, attempts: int = 3) -> None:
    """Push the approvals ref, merging what others pushed meanwhile (lines sort and merge)."""
    for _attempt in range(attempts):
        try:
            repo.git.fetch(remote, f"+{NOTES_REF}:refs/notes/reconciler-approvals-remote")
            repo.git.notes("--ref", NOTES_REF, "merge", "-s", "cat_sort_uniq", "refs/notes/reconciler-approvals-remote")
        except Exception:  # the remote has none yet
            pass
        try:
            repo.git.push(remote, f"{NOTES_REF}:{NOTES_REF}")
            return
        except Exception as exc:  # someone pushed between our fetch and push: again
            last = exc
    # A remote given as a URL may carry a token (https://oauth2:TOKEN@host/...): never shown.
    raise SignatureError(redacted(_("could not push {ref} to {remote}: {error}", ref=NOTES_REF, remote=remote,
                                    error=last)))


def redacted(text: str) -> str:
    """A remote's URL or Git's message about it, with any user:token before the host hidden."""
    return re.sub(r"//[^/@\s]+@", "//***@", text)
