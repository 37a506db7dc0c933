"""What apply leaves in Git counts only when the apply key signed it (issue 12): the applied
refs and the audit notes a remote hands back, tried as an attacker with push rights would."""
from __future__ import annotations

import json
import subprocess

from conftest import APPROVER_1, key_of, person, run_cli
from fakes import FIRST, SECOND, TARGET_CLASS, UNIT, Fakes
from test_engine import ResettingFake

from reconciler.audit import trail
from reconciler.audit.seal import ApplyKey, applied_tag
from reconciler.providers import registry
from reconciler.providers.registry import Kind
from reconciler.run.engine import APPLIED_REF


def test_the_applied_ref_is_a_tag_git_verify_tag_accepts(fakes: Fakes, tmp_path):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    ref = APPLIED_REF.format(target="a-first")
    assert fakes.repo.git.git.cat_file("-t", ref) == "tag"
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
    fakes.add("SSM-000001", "SSM-000002")
    before = fakes.repo.squash_merge("Altas")
    fakes.apply()
    fakes.repo.remove("SSM-000002")
    fakes.repo.squash_merge("Baja de SSM-000002")
    fakes.apply()
    for target in ("a-first", "b-second"):
        fakes.repo.git.git.update_ref("-d", APPLIED_REF.format(target=target))
    code, _, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                           "--ref", before, "--auto-approve")
    assert code == 1 and "is behind" in err
    assert sorted(fakes.state("a-first")) == ["SSM-000001"]


def test_a_forged_note_never_makes_a_password_reset_count_as_done(fakes: Fakes):
    registry.register(Kind(FIRST, TARGET_CLASS, "test_engine:ResettingFake"), before=SECOND)
    fakes.repo.add(UNIT, person("SSM-000001", password_resets=[
        {"folio": "SSM/STI/2026/R-1", "date": "2026-10-01", "requested_by": "Dra. Ana Lucía Ordóñez Peña"}]))
    head = fakes.repo.squash_merge()
    forged = {"kind": "change", "target": "a-first", "object_kind": "password-reset", "folio": "SSM/STI/2026/R-1",
              "status": "applied", "seq": 1}
    fakes.repo.git.git.notes("--ref", trail.NOTES_REF, "add", "-m", json.dumps(forged), head)
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
    assert "1 approval signatures verify against the policy in force at their base" in out
    # Rewriting the notes without the key: a record edited and its chain re-hashed.
    note = fakes.repo.git.git.notes("--ref", trail.NOTES_REF, "show", fakes.head())
    records = [json.loads(line) for line in note.splitlines() if line.startswith("{")]
    records[0]["label"] = "otra persona"
    records[0]["hash"] = trail.record_hash(records[0])
    fakes.repo.git.git.notes("--ref", trail.NOTES_REF, "add", "-f", "-m",
                             "\n".join(trail.canonical(r) for r in records), fakes.head())
    code, out, err = run_cli(*argv)
    assert code == 1 and "noted records are not sealed by the apply key" in out
