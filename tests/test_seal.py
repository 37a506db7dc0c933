"""What apply leaves in Git counts only when the apply key signed it (issue 12): the applied
refs and the audit notes a remote hands back, tried as an attacker with push rights would."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from conftest import APPROVER_1, key_of, person, public_key_of, run_cli
from fakes import FIRST, SECOND, TARGET_CLASS, UNIT, Fakes
from test_engine import ResettingFake
from test_signatures import landed_first

from reconciler.approval.approve import approve
from reconciler.audit import trail
from reconciler.audit.seal import ApplyKey, applied_tag
from reconciler.errors import ReconcilerError
from reconciler.providers import registry
from reconciler.providers.registry import Kind
from reconciler.run.engine import APPLIED_REF


def test_the_applied_ref_is_a_tag_git_verify_tag_accepts(fakes: Fakes, tmp_path):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    ref = APPLIED_REF.format(target="a-first")
    assert fakes.repo.git.git.cat_file("-t", ref) == "tag"
    root = fakes.repo.git.git.rev_list("--max-parents=0", "HEAD")
    assert f"target a-first\ncommit {fakes.head()}\nroot {root}\n" in fakes.repo.git.git.cat_file("tag", ref)
    public = ApplyKey.from_env().public
    (tmp_path / "allowed").write_text(f'reconciler-apply namespaces="git" {public}\n')
    check = subprocess.run(["git", "-C", str(fakes.repo.root), "-c", f"gpg.ssh.allowedSignersFile={tmp_path}/allowed",
                            "verify-tag", ref], capture_output=True, text=True)
    assert check.returncode == 0 and 'Good "git" signature' in check.stderr


def test_a_moved_or_forged_applied_ref_turns_the_incremental_plan_full(fakes: Fakes):
    """Moving the applied ref past a baja would make an incremental apply skip it."""
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge()
    fakes.apply()
    fakes.repo.remove("SSM-000002")
    fakes.repo.squash_merge("Baja")
    ref = APPLIED_REF.format(target="a-first")
    fakes.repo.git.git.update_ref(ref, fakes.head())  # a plain ref, as anyone can push
    plan = fakes.plan(since_applied=True)
    assert plan.scope == f"full ({ref} is not signed by the apply key)"
    assert [c.key for c in plan.changes if c.target == "a-first"] == ["SSM-000002"]
    forged = applied_tag(fakes.repo.git, ApplyKey.from_env({"RECONCILER_APPLY_KEY": str(key_of("otra-llave"))}),
                         "a-first", fakes.head())
    fakes.repo.git.git.update_ref(ref, forged)
    assert fakes.plan(since_applied=True).scope == f"full ({ref} is not signed by the apply key)"
    # Signed by the apply key, but for the other target: it does not count here either.
    fakes.repo.git.git.update_ref(ref, applied_tag(fakes.repo.git, ApplyKey.from_env(), "b-second", fakes.head()))
    assert fakes.plan(since_applied=True).scope == f"full ({ref} is signed for another target or commit)"


def test_deleting_the_applied_ref_does_not_open_the_way_back(fakes: Fakes):
    """The runner's own trail remembers what it applied: an old commit stays refused."""
    before = fakes.baja_applied()
    for target in ("a-first", "b-second"):
        fakes.repo.git.git.update_ref("-d", APPLIED_REF.format(target=target))
    code, _, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                           "--ref", before, "--auto-approve")
    assert code == 1 and "is behind" in err
    assert sorted(fakes.state("a-first")) == ["SSM-000001"]


def _reset_with_a_forged_note(fakes: Fakes, folio: str) -> tuple[str, dict]:
    """A password reset landed on main, and an unsealed note claiming it was already applied:
    (the commit, the forged record)."""
    registry.register(Kind(FIRST, TARGET_CLASS, "test_engine:ResettingFake"), before=SECOND)
    fakes.repo.add(UNIT, person("SSM-000001", password_resets=[
        {"folio": folio, "date": "2026-10-01", "requested_by": "Dra. Ana Lucía Ordóñez Peña"}]))
    head = fakes.repo.squash_merge()
    forged = {"kind": "change", "target": "a-first", "object_kind": "password-reset", "folio": folio,
              "status": "applied", "seq": 1}
    fakes.repo.git.git.notes("--ref", trail.NOTES_REF, "add", "-m", json.dumps(forged), head)
    return head, forged


def test_a_forged_note_never_makes_a_password_reset_count_as_done(fakes: Fakes):
    head, forged = _reset_with_a_forged_note(fakes, "SSM/STI/2026/R-1")
    ResettingFake.told.clear()
    fakes.plan()
    assert ResettingFake.told == [(False, [])]  # not told it was done: the reset is still planned
    # The same record sealed by the apply key counts (as a real run's does).
    fakes.repo.git.git.notes("--ref", trail.NOTES_REF, "remove", head)
    trail.attach_note(fakes.repo.git, head, [forged], ApplyKey.from_env())
    ResettingFake.told.clear()
    fakes.plan()
    assert ResettingFake.told == [(False, ["SSM/STI/2026/R-1"])]


def test_audit_verify_from_a_clone_checks_seals_and_approvals(fakes: Fakes, monkeypatch):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge(approvers=(APPROVER_1,))
    fakes.apply()
    # An auditor's clone: no private key, only the apply key's public half.
    monkeypatch.delenv("RECONCILER_APPLY_KEY")
    monkeypatch.setenv("RECONCILER_APPLY_PUBLIC_KEY", f"{key_of('reconciler-apply')}.pub")
    argv = ("--repo", str(fakes.repo.root), "audit", "verify", "--from-git")
    code, out, err = run_cli(*argv)
    assert code == 0, out + err
    assert "every run sealed by the apply key" in out
    assert "1 approval signature verifies against the policy in force at its base" in out
    # Rewriting the notes without the key: a record edited and its chain re-hashed.
    note = fakes.repo.git.git.notes("--ref", trail.NOTES_REF, "show", fakes.head())
    records = [json.loads(line) for line in note.splitlines() if line.startswith("{")]
    records[0]["label"] = "otra persona"
    records[0]["hash"] = trail.record_hash(records[0])
    fakes.repo.git.git.notes("--ref", trail.NOTES_REF, "add", "-f", "-m",
                             "\n".join(trail.canonical(r) for r in records), fakes.head())
    code, out, err = run_cli(*argv)
    assert code == 1 and "noted records are not sealed by the apply key" in out


def apply_cli(fakes: Fakes, inventory):
    return run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(inventory), "--auto-approve")


def test_a_force_pushed_history_with_its_own_root_is_refused_when_the_root_is_pinned(fakes: Fakes, monkeypatch):
    """A new history with a root of its own (its own key in Marta's name, a fresh audit_dir so
    the runner's trail remembers nothing) has no rules in force when the runner pins the
    repository's first commit (RECONCILER_TRUST_ROOT)."""
    inventory = fakes.inventory_in_repo()  # inventory/fakes.yaml, landed with two approvals
    monkeypatch.setenv("RECONCILER_TRUST_ROOT", fakes.repo.git.git.rev_list("--max-parents=0", "HEAD"))
    code, out, err = apply_cli(fakes, inventory)
    assert code == 0 and "SSM-000001" in fakes.state("a-first"), out + err
    repo = fakes.repo.git
    # The attacker builds a new history: a root with their own key for Marta and an inventory
    # whose audit_dir is new (so this runner's trail has no "last applied" commit) ...
    repo.git.checkout("--orphan", "evil")
    policy = yaml.safe_load((fakes.repo.root / "inventory" / "approvers.yaml").read_text())
    policy["approvers"][0]["keys"] = [public_key_of("mallory")]
    (fakes.repo.root / "inventory" / "approvers.yaml").write_text(yaml.safe_dump(policy, allow_unicode=True))
    inv = yaml.safe_load(inventory.read_text())
    for t in inv["targets"].values():
        t["audit_dir"] = str(fakes.tmp / "fresh-audit")
    inventory.write_text(yaml.safe_dump(inv))
    repo.git.add("-A")
    repo.git.rm("-r", "--cached", "-q", "desired_state")  # the root: the policy and the inventory only
    root = repo.index.commit("Política de aprobación").hexsha
    # ... then anything, "approved" by the attacker's key in Marta's name.
    fakes.add("SSM-000002")
    fakes.repo.write()
    (fakes.repo.root / "inventory" / "approvers.yaml").write_text(yaml.safe_dump(policy, allow_unicode=True))
    repo.git.add("-A")
    evil = repo.index.commit("Alta").hexsha
    approve(repo, root, evil, APPROVER_1[1], key_of("mallory"))
    # git push --force origin evil:main; git push origin --delete refs/reconciler/applied/*
    repo.git.update_ref("refs/heads/main", evil)
    repo.git.checkout("-f", "main")
    for ref in repo.git.for_each_ref("--format=%(refname)", "refs/reconciler/").split():
        repo.git.update_ref("-d", ref)
    code, out, err = apply_cli(fakes, inventory)
    assert code == 1 and "has no approved version" in err
    assert "SSM-000002" not in fakes.state("a-first")


def test_history_from_git_shows_only_sealed_records(fakes: Fakes):
    """A forged, unsealed record pushed as a note is not part of anyone's history."""
    landed_first(fakes)
    head = fakes.head()
    forged = {"kind": "change", "target": "ad", "seq": 1, "time": "2026-11-03T10:00:00+00:00",
              "movement": "baja", "object_kind": "account", "key": "SSM-000666", "label": "mallory (Mallory)",
              "status": "applied", "verified": True, "commit": head,
              "solicitud": {"pull_request": "#77", "requester": "RH <rh@salud.morelos.gob.mx>",
                            "approvers": [f"{APPROVER_1[0]} <{APPROVER_1[1]}>"], "approved_at": "2026-11-02T09:00:00+00:00"},
              "approval": {"approved": True, "reason": f"approved by {APPROVER_1[0]}"}}
    forged["prev"] = trail.GENESIS
    forged["hash"] = trail.record_hash(forged)
    fakes.repo.git.git.notes("--ref", trail.NOTES_REF, "append", "-m", json.dumps(forged), head)
    code, out, err = run_cli("--repo", str(fakes.repo.root), "history", "SSM-000666", "--from-git")
    assert "mallory" not in out and "SSM-000666" not in out.split("\n", 1)[-1]
    code, out, err = run_cli("--repo", str(fakes.repo.root), "history", "SSM-000001", "--from-git")
    assert code == 0 and "SSM-000001" in out  # the sealed records of the real run are there


def test_a_trail_naming_a_commit_this_repository_lacks_refuses_with_the_way_out(fakes: Fakes):
    """History rewritten (or another repository's trail): the runner cannot order the commit
    it last applied, so it refuses, and says how to go on when the repository was recreated."""
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    log = trail.AuditLog(fakes.audit_dir, "a-first")
    log.append("run-end", commit="1" * 40, result="complete")
    log.close()
    code, _, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                           "--auto-approve")
    assert code == 1 and "1111111111" in err and "is not in this repository" in err
    assert "move the target's audit trail aside" in err


def test_without_an_apply_key_no_note_counts_and_apply_says_nothing_is_sealed(fakes: Fakes, monkeypatch):
    """No key to check seals with: even a sealed-looking note is not believed (only this
    runner's trail counts), and an apply says its refs and notes go unsigned."""
    _reset_with_a_forged_note(fakes, "SSM/STI/2026/R-3")
    monkeypatch.delenv("RECONCILER_APPLY_KEY")
    monkeypatch.delenv("RECONCILER_APPLY_PUBLIC_KEY", raising=False)
    ResettingFake.told.clear()
    _, report = fakes.apply()
    assert ResettingFake.told[0] == (False, [])
    assert any("no apply key (RECONCILER_APPLY_KEY): the applied refs are not signed" in w for w in report.warnings)


def test_an_apply_key_variable_that_names_no_usable_key_is_an_error(tmp_path):
    with pytest.raises(ReconcilerError, match="RECONCILER_APPLY_KEY names .*no .*pub, and the key is missing"):
        ApplyKey.from_env({"RECONCILER_APPLY_KEY": str(tmp_path / "nonexistent")})
    locked = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secreto", "-f", str(locked)], check=True)
    (tmp_path / "locked.pub").unlink()
    with pytest.raises(ReconcilerError, match="has a passphrase"):
        ApplyKey.from_env({"RECONCILER_APPLY_KEY": str(locked)})
    with pytest.raises(ReconcilerError, match="RECONCILER_APPLY_PUBLIC_KEY is neither"):
        ApplyKey.from_env({"RECONCILER_APPLY_PUBLIC_KEY": str(tmp_path / "nothing.pub")})
    assert ApplyKey.from_env({}) is None
