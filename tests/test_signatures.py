"""Approvals are signatures (issue 12): each way an attacker with push rights could forge or
reuse one, against real Git repositories, real `ssh-keygen` signatures and the engine with fake
targets.  Every attack ends with the change not approved and a reason that says why."""
from __future__ import annotations

import subprocess

import git
import pytest
from conftest import (APPROVER_1, APPROVER_2, REQUESTER, UNIT_HEAD, key_of, public_key_of, run_cli,
                      sign_approvals, trailers)
from fakes import Fakes
from forge_double import ForgeDouble

from reconciler.approval.approve import approval_statement, approve
from reconciler.approval.signatures import NOTES_REF, Signed, Statement, attach, sign

GITHUB = ("GitHub", "noreply@github.com")


def verdict(fakes: Fakes, key: str = "SSM-000002") -> tuple[bool, str]:
    found = {c.key: (c.approved, c.approval.reason) for c in fakes.plan().changes if c.target == "a-first"}
    return found[key]


def landed_first(fakes: Fakes) -> None:
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()


def main_sha(fakes: Fakes) -> str:
    return fakes.repo.git.heads.main.commit.hexsha


def feature(fakes: Fakes, name: str, *keys: str, commits: int = 1) -> str:
    """A pull request branch off main adding people; main is checked out again."""
    repo = fakes.repo.git
    branch = repo.create_head(name, repo.heads.main.commit)
    branch.checkout()
    fakes.add(*keys)
    fakes.repo.write()
    repo.git.add("-A")
    for i in range(commits):
        repo.index.commit(f"Alta {i + 1}", author=git.Actor(*REQUESTER), committer=git.Actor(*REQUESTER))
    repo.heads.main.checkout()
    return branch.commit.hexsha


def merge(fakes: Fakes, head: str, message: str = "Merge pull request #9 from salud/alta") -> str:
    repo = fakes.repo.git
    repo.git.merge("--no-ff", "--no-edit", head)
    repo.git.commit("--amend", "-m", message)
    return main_sha(fakes)


# -- signatures that do not count -------------------------------------------------------------

def test_trailers_without_signatures_approve_nothing(fakes: Fakes):
    landed_first(fakes)
    fakes.add("SSM-000002")
    fakes.repo.squash_merge("Alta", signed=False)  # a squash message with two Approved-by trailers
    approved, reason = verdict(fakes)
    assert not approved and "without a signed approval" in reason and "trailers are text anyone can write" in reason


def test_a_signature_with_a_key_the_policy_does_not_list_for_that_approver_is_refused(fakes: Fakes):
    landed_first(fakes)
    base = main_sha(fakes)
    fakes.add("SSM-000002")
    head = fakes.repo.squash_merge("Alta", signed=False)
    # The attacker signs in Marta's name with a key of their own.
    approve(fakes.repo.git, base, head, APPROVER_1[1], key_of("atacante@evil.example"))
    approved, reason = verdict(fakes)
    assert not approved and f"{APPROVER_1[0]}'s signature does not verify against the keys" in reason


def test_a_key_added_to_the_policy_in_the_same_pull_request_does_not_count(fakes: Fakes):
    landed_first(fakes)
    base = main_sha(fakes)
    fakes.repo.policy["approvers"][0]["keys"] = [public_key_of("atacante@evil.example")]
    fakes.add("SSM-000002")
    head = fakes.repo.squash_merge("Alta y una llave nueva para Marta", signed=False)
    approve(fakes.repo.git, base, head, APPROVER_1[1], key_of("atacante@evil.example"))
    approved, reason = verdict(fakes)
    assert not approved and "does not verify" in reason  # judged with the keys in force at the base


def test_a_tampered_statement_or_garbage_in_the_notes_does_not_verify(fakes: Fakes):
    landed_first(fakes)
    base = main_sha(fakes)
    fakes.add("SSM-000002")
    head = fakes.repo.squash_merge("Alta", signed=False)
    good = sign(approval_statement(fakes.repo.git, base, head, APPROVER_2[1]), key_of(APPROVER_2))
    # Marta's name on Raúl's signature: the statement no longer matches what was signed.
    text = good.text.replace(APPROVER_2[1], APPROVER_1[1])
    attach(fakes.repo.git, Signed(Statement.parse(text), text, good.signature))
    fakes.repo.git.git.notes("--ref", NOTES_REF, "append", "-m", "reconciler-approval-v1 !!! basura", base)
    approved, reason = verdict(fakes)
    assert not approved and "does not verify" in reason and "unreadable approval line" in reason


def test_the_requester_signing_their_own_pull_request_does_not_count(fakes: Fakes):
    landed_first(fakes)
    fakes.add("SSM-000002")
    fakes.repo.squash_merge("Alta", requester=APPROVER_1, approvers=(APPROVER_1,))
    approved, reason = verdict(fakes)
    assert not approved and f"{APPROVER_1[0]} requested the change and cannot approve it" in reason


def test_an_author_of_any_commit_of_the_branch_is_a_requester(fakes: Fakes):
    """The branch has a commit by Raúl and one by José: Raúl cannot approve it."""
    landed_first(fakes)
    base = main_sha(fakes)
    repo = fakes.repo.git
    branch = repo.create_head("alta", base)
    branch.checkout()
    fakes.add("SSM-000002")
    fakes.repo.write()
    repo.git.add("-A")
    repo.index.commit("Alta", author=git.Actor(*APPROVER_2), committer=git.Actor(*APPROVER_2))
    (fakes.repo.root / "README").write_text("x")
    repo.git.add("-A")
    repo.index.commit("Nota", author=git.Actor(*REQUESTER), committer=git.Actor(*REQUESTER))
    repo.heads.main.checkout()
    sign_approvals(repo, base, branch.commit.hexsha, (APPROVER_2,))
    merge(fakes, branch.commit.hexsha)
    approved, reason = verdict(fakes)
    assert not approved and f"{APPROVER_2[0]} requested the change" in reason


# -- signatures used for what they did not approve --------------------------------------------

def test_a_branch_updated_after_its_approval_is_not_covered(fakes: Fakes):
    landed_first(fakes)
    base = main_sha(fakes)
    head = feature(fakes, "alta", "SSM-000002")
    sign_approvals(fakes.repo.git, base, head, (APPROVER_1,))
    repo = fakes.repo.git
    repo.heads.alta.checkout()
    fakes.add("SSM-000003")  # pushed to the branch after the approval
    fakes.repo.write()
    repo.git.add("-A")
    repo.index.commit("Y otra alta", author=git.Actor(*REQUESTER), committer=git.Actor(*REQUESTER))
    repo.heads.main.checkout()
    merge(fakes, repo.heads.alta.commit.hexsha)
    assert not verdict(fakes, "SSM-000002")[0] and not verdict(fakes, "SSM-000003")[0]


def test_an_evil_merge_commit_adds_nothing_approved(fakes: Fakes):
    """The merge commit of an approved branch also adds a person: its tree is not the clean
    merge, so the approval covers none of it."""
    landed_first(fakes)
    base = main_sha(fakes)
    head = feature(fakes, "alta", "SSM-000002")
    sign_approvals(fakes.repo.git, base, head, (APPROVER_1,))
    repo = fakes.repo.git
    repo.git.merge("--no-ff", "--no-commit", head)
    fakes.add("SSM-000003")
    fakes.repo.write()
    repo.git.add("-A")
    repo.git.commit("-m", "Merge pull request #9 from salud/alta")
    approved, reason = verdict(fakes, "SSM-000003")
    assert not approved and "without a signed approval" in reason
    assert not verdict(fakes, "SSM-000002")[0]  # the same merge wrote it: no stretch covers it


def test_replaying_an_old_approval_after_the_access_was_revoked_covers_nothing(fakes: Fakes):
    """Approved alta, approved baja, then the old approved branch merged again (or its tree
    pushed again): the resurrected person is the new commit's, and no signature covers it."""
    landed_first(fakes)
    base = main_sha(fakes)
    head = feature(fakes, "alta", "SSM-000002")
    sign_approvals(fakes.repo.git, base, head, (APPROVER_1,))
    merge(fakes, head)
    assert verdict(fakes)[0]
    fakes.repo.remove("SSM-000002")
    fakes.repo.squash_merge("Baja de SSM-000002", approvers=(APPROVER_1,))
    repo = fakes.repo.git
    # A merge commit naming the old head as its second parent, with the old tree.
    old_tree = repo.commit(head).tree.hexsha
    again = repo.git.commit_tree(old_tree, "-p", main_sha(fakes), "-p", head, "-m", "Merge pull request #9 again")
    repo.git.update_ref("refs/heads/main", again)
    repo.git.reset("--hard", again)
    approved, reason = verdict(fakes)
    assert not approved and f"commit {again[:10]}" in reason and "without a signed approval" in reason
    # The same tree as a plain commit straight after: not the stretch the approval named.
    repo.git.reset("--hard", "HEAD~1")
    replay = repo.git.commit_tree(old_tree, "-p", main_sha(fakes), "-m", "Restaurar")
    repo.git.update_ref("refs/heads/main", replay)
    repo.git.reset("--hard", replay)
    assert not verdict(fakes)[0]


def test_an_approval_onto_a_base_that_is_not_on_main_covers_nothing(fakes: Fakes):
    landed_first(fakes)
    head = feature(fakes, "alta", "SSM-000002", commits=2)
    # Signed onto the branch's own first commit, not onto main.
    sign_approvals(fakes.repo.git, f"{head}~1", head, (APPROVER_1,))
    merge(fakes, head)
    assert not verdict(fakes)[0]


# -- how approved pull requests land -----------------------------------------------------------

@pytest.mark.parametrize("how, commits", [("merge commit", 2), ("fast-forward", 1), ("rebase", 1)])
def test_each_way_a_pull_request_lands_is_covered_by_its_approval(fakes: Fakes, how: str, commits: int):
    landed_first(fakes)
    base = main_sha(fakes)
    head = feature(fakes, "alta", "SSM-000002", commits=commits)
    sign_approvals(fakes.repo.git, base, head, (APPROVER_1,))
    repo = fakes.repo.git
    if how == "merge commit":
        merge(fakes, head)
    elif how == "fast-forward":
        repo.git.merge("--ff-only", head)
    elif how == "rebase":  # the forge rewrites the commits (new committer date, same trees)
        repo.git.cherry_pick("--allow-empty", "--keep-redundant-commits", f"{base}..{head}", env={"GIT_COMMITTER_DATE": "2026-12-01T10:00:00"})
    approved, reason = verdict(fakes)
    assert approved, reason


@pytest.mark.parametrize("how", ["fast-forward", "rebase"])
def test_a_branch_of_several_commits_lands_approved_only_as_a_merge_or_a_squash(fakes: Fakes, how: str):
    """Blame credits each line to one commit of a fast-forwarded or rebased branch: a line one
    commit drops and the next puts back (a grant pushed before, unapproved) would pass as
    reviewed.  So several commits landed that way are not covered."""
    landed_first(fakes)
    base = main_sha(fakes)
    repo = fakes.repo.git
    head = feature(fakes, "alta", "SSM-000002")
    repo.heads.alta.checkout()
    (fakes.repo.root / "NOTAS.md").write_text("segunda parte\n", encoding="utf-8")
    repo.git.add("-A")
    head = repo.index.commit("Notas", author=git.Actor(*REQUESTER), committer=git.Actor(*REQUESTER)).hexsha
    repo.heads.main.checkout()
    sign_approvals(repo, base, head, (APPROVER_1,))
    if how == "fast-forward":
        repo.git.merge("--ff-only", head)
    else:
        repo.git.cherry_pick("--allow-empty", "--keep-redundant-commits", f"{base}..{head}",
                             env={"GIT_COMMITTER_DATE": "2026-12-01T10:00:00"})
    approved, reason = verdict(fakes)
    assert not approved and "without a signed approval" in reason


def test_an_approval_made_before_main_moved_is_made_again_on_the_new_main(fakes: Fakes):
    """Another pull request landed first: the approval names the old main, which is no longer
    the merge's first parent.  Signing again onto the new main (the branch merges cleanly)
    covers the merge."""
    landed_first(fakes)
    base = main_sha(fakes)
    head = feature(fakes, "alta", "SSM-000002")
    sign_approvals(fakes.repo.git, base, head, (APPROVER_1,))
    repo = fakes.repo.git
    (fakes.repo.root / "NOTAS.md").write_text("otra solicitud\n", encoding="utf-8")
    repo.git.add("NOTAS.md")
    other = repo.index.commit("Notas (#8)", author=git.Actor(*REQUESTER), committer=git.Actor(*GITHUB))
    sign_approvals(repo, base, other.hexsha, (APPROVER_2,))
    sign_approvals(repo, other.hexsha, head, (APPROVER_1,))  # again, onto the new main
    merge(fakes, head)
    approved, reason = verdict(fakes)
    assert approved, reason


# -- the merge bot ---------------------------------------------------------------------------------

@pytest.fixture
def forge():
    double = ForgeDouble("github", "salud/identidades")
    yield double
    double.close()


def bot_policy(fakes: Fakes) -> None:
    fakes.repo.policy["bots"] = [{"name": "merge-bot", "key": public_key_of("merge-bot"), "forge": "github"}]
    for approver, login in zip(fakes.repo.policy["approvers"], ("marta-avila", "raul-pena", "ana-ordonez", "jnunez")):
        approver["forge"] = {"github": login}


def bot_merged(fakes: Fakes, forge: ForgeDouble) -> tuple[str, str, str]:
    """Pull request #9 (SSM-000002's alta) merged, Marta's review of its head on the forge:
    (base, head, the merge commit)."""
    bot_policy(fakes)
    landed_first(fakes)
    base = main_sha(fakes)
    head = feature(fakes, "alta", "SSM-000002")
    landed = merge(fakes, head)
    forge.merged(9, landed, head, "jnunez", [("marta-avila", "APPROVED", head)])
    return base, head, landed


def attest(fakes: Fakes, forge: ForgeDouble, before: str, after: str) -> tuple[int, str, str]:
    return run_cli("--repo", str(fakes.repo.root), "attest", "--forge", "github", "--repository", "salud/identidades",
                   "--api", forge.url, "--before", before, "--after", after, "--key", str(key_of("merge-bot")),
                   "--name", "merge-bot")


def test_the_bot_attests_reviews_of_the_exact_head_that_merged(fakes: Fakes, forge: ForgeDouble, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "token-de-prueba")
    bot_policy(fakes)
    landed_first(fakes)
    base = main_sha(fakes)
    head = feature(fakes, "alta", "SSM-000002", "SSM-000003", commits=2)
    first = fakes.repo.git.commit(f"{head}~1").hexsha
    landed = merge(fakes, head)
    forge.merged(9, landed, head, "jnunez", [("marta-avila", "APPROVED", head),
                                             ("raul-pena", "APPROVED", first),  # an earlier head: does not count
                                             ("jnunez", "APPROVED", head)])  # the author
    code, out, err = attest(fakes, forge, base, landed)
    assert code == 0 and "Attested #9" in out and "approved by jnunez, marta-avila" in out, err
    assert all(h.get("Authorization") == "Bearer token-de-prueba" for _, h in forge.requests)
    approved, reason = verdict(fakes)
    assert approved and reason == f"approved by {APPROVER_1[0]}"
    # Next pull request: only its author approved the head, Raúl an earlier one.
    base = landed
    head = feature(fakes, "otra", "SSM-000004", commits=2)
    landed = merge(fakes, head, "Merge pull request #10 from salud/otra")
    earlier = fakes.repo.git.commit(f"{head}~1").hexsha
    forge.merged(10, landed, head, "jnunez", [("raul-pena", "APPROVED", earlier), ("jnunez", "APPROVED", head)])
    code, out, err = attest(fakes, forge, base, landed)
    assert code == 0 and "Attested #10" in out and "approved by jnunez." in out
    approved, reason = verdict(fakes, "SSM-000004")
    assert not approved and f"{REQUESTER[0]} requested the change and cannot approve it" in reason


def test_the_bot_refuses_a_rewritten_branch_and_attests_no_direct_push(fakes: Fakes, forge: ForgeDouble):
    bot_policy(fakes)
    landed_first(fakes)
    base = main_sha(fakes)
    fakes.add("SSM-000002")
    pushed = fakes.repo.direct_push("Alta directa")
    code, out, err = attest(fakes, forge, base, pushed)
    assert code == 0 and "Not attested" in err and not verdict(fakes)[0]
    code, out, err = attest(fakes, forge, pushed, base)  # backwards
    assert code == 1 and "does not follow" in err


def test_an_attestation_by_a_key_the_policy_does_not_list_is_refused(fakes: Fakes, forge: ForgeDouble):
    base, head, landed = bot_merged(fakes, forge)
    code, out, err = run_cli("--repo", str(fakes.repo.root), "attest", "--forge", "github", "--repository",
                             "salud/identidades", "--api", forge.url, "--before", base, "--after", landed,
                             "--key", str(key_of("otro-bot")), "--name", "merge-bot")
    assert code == 0
    approved, reason = verdict(fakes)
    assert not approved and "bot merge-bot's attestation does not verify" in reason


# -- the command and the format ------------------------------------------------------------------

def test_reconciler_approve_signs_what_ssh_keygen_verifies(fakes: Fakes, tmp_path):
    landed_first(fakes)
    head = feature(fakes, "alta", "SSM-000002")
    code, out, err = run_cli("--repo", str(fakes.repo.root), "approve", "alta", "--base", "main", "--as",
                             APPROVER_1[1], "--key", str(key_of(APPROVER_1)), "--yes")
    assert code == 0 and f"Signed: {APPROVER_1[1]} approves {head[:10]}" in out, err
    [line] = fakes.repo.git.git.notes("--ref", NOTES_REF, "show", main_sha(fakes)).splitlines()
    signed = Signed.parse_line(line)
    assert signed.statement.requesters == (REQUESTER[1],)
    # An auditor's check with OpenSSH alone, outside the product.
    (tmp_path / "allowed").write_text(f'{APPROVER_1[1]} namespaces="reconciler-approval" {public_key_of(APPROVER_1)}\n')
    (tmp_path / "sig").write_text(signed.signature)
    check = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I", APPROVER_1[1],
                            "-n", "reconciler-approval", "-s", str(tmp_path / "sig")],
                           input=signed.text.encode(), capture_output=True)
    assert check.returncode == 0, check.stderr
    merge(fakes, head)
    assert verdict(fakes)[0]


def test_approve_warns_when_the_signer_or_key_would_not_count(fakes: Fakes):
    landed_first(fakes)
    feature(fakes, "alta", "SSM-000002")
    code, out, err = run_cli("--repo", str(fakes.repo.root), "approve", "alta", "--base", "main", "--as",
                             "nadie@x.mx", "--key", str(key_of("nadie@x.mx")), "--yes")
    assert code == 0 and "nadie@x.mx is not an approver" in err
    code, out, err = run_cli("--repo", str(fakes.repo.root), "approve", "alta", "--base", "main", "--as",
                             APPROVER_1[1], "--key", str(key_of("nadie@x.mx")), "--yes")
    assert code == 0 and "does not list the key" in err


@pytest.mark.parametrize("text", [
    "reconciler approval statement v1\nkind approval\n",  # missing fields
    "reconciler approval statement v1\nkind approval\nsigner a@x\nbase 1\nhead 2\ntree 3\nsigned-at t\n",
    "reconciler approval statement v1\nkind approval\nkind approval\n",
    "otra cosa\n",
])
def test_malformed_statements_are_refused(text):
    with pytest.raises((ValueError, TypeError)):
        Statement.parse(text)


def test_one_key_listed_for_two_approvers_is_refused(repo):
    repo.policy["approvers"][1]["keys"] = [public_key_of(APPROVER_1)]
    repo.add("HG-CUERNAVACA")
    repo.write()
    code, out, err = run_cli("--repo", str(repo.root), "validate")
    assert code == 1 and "approvers[1].keys[0]" in err and "two approvers with one key are one person" in err


def test_trailers_helper_still_writes_what_forges_write():
    assert trailers(UNIT_HEAD) == f"Approved-by: {UNIT_HEAD[0]} <{UNIT_HEAD[1]}>\n"


# -- what blame alone would not show ------------------------------------------------------------

def test_lines_removed_without_approval_are_not_covered_by_an_older_approval(fakes: Fakes):
    """A direct push that only deletes a line of an entry writes no line blame could show.
    Here the approved entry spells a name over two lines; deleting the second changes the name
    the target holds: still a change nobody approved."""
    fakes.add("SSM-000002")
    fakes.repo.find("SSM-000002")["given_names"] = "Zoé Alejandra"
    fakes.repo.write()
    users = fakes.repo.root / "desired_state" / "users" / "hg-cuernavaca.yaml"
    users.write_text(users.read_text(encoding="utf-8").replace("given_names: Zoé Alejandra",
                                                               "given_names: Zoé\n    Alejandra"), encoding="utf-8")
    repo = fakes.repo.git
    fakes.repo._bootstrap()
    base = main_sha(fakes)
    repo.git.add("-A")
    head = repo.index.commit("Alta (#1)", author=git.Actor(*REQUESTER), committer=git.Actor(*GITHUB)).hexsha
    sign_approvals(repo, base, head, (APPROVER_1,))
    fakes.apply()
    users.write_text(users.read_text(encoding="utf-8").replace("\n    Alejandra", ""), encoding="utf-8")
    repo.git.add("-A")
    pushed = repo.index.commit("Quito un nombre", author=git.Actor(*REQUESTER), committer=git.Actor(*REQUESTER)).hexsha
    found = {c.key: (c.approved, c.approval.reason) for c in fakes.plan().changes if c.target == "a-first"}
    approved, reason = found["SSM-000002"]
    assert not approved and f"commit {pushed[:10]} was pushed straight to the protected branch" in reason


def test_a_forge_answer_of_the_wrong_shape_attests_nothing(fakes: Fakes, forge: ForgeDouble):
    base, head, landed = bot_merged(fakes, forge)
    forge.answers[f"/repos/salud/identidades/pulls/9/reviews"] = [{"user": None, "state": "APPROVED",
                                                                  "commit_id": head}]
    code, out, err = attest(fakes, forge, base, landed)
    assert code == 0 and "approved by nobody" in out  # a deleted account approves nothing
    forge.answers[f"/repos/salud/identidades/commits/{landed}/pulls"] = [{"merge_commit_sha": landed,
                                                                         "merged_at": "x", "number": 9}]
    code, out, err = attest(fakes, forge, base, landed)
    assert code == 1 and "not shaped as its documentation says" in err


def test_verified_signatures_are_remembered_only_in_a_cache_the_user_alone_can_write(tmp_path, monkeypatch):
    from reconciler.approval.signatures import _verified_marker, ssh_verify, ssh_sign

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RECONCILER_SCHEMA_CACHE", raising=False)
    key, public = key_of(APPROVER_1), (public_key_of(APPROVER_1),)
    good = ssh_sign("texto\n", key)
    assert ssh_verify("texto\n", good, "a@x.mx", public)
    assert _verified_marker("texto\n", good, "a@x.mx", public, "reconciler-approval").is_file()
    # A forged signature is never remembered; a marker planted where others can write is ignored.
    forged = ssh_sign("otro texto\n", key_of("atacante@evil.example"))
    assert not ssh_verify("otro texto\n", forged, "a@x.mx", public)
    planted = _verified_marker("otro texto\n", forged, "a@x.mx", public, "reconciler-approval")
    assert not planted.exists()
    planted.touch()
    planted.parent.chmod(0o777)
    assert not ssh_verify("otro texto\n", forged, "a@x.mx", public)


def test_approve_without_a_terminal_needs_yes(fakes: Fakes):
    landed_first(fakes)
    feature(fakes, "alta", "SSM-000002")
    before = fakes.repo.git.git.for_each_ref(NOTES_REF)
    code, out, err = run_cli("--repo", str(fakes.repo.root), "approve", "alta", "--base", "main", "--as",
                             APPROVER_1[1], "--key", str(key_of(APPROVER_1)))
    assert code == 1 and "approve needs --yes when it is not run from a terminal" in err
    assert fakes.repo.git.git.for_each_ref(NOTES_REF) == before  # nothing signed


def test_a_failed_push_of_the_approvals_never_shows_a_token_in_the_remote_url(fakes: Fakes):
    from reconciler.approval.signatures import SignatureError, push

    landed_first(fakes)
    with pytest.raises(SignatureError) as failed:
        push(fakes.repo.git, "https://oauth2:glpat-secreto@127.0.0.1:1/salud/identidades.git", attempts=1)
    assert "glpat-secreto" not in str(failed.value) and "//***@127.0.0.1" in str(failed.value)


def test_a_pushed_approval_names_its_remote_without_the_token(fakes: Fakes, tmp_path):
    """The remote as given holds a token (a CI variable): the success message must not echo it."""
    import git as gitlib

    landed_first(fakes)
    feature(fakes, "alta", "SSM-000002")
    bare = tmp_path / "remote.git"
    gitlib.Repo.init(bare, bare=True)
    url = "https://oauth2:glpat-secreto@gitlab.example/salud/identidades.git"
    fakes.repo.git.git.config(f"url.{bare}.insteadOf", url)  # Git itself reaches the local remote
    code, out, err = run_cli("--repo", str(fakes.repo.root), "approve", "alta", "--base", "main", "--as",
                             APPROVER_1[1], "--key", str(key_of(APPROVER_1)), "--yes", "--push", url)
    assert code == 0, err
    assert "glpat-secreto" not in out + err and "Pushed refs/notes/reconciler-approvals to https://***@gitlab" in out


def test_a_statement_with_a_control_character_is_not_read():
    """A signer's name with an escape sequence would reach a terminal through plans and audit
    verify: such a statement is unreadable, whatever its signature."""
    from reconciler.approval.signatures import Statement

    good = Statement.parse(Statement("approval", "ana@salud.lab", "a" * 40, "b" * 40, "c" * 40,
                                     "2026-12-02T07:00:00+00:00").text())
    assert good.signer == "ana@salud.lab"
    for bad in ("ana\x1b[2J@salud.lab", "ana\u202e@salud.lab", "ana\x85@salud.lab"):
        text = good.text().replace("ana@salud.lab", bad)
        with pytest.raises(ValueError, match="unreadable statement line"):
            Statement.parse(text)
