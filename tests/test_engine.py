"""The engine (reconciler.run.engine) with the fake provider: apply order, the deletion
budget, the lock, the audit trail, crashes, unreadable targets, verification and approvals.

No lab: each target is a JSON file (reconciler.providers.fake), and every operation the
engine asks of it is journaled, so the order across targets can be asserted.  The fake kinds
are added exactly as a real kind is: one registry entry each (the `kinds` fixture)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import POLICY, UNIT_HEAD, person, run_cli
from fakes import FIRST, PEOPLE, PROVIDER_CLASS, SECOND, TARGET_CLASS, UNIT, Fakes, converged

from reconciler.audit import trail
from reconciler.config.inventory import load_inventory
from reconciler.desired.source import at_ref
from reconciler.errors import ReconcilerError, ValidationFailed
from reconciler.plan import Movement
from reconciler.providers import registry
from reconciler.providers.contract import Capability
from reconciler.providers.fake.provider import KIND, FakeCrash, FakeObject, FakeProvider, write_state
from reconciler.providers.fake.target import FakeTarget
from reconciler.providers.registry import Kind
from reconciler.run.engine import DeletionGuard, Run
from reconciler.run.lock import TargetLocked

# -- apply order ---------------------------------------------------------------------------

def test_revocations_first_in_reverse_order_then_the_rest_in_registry_order(fakes):
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge("Altas")
    fakes.apply()
    assert fakes.ops() == [
        "a-first read - -", "b-second read - -",
        "a-first apply alta SSM-000001", "a-first apply alta SSM-000002",
        "b-second apply alta SSM-000001", "b-second apply alta SSM-000002",
        "a-first read-back - -", "b-second read-back - -"]

    fakes.repo.find("SSM-000001")["status"] = "baja"
    fakes.add("SSM-000003")
    fakes.repo.squash_merge("Una baja y un alta")
    plan, report = fakes.apply()
    assert report.ok and not report.skipped
    assert fakes.ops() == [
        "a-first read - -", "b-second read - -",
        # revocations first, the targets in reverse order
        "b-second apply baja SSM-000001", "a-first apply baja SSM-000001",
        # then everything else, in the registry's order
        "a-first apply alta SSM-000003", "b-second apply alta SSM-000003",
        "a-first read-back - -", "b-second read-back - -"]
    steps = {(o.change.target, o.change.movement): o.step for o in report.outcomes}
    assert steps == {("a-first", Movement.BAJA): 1, ("b-second", Movement.BAJA): 1,
                     ("a-first", Movement.ALTA): 2, ("b-second", Movement.ALTA): 2}
    assert set(fakes.state("a-first")) == set(fakes.state("b-second")) == {"SSM-000002", "SSM-000003"}
    converged(fakes)


def test_the_registry_order_decides_not_the_inventory(fakes):
    """Moving a kind in the registry is all it takes to change the order."""
    registry.register(Kind(FIRST, TARGET_CLASS, PROVIDER_CLASS, budgeted=frozenset({KIND})))  # now last
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    assert [line for line in fakes.ops() if " apply " in line] == [
        "b-second apply alta SSM-000001", "a-first apply alta SSM-000001"]


def test_incremental_plans_ask_only_for_the_changed_keys(fakes):
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge()
    fakes.apply()
    fakes.ops()
    # Someone edits an object by hand: only a full plan looks at it.
    write_state(fakes.tmp / "a-first.json", {**fakes.state("a-first"), "SSM-000002": FakeObject("A mano", UNIT)})
    fakes.add("SSM-000003")
    fakes.repo.squash_merge()
    plan = fakes.plan(since_applied=True)
    assert plan.scope.startswith("incremental")
    assert [(c.target, c.movement, c.key) for c in plan.changes] == [
        ("a-first", Movement.ALTA, "SSM-000003"), ("b-second", Movement.ALTA, "SSM-000003")]
    assert fakes.ops() == ["a-first read - SSM-000003", "b-second read - SSM-000003"]
    full = fakes.plan()
    assert ("a-first", Movement.MODIFICACION, "SSM-000002") in [(c.target, c.movement, c.key) for c in full.changes]


# -- the deletion budget -------------------------------------------------------------------

def _three_bajas(fakes: Fakes) -> None:
    fakes.add("SSM-000001", "SSM-000002", "SSM-000003", "SSM-000004")
    fakes.repo.squash_merge()
    fakes.apply()
    for key in ("SSM-000001", "SSM-000002", "SSM-000003"):
        fakes.repo.find(key)["status"] = "baja"
    fakes.repo.squash_merge("Tres bajas")
    fakes.ops()


def test_more_bajas_than_max_bajas_refuse_the_whole_apply(fakes):
    _three_bajas(fakes)
    fakes.write_inventory(second={"max_bajas": 2})
    before = {t: fakes.state(t) for t in ("a-first", "b-second")}
    trails = {t: fakes.records(t) for t in ("a-first", "b-second")}
    with fakes.run(lock=True) as run:
        plan = run.plan()
        assert any("target b-second: 3 bajas exceed the deletion guard (max_bajas: 2)" in w for w in plan.warnings)
        with pytest.raises(DeletionGuard, match=r"3 bajas on target b-second exceed max_bajas \(2\)\. "
                                                r"Nothing was changed"):
            run.apply(plan)
    # Nothing anywhere: not even a-first, whose budget allowed its bajas.
    assert {t: fakes.state(t) for t in ("a-first", "b-second")} == before
    assert {t: fakes.records(t) for t in ("a-first", "b-second")} == trails
    assert fakes.ops() == ["a-first read - -", "b-second read - -"]

    code, out, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                             "--auto-approve")
    assert code == 1 and "exceed max_bajas" in err
    assert fakes.state("b-second") == before["b-second"]

    _, report = fakes.apply(allow_mass_baja=True)
    assert report.ok
    assert set(fakes.state("a-first")) == set(fakes.state("b-second")) == {"SSM-000004"}


def test_the_budget_counts_only_the_kinds_the_registry_names(fakes):
    registry.register(Kind(SECOND, TARGET_CLASS, PROVIDER_CLASS), before="active_directory")  # budgets nothing
    _three_bajas(fakes)
    fakes.write_inventory(second={"max_bajas": 0})
    _, report = fakes.apply()
    assert report.ok and set(fakes.state("b-second")) == {"SSM-000004"}


# -- the lock ------------------------------------------------------------------------------

def test_a_second_apply_on_a_locked_target_is_refused(fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    with fakes.run(lock=True):
        with pytest.raises(TargetLocked, match="target a-first is locked by another apply"):
            with fakes.run(lock=True, only=("a-first",)):
                pass
        with fakes.run() as reader:  # a plan takes no lock
            assert len(reader.plan().changes) == 2
        code, _, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                               "--auto-approve")
        assert code == 1 and "is locked by another apply" in err
    assert fakes.state("a-first") == {}
    assert not list(fakes.audit_dir.glob("*.lock"))  # released when the run ends
    _, report = fakes.apply()
    assert report.ok and "SSM-000001" in fakes.state("a-first")


# -- the audit trail -----------------------------------------------------------------------

def test_every_run_leaves_a_verifiable_trail(fakes):
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge()
    plan, report = fakes.apply()
    for target in ("a-first", "b-second"):
        records = fakes.records(target)
        assert [r["kind"] for r in records] == ["run-start", "planned", "planned", "result", "result", "change",
                                                "change", "run-end"]
        start, end = records[0], records[-1]
        assert start["commit"] == fakes.head() and start["fingerprint"] == plan.fingerprint
        assert start["planned"] == 2 and start["skipped"] == 0
        assert {r["key"] for r in records if r["kind"] == "planned"} == {"SSM-000001", "SSM-000002"}
        changes = [r for r in records if r["kind"] == "change"]
        assert all(r["status"] == "applied" and r["verified"] and r["object_kind"] == KIND for r in changes)
        assert all(r["approval"]["approved"] and r["solicitud"]["pull_request"] == "#1" for r in changes)
        assert end["result"] == "complete" and end["applied_ref_moved"] and end["reason"] is None
        assert len({r["run"] for r in records}) == 1
        assert fakes.applied(target) == fakes.head() == report.applied_refs[target]
    assert sorted(report.audit_files) == sorted(str(fakes.audit_dir / f"{t}.audit.jsonl")
                                                for t in ("a-first", "b-second"))

    code, out, _ = run_cli("--repo", str(fakes.repo.root), "audit", "verify", "--inventory", str(fakes.inventory))
    assert code == 0 and out.count("chain intact, matches the git notes") == 2
    code, out, _ = run_cli("--repo", str(fakes.repo.root), "audit", "verify", "--from-git",
                           "--inventory", str(fakes.inventory))
    assert code == 0 and "target a-first (git notes): 8 records, chain intact" in out

    # The trail is hash-chained: an edited record is found.
    path = fakes.audit_dir / "a-first.audit.jsonl"
    path.write_text(path.read_text(encoding="utf-8").replace('"status":"applied"', '"status":"failed"', 1),
                    encoding="utf-8")
    verdict = trail.verify_file(path, trail.read_notes(fakes.repo.git))
    assert not verdict.ok and "(seq 4): its content does not match its hash" in verdict.broken


def test_a_run_with_nothing_to_do_writes_no_trail_but_records_the_commit(fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    # A commit that changes no target: a new approver in the policy.
    fakes.repo.policy["approvers"].append({"name": "Lic. Inés Ñuño", "email": "ines.nuno@salud.morelos.gob.mx",
                                           "units": ["*"]})
    fakes.repo.squash_merge("Política")
    with fakes.run(lock=True) as run:
        plan = run.plan()
        assert plan.empty
        report = run.apply(plan)
    assert report.outcomes == [] and report.audit_files == []
    assert len(fakes.records("a-first")) == 5  # the first run's only: start, planned, result, change, end
    assert fakes.applied("a-first") == fakes.applied("b-second") == fakes.head()


# -- a run that dies halfway ---------------------------------------------------------------

def test_an_apply_that_dies_halfway_is_recorded_as_aborted_and_the_next_run_converges(fakes):
    fakes.add("SSM-000001", "SSM-000002", "SSM-000003")
    fakes.repo.squash_merge()
    fakes.write_inventory(second={"crash_after": 1})
    with pytest.raises(FakeCrash):
        fakes.apply()
    assert fakes.ops() == ["a-first read - -", "b-second read - -",
                           "a-first apply alta SSM-000001", "a-first apply alta SSM-000002",
                           "a-first apply alta SSM-000003",
                           "b-second apply alta SSM-000001", "b-second crash alta SSM-000002"]
    assert set(fakes.state("b-second")) == {"SSM-000001"}  # one change written, then the crash
    records = fakes.records("b-second")
    assert [r["kind"] for r in records] == ["run-start", "planned", "planned", "planned", "run-end"]
    end = records[-1]
    assert end["result"] == "aborted" and not end["applied_ref_moved"]
    assert end["reason"] == "FakeCrash: target b-second died after writing 1 change"
    # The target that finished says what it did, but its run was aborted too.
    first = fakes.records("a-first")
    assert [r["status"] for r in first if r["kind"] == "change"] == ["applied"] * 3
    assert first[-1]["result"] == "aborted"
    assert fakes.applied("a-first") is None and fakes.applied("b-second") is None
    assert not list(fakes.audit_dir.glob("*.lock"))

    fakes.write_inventory()  # the fault is gone
    plan, report = fakes.apply()
    assert [(c.target, c.key) for c in plan.changes] == [("b-second", "SSM-000002"), ("b-second", "SSM-000003")]
    assert report.ok
    assert fakes.records("b-second")[-1]["result"] == "complete"
    assert fakes.applied("a-first") == fakes.applied("b-second") == fakes.head()
    converged(fakes)
    for target in ("a-first", "b-second"):
        assert trail.verify_file(fakes.audit_dir / f"{target}.audit.jsonl", trail.read_notes(fakes.repo.git)).ok


# -- a target that cannot be read ----------------------------------------------------------

def test_an_unreadable_target_applies_nothing_but_what_removes_access(fakes):
    """A plan fails; an apply goes ahead without the target, and an alta is not what removes
    access: nothing is applied anywhere, and the run says which target it could not read."""
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.write_inventory(second={"unreadable": True})
    with fakes.run(lock=True) as run:
        with pytest.raises(ReconcilerError, match="target b-second: cannot read the fake system"):
            run.plan()
    code, out, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                             "--auto-approve")
    assert code == 1 and "target b-second out of reach, nothing applied to it: target b-second: cannot read" in out
    assert not any(" apply " in line for line in fakes.ops())
    assert fakes.state("a-first") == {} and fakes.state("b-second") == {}
    assert not list(fakes.audit_dir.glob("*.lock"))
    assert fakes.applied("a-first") is None and fakes.applied("b-second") is None

    fakes.write_inventory(first={"state_file": str(fakes.tmp / "garbage.json")})
    (fakes.tmp / "garbage.json").write_text("{not json", encoding="utf-8")
    with fakes.run() as run, pytest.raises(ReconcilerError, match="target a-first: cannot read the fake system"):
        run.plan()


# -- verification --------------------------------------------------------------------------

def test_a_change_the_read_back_does_not_show_is_not_verified(fakes):
    fakes.add("SSM-000001", "SSM-000002", "SSM-000003")
    fakes.repo.squash_merge()
    fakes.write_inventory(first={"not_converging": ["SSM-000002"], "fail_keys": ["SSM-000003"]})
    _, report = fakes.apply()
    assert not report.ok
    outcome = {(o.change.target, o.change.key): o for o in report.outcomes}
    lost, refused = outcome["a-first", "SSM-000002"], outcome["a-first", "SSM-000003"]
    assert lost.status == "applied" and not lost.verified
    assert lost.error == "read back: the fake's state file does not show the change"
    assert refused.status == "failed" and refused.error == "the fake target refused the alta of SSM-000003 (fail_keys)"
    assert outcome["a-first", "SSM-000001"].verified
    held = outcome["b-second", "SSM-000003"]  # its alta failed on a-first: not attempted here
    assert held.status == "failed" and held.error.startswith("not attempted: it needs the alta of SSM-000003")
    assert all(o.verified for (t, k), o in outcome.items() if t == "b-second" and k != "SSM-000003")
    assert sorted(map(id, report.failed)) == sorted(map(id, (lost, refused, held)))
    records = fakes.records("a-first")
    assert records[-1]["result"] == "incomplete" and not records[-1]["applied_ref_moved"]
    assert {r["key"]: (r["status"], r["verified"], r["error"]) for r in records if r["kind"] == "change"} == {
        "SSM-000001": ("applied", True, None),
        "SSM-000002": ("applied", False, "read back: the fake's state file does not show the change"),
        "SSM-000003": ("failed", False, "the fake target refused the alta of SSM-000003 (fail_keys)")}
    assert fakes.applied("a-first") is None
    assert fakes.applied("b-second") is None  # waiting for SSM-000003's account
    assert fakes.records("b-second")[-1]["result"] == "incomplete"
    code, out, _ = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                           "--auto-approve")
    assert code == 1 and "does not show the change" in out


# -- approvals -----------------------------------------------------------------------------

def test_the_fake_implies_no_approval_so_unapproved_changes_are_skipped(fakes):
    assert FakeProvider.capabilities == frozenset()
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    fakes.add("SSM-000002")
    fakes.repo.direct_push("Alta sin solicitud")
    fakes.ops()
    with fakes.run(lock=True) as run:
        assert not any(p.offers(Capability.IMPLIED_APPROVALS) for p in run.providers.values())
        plan = run.plan()
        assert [c.approved for c in plan.changes] == [False, False]
        assert "pushed straight to the protected branch without a signed approval" in plan.changes[0].approval.reason
        report = run.apply(plan)
    assert report.outcomes == [] and len(report.skipped) == 2
    assert fakes.ops() == ["a-first read - -", "b-second read - -"]  # nothing applied, nothing to read back
    assert "SSM-000002" not in fakes.state("a-first")
    records = fakes.records("a-first")
    skipped = [r for r in records if r["kind"] == "change" and r["run"] == records[-1]["run"]]
    assert [(r["key"], r["status"]) for r in skipped] == [("SSM-000002", "skipped")]
    assert records[-1]["result"] == "incomplete"
    assert fakes.applied("a-first") != fakes.head()

    with fakes.run(lock=True) as run:
        plan = run.plan()
        with pytest.raises(ReconcilerError, match="refusing to apply \\(--strict\\): 2 changes lack"):
            run.apply(plan, strict=True)


def test_a_person_approved_by_a_unit_head_only_for_another_unit_is_skipped(fakes):
    """The policy decides, per change's unit; the fake's changes carry the person's unit."""
    assert POLICY["approvers"][2]["units"] == [UNIT]
    fakes.repo.add("CS-JIUTEPEC", person("SSM-000002", **PEOPLE["SSM-000002"]))
    fakes.add("SSM-000001")
    fakes.repo.squash_merge(approvers=(UNIT_HEAD,))
    plan = fakes.plan()
    verdict = {(c.target, c.key): c.approved for c in plan.changes}
    assert verdict == {("a-first", "SSM-000001"): True, ("a-first", "SSM-000002"): False,
                       ("b-second", "SSM-000001"): True, ("b-second", "SSM-000002"): False}


# -- a kind is one package and one registry entry ------------------------------------------

def test_a_kind_is_one_package_and_one_registry_entry(fakes):
    """Without its registry entry the kind does not exist; with it (and nothing else), the
    inventory loads it with its own settings and schema, and a run plans, applies and verifies."""
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    registry.unregister(FIRST)
    registry.unregister(SECOND)
    with pytest.raises(ValidationFailed):
        load_inventory(fakes.inventory)

    registry.register(Kind(FIRST, TARGET_CLASS, PROVIDER_CLASS))
    registry.register(Kind(SECOND, TARGET_CLASS, PROVIDER_CLASS))
    targets = load_inventory(fakes.inventory)
    assert {n: (type(t), t.kind) for n, t in targets.items()} == {
        "a-first": (FakeTarget, FIRST), "b-second": (FakeTarget, SECOND)}
    assert targets["a-first"].state_file == str(fakes.tmp / "a-first.json")
    assert targets["a-first"].audit_dir == str(fakes.audit_dir)  # the common settings, built by the base class
    with fakes.run(lock=True) as run:
        assert list(run.providers) == ["a-first", "b-second"]
        assert all(type(p) is FakeProvider for p in run.providers.values())
        assert run.providers["b-second"].kind == SECOND
        report = run.apply(run.plan())
    assert report.ok and [(o.change.target, o.verified) for o in report.outcomes] == [
        ("a-first", True), ("b-second", True)]
    # Nothing outside its package names it: the registry entry is the tests' own.
    root = Path(registry.__file__).resolve().parent.parent
    naming = [str(p.relative_to(root)) for p in root.rglob("*.py")
              if "providers.fake" in p.read_text(encoding="utf-8") and p.parent.name != "fake"]
    assert naming == []


def test_the_fake_kind_settings_are_checked_by_its_own_schema(fakes):
    fakes.write_inventory(second={"crash_after": -1, "password": "hunter2"})
    with pytest.raises(ValidationFailed) as failed:
        load_inventory(fakes.inventory)
    text = [str(p) for p in failed.value.problems]
    assert any("crash_after" in t for t in text) and any("password" in t for t in text), text


def test_an_unregistered_kind_is_a_validation_error_naming_file_line_and_field(fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    registry.unregister(SECOND)
    with pytest.raises(ValidationFailed) as failed:
        load_inventory(fakes.inventory)
    [problem] = failed.value.problems
    assert problem.file == str(fakes.inventory)
    lines = fakes.inventory.read_text(encoding="utf-8").splitlines()
    assert lines[problem.line - 1].strip() == f"kind: {SECOND}"
    assert problem.field == "targets.b-second.kind"
    assert FIRST in problem.message  # it says which kinds there are
    code, _, err = run_cli("--repo", str(fakes.repo.root), "plan", "--inventory", str(fakes.inventory))
    assert code == 1 and f"{fakes.inventory}:{problem.line}: targets.b-second.kind:" in err


def test_a_target_whose_trail_cannot_be_opened_aborts_the_run_with_every_trail_closed(fakes):
    """Each target's trail goes from run-start to run-end, even when another target's trail
    cannot be opened before the first change: nothing is applied, and the run says why."""
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.audit_dir.mkdir()
    (fakes.audit_dir / "b-second.audit.jsonl").write_text("not a record\n", encoding="utf-8")
    with pytest.raises(ReconcilerError, match="the last line of the audit trail .*b-second.audit.jsonl"):
        fakes.apply()
    assert not any(" apply " in line for line in fakes.ops())
    records = fakes.records("a-first")
    assert [r["kind"] for r in records] == ["run-start", "planned", "run-end"]
    assert records[-1]["result"] == "aborted" and "the last line of the audit trail" in records[-1]["reason"]
    assert trail.verify_file(fakes.audit_dir / "a-first.audit.jsonl", trail.read_notes(fakes.repo.git)).ok
    assert fakes.applied("a-first") is None


def test_the_removal_of_a_declaration_approves_the_baja_of_any_kind(fakes):
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge()
    fakes.apply()
    fakes.repo.remove("SSM-000002")
    fakes.repo.squash_merge("Quitar a SSM-000002")
    plan = fakes.plan()
    assert [(c.movement, c.key, c.reason) for c in plan.changes] == [
        (Movement.BAJA, "SSM-000002", "no longer declared")] * 2
    assert all(c.approved for c in plan.changes), plan.changes[0].approval.reason


def test_a_lock_that_cannot_be_written_is_a_message_naming_the_target(tmp_path):
    """An audit directory that is a file (or unwritable) is said plainly, not a traceback."""
    from reconciler.run.lock import TargetLock

    blocker = tmp_path / "audit"
    blocker.write_text("not a directory")
    with pytest.raises(ReconcilerError, match=r"target fw: cannot take the lock .*audit/fw.lock"):
        TargetLock(blocker, "fw").acquire()


def test_an_unknown_target_is_named_with_the_inventory(fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    with pytest.raises(ReconcilerError,
                       match=r"unknown target nope \(the inventory .*inventory.yaml has b-second, a-first\)"):
        Run(at_ref(fakes.repo.root), fakes.inventory, ("nope",)).__enter__()


# -- what an adversarial review of the contract found ------------------------------------------

class ResettingFake(FakeProvider):
    """The fake, declaring password resets; it keeps what each plan was told was applied, and
    asks an incremental plan for a full read (as AD does when a changed person holds a computer)."""

    capabilities = frozenset({Capability.PASSWORD_RESETS})
    told: list = []

    def plan(self, request):
        ResettingFake.told.append((request.incremental, sorted(request.applied_resets)))
        part = super().plan(request)
        if request.incremental:
            part.needs_full_read = "a changed person holds something only a full read can judge"
        return part


def test_an_incremental_plan_turned_full_still_knows_which_resets_were_applied(fakes):
    """Otherwise every reset still declared is applied again: a new password, unasked."""
    registry.register(Kind(FIRST, TARGET_CLASS, "test_engine:ResettingFake"), before=SECOND)
    fakes.repo.add(UNIT, person("SSM-000001", password_resets=[
        {"folio": "SSM/STI/2026/R-1", "date": "2026-10-01", "requested_by": "Dra. Ana Lucía Ordóñez Peña"}]))
    fakes.add("SSM-000002")
    first = fakes.repo.squash_merge()
    log = trail.AuditLog(fakes.audit_dir, "a-first")  # the trail says the reset was applied
    log.append("change", object_kind="password-reset", folio="SSM/STI/2026/R-1", status="applied", key="SSM-000001")
    log.close()
    for target in ("a-first", "b-second"):
        fakes.mark_applied(target, first)
    fakes.repo.find("SSM-000002")["given_names"] = "Zoé Alejandra"
    fakes.repo.squash_merge("Corrección de nombre")
    ResettingFake.told.clear()
    fakes.plan(since_applied=True)
    assert ResettingFake.told == [(True, []), (False, ["SSM/STI/2026/R-1"])]


def test_a_reset_a_killed_run_applied_is_not_applied_again(fakes):
    """The run stopped after its step: the trail has the reset's `planned` and `result`
    records, no `change` record; the next plan is told it was applied (a second reset would
    replace a password already handed over)."""
    registry.register(Kind(FIRST, TARGET_CLASS, "test_engine:ResettingFake"), before=SECOND)
    fakes.repo.add(UNIT, person("SSM-000001", password_resets=[
        {"folio": "SSM/STI/2026/R-2", "date": "2026-10-01", "requested_by": "Dra. Ana Lucía Ordóñez Peña"}]))
    fakes.repo.squash_merge()
    log = trail.AuditLog(fakes.audit_dir, "a-first")
    log.append("run-start", run="r1")
    log.append("planned", run="r1", object_kind="password-reset", key="SSM-000001", folio="SSM/STI/2026/R-2",
               movement="modificacion")
    log.append("result", run="r1", object_kind="password-reset", key="SSM-000001", status="applied", step=2)
    log.close()
    ResettingFake.told.clear()
    fakes.plan()
    assert ResettingFake.told == [(False, ["SSM/STI/2026/R-2"])]


def test_ctrl_c_while_the_trail_is_written_ends_every_trail_and_exits_130(fakes, monkeypatch):
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge()
    real = trail.AuditLog.append

    def interrupted(self, kind, **fields):
        if kind == "planned" and self.target == "b-second":
            raise KeyboardInterrupt
        return real(self, kind, **fields)
    monkeypatch.setattr(trail.AuditLog, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fakes.apply()
    for target in ("a-first", "b-second"):
        assert fakes.records(target)[-1]["kind"] == "run-end"
        assert fakes.records(target)[-1]["result"] == "aborted"
    assert trail.read_notes(fakes.repo.git)  # the records reached Git too
    code, _, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                           "--auto-approve")
    assert code == 130 and "Interrupted." in err


def test_one_target_failing_to_close_its_run_leaves_the_others_recorded(fakes, monkeypatch):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    real = Run._record_applied

    def refused(self, target, report=None):
        if target == "a-first":
            raise ReconcilerError("could not record the applied commit for a-first: read-only repository")
        return real(self, target, report)
    monkeypatch.setattr(Run, "_record_applied", refused)
    with pytest.raises(ReconcilerError, match="read-only repository"):
        fakes.apply()
    kinds_of = [r["kind"] for r in fakes.records("b-second")]
    assert kinds_of[-2:] == ["change", "run-end"] and fakes.records("b-second")[-1]["result"] == "complete"
    assert fakes.applied("b-second") == fakes.head() and fakes.applied("a-first") is None
    noted = [r for _, r in trail.read_notes(fakes.repo.git) if r.get("kind") == "run-end"]
    assert sorted((r["target"], r["result"]) for r in noted) == [("a-first", "complete"), ("b-second", "complete")]


def test_the_lock_is_held_until_the_targets_are_closed(fakes, monkeypatch):
    held = []
    monkeypatch.setattr(FakeProvider, "close", lambda self: held.append(
        (self.target.name, (fakes.audit_dir / f"{self.target.name}.lock").exists())))
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    assert sorted(held) == [("a-first", True), ("b-second", True)]


def test_bad_yaml_is_reported_at_once_while_a_target_is_still_being_reached(fakes):
    """Nobody waits for a slow target to hear that the YAML is wrong; the target, once it
    answers, is closed by the thread that opened it."""
    answered = fakes.tmp / "answered"
    fakes.write_inventory(second={"open_waits_for": str(answered)})
    fakes.add("SSM-000001")
    fakes.repo.find("SSM-000001")["status"] = "Activo"
    fakes.repo.squash_merge()
    try:
        with pytest.raises(ValidationFailed) as invalid:
            fakes.plan()
        assert [p.field for p in invalid.value.problems] == ["people[0].status"]
        assert "b-second opened - -" not in fakes.ops(clear=False, lifetime=True)
    finally:
        answered.touch()
    for _ in range(200):  # the opening thread finishes in its own time
        ops = fakes.ops(clear=False, lifetime=True)
        if "a-first close - -" in ops and "b-second close - -" in ops:
            break
        time.sleep(0.05)
    ops = fakes.ops(lifetime=True)
    assert ops.index("b-second opened - -") < ops.index("b-second close - -")
    assert ops.count("b-second close - -") == ops.count("a-first close - -") == 1


# -- only forward, only from the protected branch ------------------------------------------------

def test_a_commit_of_a_branch_under_review_is_never_applied(fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    git_ = fakes.repo.git
    git_.create_head("solicitud", git_.heads.main.commit).checkout()
    fakes.add("SSM-000002")
    fakes.repo.write()
    git_.index.add(["desired_state"])
    proposal = git_.index.commit("Alta sin revisar\n\nApproved-by: Ing. Marta Ávila Ibáñez <marta.avila@salud.morelos.gob.mx>")
    git_.heads.main.checkout()
    code, _, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                           "--ref", proposal.hexsha, "--auto-approve")
    assert code == 1 and "not on the first-parent line of main" in err
    assert sorted(fakes.state("a-first")) == ["SSM-000001"]


def test_an_old_commit_of_main_is_never_replayed(fakes):
    """Replaying the commit before a baja would bring the person back."""
    before = fakes.baja_applied()
    assert sorted(fakes.state("a-first")) == ["SSM-000001"]
    for argv in (("--ref", before), ("--ref", before, "--since-applied")):
        code, _, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                               *argv, "--auto-approve")
        assert code == 1 and "is behind" in err and "already applied there" in err
    assert sorted(fakes.state("a-first")) == ["SSM-000001"]
    assert fakes.applied("a-first") == fakes.head()


def test_a_commit_inside_a_merged_branch_is_not_on_the_protected_line(fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    fakes.apply()
    fakes.add("SSM-000002")
    merge = fakes.repo.merge_pr("alta", commits=2)
    inside = fakes.repo.git.commit(merge).parents[1].hexsha
    code, _, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                           "--ref", inside, "--auto-approve")
    assert code == 1 and "not on the first-parent line" in err
    assert sorted(fakes.state("a-first")) == ["SSM-000001"]
    code, _, _ = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                         "--ref", merge, "--auto-approve")
    assert code == 0 and sorted(fakes.state("a-first")) == ["SSM-000001", "SSM-000002"]


# -- a pull request's plan never uses the pull request's own inventory -------------------------

def test_a_pull_requests_plan_uses_the_base_branchs_inventory(fakes):
    """The inventory says where the runner connects and which secrets it reads: a pull
    request's own inventory counts once it has landed, never in its own plan."""
    inventory = fakes.inventory_in_repo()
    git_ = fakes.repo.git
    git_.create_head("solicitud", git_.heads.main.commit).checkout()
    elsewhere = fakes.tmp / "elsewhere.json"
    write_state(elsewhere, {"SSM-000001": FakeObject("José Ñúñez O'Brien", UNIT)})
    inventory.write_text(inventory.read_text(encoding="utf-8").replace(str(fakes.tmp / "a-first.json"), str(elsewhere)),
                         encoding="utf-8")
    git_.git.add("-A")
    git_.index.commit("Apunto a-first a otro lado")
    code, out, err = run_cli("--repo", str(fakes.repo.root), "plan", "--inventory", str(inventory), "--ref", "HEAD",
                             "--proposal", "main", "--output", "json")
    plan = json.loads(out)
    assert code == 2, err
    assert ("a-first", "alta", "SSM-000001") in {(c["target"], c["movement"], c["key"]) for c in plan["changes"]}
    assert any("this pull request changes inventory/fakes.yaml: its plan uses the inventory in force on main" in w
               for w in plan["warnings"])


# -- dependencies between targets (issue 13) --------------------------------------------------

def test_a_change_whose_alta_failed_on_an_earlier_target_is_not_attempted_and_the_next_run_converges(fakes):
    """A mailbox needs its account: when a-first could not create SSM-000002, b-second does not
    create it either, says why, and keeps its applied ref where it was."""
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge()
    fakes.write_inventory(first={"fail_keys": ["SSM-000002"]})
    plan, report = fakes.apply()
    assert sorted(fakes.state("b-second")) == ["SSM-000001"]
    held = next(o for o in report.outcomes if o.change.target == "b-second" and o.change.key == "SSM-000002")
    assert held.status == "failed" and held.error.startswith("not attempted: it needs the alta of SSM-000002")
    assert "on a-first, which failed" in held.error
    assert fakes.applied("b-second") is None and fakes.applied("a-first") is None
    records = fakes.records("b-second")
    assert any(r["kind"] == "change" and r["key"] == "SSM-000002" and r["status"] == "failed" for r in records)
    fakes.write_inventory()
    fakes.apply()
    assert sorted(fakes.state("a-first")) == sorted(fakes.state("b-second")) == ["SSM-000001", "SSM-000002"]
    assert fakes.applied("b-second") == fakes.head()
