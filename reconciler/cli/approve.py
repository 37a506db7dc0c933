"""`reconciler approve` (an approver signs a pull request) and `reconciler attest` (the merge
bot signs what the forge says was approved)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from reconciler.approval.approve import approval_statement, now
from reconciler.approval.forge import FORGES
from reconciler.approval.policy import POLICY_FILE, Policy, parse_policy
from reconciler.approval.signatures import (NOTES_REF, SignatureError, Statement, attach, public_key, push, redacted,
                                             sign)
from reconciler.cli import EXIT_ERROR, EXIT_OK
from reconciler.desired.files import blob_text
from reconciler.desired.source import branch_commit, open_repo
from reconciler.errors import ReconcilerError, plain
from reconciler.i18n import _, ngettext


def _repo(args):
    repo = open_repo(args.repo)
    if repo is None:
        raise ReconcilerError(_("{path} is not a Git repository", path=args.repo))
    return repo


def _commit(repo, ref: str) -> str:
    try:
        return repo.commit(ref).hexsha
    except Exception:
        raise ReconcilerError(_("no commit {ref!r} in {path}", ref=ref, path=repo.working_dir)) from None


def _config(repo, key: str) -> str | None:
    try:
        return repo.git.config("--get", key).strip() or None
    except Exception:
        return None


def _policy_at(repo, sha: str) -> Policy | None:
    try:
        return parse_policy(blob_text(repo.commit(sha), POLICY_FILE), POLICY_FILE)
    except Exception:  # checked properly when the change is judged; here it only warns
        return None


def _public(key: Path) -> str | None:
    """The public half of a signing key: KEY.pub, or KEY itself when it is a public key."""
    for candidate in (Path(f"{key}.pub"), key):
        try:
            found = public_key(candidate.read_text(encoding="ascii", errors="replace").strip())
        except OSError:
            continue
        if found:
            return found
    return None


def _signing_key(repo, given: Path | None) -> Path:
    if given is not None:
        return given.expanduser()
    configured = _config(repo, "user.signingkey")
    if configured and not configured.startswith("key::"):
        return Path(configured).expanduser()
    return Path("~/.ssh/id_ed25519").expanduser()


def approve(args, out: Console, err: Console) -> int:
    repo = _repo(args)
    head = _commit(repo, args.ref)
    # A branch by that name first (never a tag that shadows it), else any commit: approving a
    # direct push after the fact names its parent.
    base = branch_commit(repo, args.base) or _commit(repo, args.base)
    signer = args.signer or _config(repo, "user.email")
    if not signer:
        raise ReconcilerError(_("who signs? give --as EMAIL (or set git config user.email)"))
    key = _signing_key(repo, args.key)
    commits = repo.git.log("--no-merges", "--format=%h %an <%ae>: %s", f"{base}..{head}").splitlines()
    out.print(ngettext("Approving {ref} ({head}) onto {base} ({base_commit}): {n} commit.",
                       "Approving {ref} ({head}) onto {base} ({base_commit}): {n} commits.", len(commits),
                       ref=escape(args.ref), head=head[:10], base=escape(args.base), base_commit=base[:10]),
              markup=True)
    for line in commits[:20]:
        out.print(f"  {plain(line, None)}", markup=False)
    out.print(plain(repo.git.diff("--stat", base, head), None, keep="\n") or "  " + _("(no file changes)"),
              markup=False)
    if not repo.is_ancestor(base, head):
        err.print(_("Warning: {base} moved since this branch was made: the approval covers the change only "
                    "if it is merged with a merge commit and merges cleanly; update the branch to be sure.",
                    base=args.base), markup=False, style="yellow")
    policy = _policy_at(repo, base)
    public = _public(key)
    approver = next((a for a in policy.approvers if a.identity.key == signer.casefold()), None) if policy else None
    if approver is None:
        err.print(_("Warning: {signer} is not an approver in {file} on {base}: this approval will not count.",
                    signer=signer, file=POLICY_FILE, base=args.base), markup=False, style="yellow")
    elif public is not None and public not in approver.keys:
        err.print(_("Warning: {file} on {base} does not list the key {key} for {signer}: this approval "
                    "will not count.", file=POLICY_FILE, base=args.base, key=key, signer=signer),
                  markup=False, style="yellow")
    if not args.yes:
        if not sys.stdin.isatty():
            raise ReconcilerError(_("approve needs --yes when it is not run from a terminal: nothing was signed"))
        answer = input(_("Sign this approval as {signer} with {key}? Only 'yes' signs: ", signer=signer, key=key))
        if answer.strip() != "yes":
            out.print(_("Not signed."))
            return EXIT_ERROR
    try:
        signed = sign(approval_statement(repo, base, head, signer, args.fingerprint or ""), key)
    except SignatureError as exc:
        raise ReconcilerError(str(exc)) from None
    attach(repo, signed)
    out.print(_("Signed: {signer} approves {head} onto {base} ({ref}, on {base}).", signer=signer, head=head[:10],
                base=base[:10], ref=NOTES_REF), markup=False)
    if args.push:
        _push(repo, args.push)
        out.print(_("Pushed {ref} to {remote}.", ref=NOTES_REF, remote=redacted(args.push)), markup=False)
    return EXIT_OK


def _push(repo, remote: str) -> None:
    try:
        push(repo, remote)
    except SignatureError as exc:
        raise ReconcilerError(str(exc)) from None


def attest(args, out: Console, err: Console) -> int:
    """The merge bot: each merge the push `--before..--after` brought to the protected branch,
    as the forge reports it, signed with the bot's key."""
    repo = _repo(args)
    before, after = _commit(repo, args.before), _commit(repo, args.after)
    line = repo.git.rev_list("--first-parent", "--reverse", f"{before}..{after}").split()
    if not line or [p.hexsha for p in repo.commit(line[0]).parents[:1]] != [before]:
        raise ReconcilerError(_("{after} does not follow {before} on the first-parent line: "
                                "the protected branch was rewritten, nothing is attested",
                                after=args.after, before=args.before))
    forge = FORGES[args.forge](args.api, args.repository, os.environ.get(args.token_env))
    start, attested = before, 0
    for sha in line:
        merge = forge.merge_of(sha)
        if merge is None:
            continue  # a commit of a rebase merge that ends later, or a direct push (never attested)
        tree = _head_tree(repo, args, merge)
        statement = Statement("attestation", args.name, start, merge.head, tree, now(), landed=sha,
                              pull_request=merge.number, forge=args.forge, author=merge.author,
                              approved_by=merge.approved_by)
        try:
            attach(repo, sign(statement, args.key))
        except SignatureError as exc:
            raise ReconcilerError(str(exc)) from None
        who = ", ".join(merge.approved_by) or _("nobody")
        out.print(_("Attested {pull_request}: {start}..{end}, head {head}, approved by {approvers}.",
                    pull_request=merge.number, start=start[:10], end=sha[:10], head=merge.head[:10], approvers=who),
                  markup=False)
        start, attested = sha, attested + 1
    if start != after:
        err.print(_("Not attested: {start}..{end} (no merged pull request made those commits).",
                    start=start[:10], end=after[:10]), markup=False, style="yellow")
    if attested and args.push:
        _push(repo, args.push)
    return EXIT_OK


def _head_tree(repo, args, merge) -> str:
    """The reviewed head's tree; fetched from the forge's pull request ref if this clone lacks it."""
    try:
        return repo.commit(merge.head).tree.hexsha
    except Exception:
        pass
    ref = f"refs/pull/{merge.number[1:]}/head" if args.forge == "github" else \
        f"refs/merge-requests/{merge.number[1:]}/head"
    try:
        subprocess.run(["git", "-C", repo.working_dir, "fetch", "--quiet", args.remote, ref],
                       check=True, capture_output=True, timeout=300)
        return repo.commit(merge.head).tree.hexsha
    except Exception:
        raise ReconcilerError(_("cannot read the head {head} of {pull_request}: fetch {ref} from the "
                                "remote (--remote) first", head=merge.head[:10], pull_request=merge.number,
                                ref=ref)) from None
