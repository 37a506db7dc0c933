"""A run killed halfway (issue 13 item 5), with the fake provider: the next apply recognises
what it did, records it as that run's work (not drift, not lost), and converges.

A kill is simulated by an apply whose closing never runs: no results after the crash, no
run-end, no git note, the lock left behind, exactly what SIGKILL leaves.  The lab tests
(test_faults_lab.py) kill a real process against the real directory."""
from __future__ import annotations

import json

import pytest
from conftest import run_cli
from fakes import converged

from reconciler.audit import trail
from reconciler.audit.indicators import history
from reconciler.plan import Change, Movement
from reconciler.providers.fake.provider import FakeCrash
from reconciler.run import recovery
from reconciler.run.engine import Run


def killed_apply(fakes, monkeypatch, crash_after: int | None) -> None:
    """Apply until the second target has written `crash_after` changes (None: all of them),
    then die without closing anything: no run-end, no note, no applied ref; the lock stays."""
    fakes.write_inventory(second={"crash_after": crash_after} if crash_after is not None else None)
    with monkeypatch.context() as m:
        m.setattr(Run, "_finish_all", lambda self, runs, aborted, report: None)
        m.setattr(Run, "__exit__", lambda self, *exc: None)  # the process is gone: nothing is released
        if crash_after is None:
            fakes.apply()
        else:
            with pytest.raises(FakeCrash):
                fakes.apply()
    fakes.write_inventory()
    for lock in fakes.audit_dir.glob("*.lock"):  # a dead process's lock on this host is taken over
        holder = json.loads(lock.read_text())
        holder["pid"] = 2 ** 22 + 1  # no such process
        lock.write_text(json.dumps(holder))


def test_the_next_apply_closes_a_killed_run_with_what_the_target_shows(fakes, monkeypatch):
    fakes.add("SSM-000001", "SSM-000002", "SSM-000003")
    fakes.repo.squash_merge()
    killed_apply(fakes, monkeypatch, crash_after=1)
    stopped = recovery.interrupted(fakes.audit_dir, "b-second")
    assert stopped is not None and len(stopped.planned) == 3
    assert set(fakes.state("b-second")) == {"SSM-000001"}
    with fakes.run(since_applied=True) as run:  # CI's incremental apply judges the stopped run on everything
        assert run.scope.full and f"run {stopped.run} stopped before its end" in run.scope.reason

    _, report = fakes.apply()
    assert report.ok
    for target, done in (("a-first", 3), ("b-second", 1)):
        records = fakes.records(target)
        closing = [r for r in records if r.get("closed_by")]
        # The stopped run's own records are closed first, before the new run starts.
        assert [r["kind"] for r in closing] == ["change"] * 3 + ["run-end"]
        assert records.index(closing[-1]) < [r["kind"] for r in records].index("run-start", 1)
        assert closing[-1]["result"] == "interrupted" and closing[-1]["run"] == stopped.run
        applied = [r for r in closing if r["kind"] == "change" and r["status"] == "applied"]
        # Judged from the target now, not read back by the run that made it: never "verified".
        assert len(applied) == done and all(r["verified"] is None and r["run"] == stopped.run for r in applied)
        assert all(r["error"].startswith("judged by run ") for r in applied)
        assert all(r["movement"] == "alta" and r["solicitud"]["pull_request"] == "#1" for r in closing[:-1])
        assert recovery.interrupted(fakes.audit_dir, target) is None
        assert trail.verify_file(fakes.audit_dir / f"{target}.audit.jsonl", trail.read_notes(fakes.repo.git)).ok
    not_done = [r for r in fakes.records("b-second") if r.get("closed_by") and r.get("status") == "failed"]
    assert sorted(r["key"] for r in not_done) == ["SSM-000002", "SSM-000003"]
    assert all("not done: the run stopped first" in r["error"] for r in not_done)
    assert any("stopped before its end; its 3 changes are recorded now: 1 done, 0 begun" in w
               for w in report.warnings)
    converged(fakes)

    # history shows SSM-000001's alta by the killed run on b-second, then nothing more (done)
    moves = [m for m in history(trail.load_records([fakes.audit_dir]), "SSM-000001") if m.target == "b-second"]
    assert [(m.movement, m.status, m.verified) for m in moves] == [("alta", "applied", None)]
    # ... and from the git notes alone, which the killed run never wrote
    code, out, _ = run_cli("--repo", str(fakes.repo.root), "history", "SSM-000002", "--from-git")
    assert code == 0 and out.count("alta test account") >= 2, out


def test_a_killed_run_whose_work_was_all_done_is_closed_by_an_apply_with_nothing_to_do(fakes, monkeypatch):
    """Killed after the last change and before its end: the next plan is empty, and apply
    still writes the stopped run's records (and moves the applied refs)."""
    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    killed_apply(fakes, monkeypatch, crash_after=None)  # killed at the closing
    with fakes.run(lock=True) as run:
        plan = run.plan()
        assert plan.empty and set(run.interrupted) == {"a-first", "b-second"}
        report = run.apply(plan)
    assert report.ok and set(report.applied_refs) == {"a-first", "b-second"}
    for target in ("a-first", "b-second"):
        closing = [r for r in fakes.records(target) if r.get("closed_by")]
        assert [(r["kind"], r.get("status")) for r in closing] == [("change", "applied"), ("run-end", None)]


def test_halfway_through_a_killed_run_is_not_called_drift():
    stopped = recovery.Interrupted("ad", "20261202T060000Z-abcdef", "c" * 40, "2026-12-02T06:00:00+00:00",
                                   ({"object_kind": "account", "key": "SSM-1", "movement": "alta"},), {})
    begun = Change(Movement.MODIFICACION, "ad", "account", "SSM-1", "Ana", drift=True,
                   reason="changed outside the reconciler (drift)")
    other = Change(Movement.MODIFICACION, "ad", "account", "SSM-2", "Zoé", drift=True,
                   reason="changed outside the reconciler (drift)")
    relabelled, untouched = recovery.relabel([begun, other], stopped)
    assert not relabelled.drift and "completes what run 20261202T060000Z-abcdef began" in relabelled.reason
    assert untouched == other
    # An alta it began and this run finishes is recorded as begun, not as done or failed.
    [change, end] = recovery.closing_records(stopped, [begun], "next-run")
    assert (change["status"], change["verified"]) == ("applied", False) and "next-run finishes it" in change["error"]
    assert end["result"] == "interrupted"


def test_the_tail_of_a_long_trail_is_read_from_its_end(tmp_path):
    log = trail.AuditLog(tmp_path, "t")
    for i in range(3000):
        log.append("run-start", run=f"r{i}")
        log.append("planned", run=f"r{i}", object_kind="k", key=f"K{i}", movement="alta")
        if i < 2999:
            log.append("run-end", run=f"r{i}")
    log.close()
    stopped = recovery.interrupted(tmp_path, "t")
    assert stopped.run == "r2999" and [p["key"] for p in stopped.planned] == ["K2999"]
    lines = list(trail.lines_from_end(log.path, chunk=100))  # lines split across chunks
    assert [json.loads(line)["seq"] for line in lines] == list(range(log.seq, 0, -1))


def test_the_passwords_a_killed_run_set_are_counted_in_use_when_their_objects_exist(tmp_path):
    """In use: the alta's object exists now, whatever the stopped run's own result said (the
    add landed, a later step failed); or a reset it applied.  Never set: an alta still planned."""
    planned = ({"object_kind": "account", "key": "SSM-1", "movement": "alta"},
               {"object_kind": "account", "key": "SSM-2", "movement": "alta"},
               {"object_kind": "sip-line", "key": "1001", "movement": "modificacion"})
    results = {("account", "SSM-1"): {"status": "failed"}, ("sip-line", "1001"): {"status": "failed"}}
    stopped = recovery.Interrupted("ad", "r1", None, "", planned, results)
    still = [Change(Movement.ALTA, "ad", "account", "SSM-2", "Ana")]
    keys = recovery.in_use(stopped, still)
    assert keys == {"SSM-1", "1001"}
    stopped.credentials_file(tmp_path).write_text(
        "account,upn,employee_key,folio,password\n"
        "jnunezo,jnunezo@salud.lab,SSM-1,F-1,secret-1\n"
        "anunezo,anunezo@salud.lab,SSM-2,F-2,secret-2\n"
        "1001,1001@sip.lab,SSM-3,,secret-3\n", encoding="utf-8")
    path, used, unset = recovery.passwords_in_use(stopped, tmp_path, keys)
    assert (path, used, unset) == (stopped.credentials_file(tmp_path), 2, 1)
    assert recovery.passwords_in_use(recovery.Interrupted("ad", "r2", None, "", (), {}), tmp_path, keys) is None


def test_a_tail_whose_chain_was_edited_is_not_acted_on(tmp_path):
    log = trail.AuditLog(tmp_path, "t")
    log.append("run-start", run="r1")
    log.append("planned", run="r1", object_kind="k", key="K1", movement="alta")
    log.close()
    assert recovery.interrupted(tmp_path, "t") is not None
    text = log.path.read_text(encoding="utf-8").replace('"key":"K1"', '"key":"K2"')
    log.path.write_text(text, encoding="utf-8")
    assert recovery.interrupted(tmp_path, "t") is None


def test_an_apply_that_stops_with_an_error_still_prints_what_it_did(fakes):
    """A crash in one target (an exception, not a kill): the summary of what was applied, and
    the files to look at, are printed before the error, never lost behind it."""
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge()
    fakes.write_inventory(second={"crash_after": 1})
    code, out, err = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                             "--auto-approve")
    assert code != 0 and "FakeCrash" in err
    assert "Apply stopped: 2 altas, 0 modificaciones, 0 bajas applied" in out, out
    assert f"Audit trail: {fakes.audit_dir / 'b-second.audit.jsonl'}" in out


def test_with_a_target_out_of_reach_the_others_apply_their_bajas_and_hold_the_rest(fakes):
    """Issue 13 item 3: a person's baja goes ahead wherever it can; nothing that might need
    the missing target (an alta) is applied; the run fails, names the target, and the next
    run with it back converges."""
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge()
    fakes.apply()
    first_applied = fakes.head()
    fakes.repo.remove("SSM-000002")
    fakes.add("SSM-000003")
    fakes.repo.squash_merge("Baja y alta")
    fakes.write_inventory(first={"unreachable": True})
    with pytest.raises(Exception, match="cannot reach the fake system"):
        fakes.plan()  # a plan shows everything or fails: a partial plan would mislead its reader
    with fakes.run(lock=True, revoke_when_unreachable=True) as run:
        plan = run.plan()
        assert any("target a-first is out of reach" in w for w in plan.warnings)
        assert {c.target for c in plan.changes} == {"b-second"}
        report = run.apply(plan)
    assert not report.ok and set(report.unreachable) == {"a-first"}
    assert set(fakes.state("b-second")) == {"SSM-000001"}  # the baja went ahead, the alta waited
    [held] = report.failed
    assert held.change.key == "SSM-000003" and "target a-first is out of reach" in held.error
    assert fakes.applied("a-first") == fakes.applied("b-second") == first_applied  # both retried

    code, out, _ = run_cli("--repo", str(fakes.repo.root), "apply", "--inventory", str(fakes.inventory),
                           "--auto-approve")
    assert code == 1 and "target a-first out of reach, nothing applied to it" in out
    fakes.write_inventory()
    _, report = fakes.apply()
    assert report.ok
    converged(fakes)


def test_a_plan_does_not_take_a_run_that_holds_its_lock_for_a_stopped_one(fakes, monkeypatch):
    import os

    fakes.add("SSM-000001")
    fakes.repo.squash_merge()
    killed_apply(fakes, monkeypatch, crash_after=0)
    lock = fakes.audit_dir / "b-second.lock"
    holder = json.loads(lock.read_text())
    holder["pid"] = os.getpid()  # the run is still going, on this host
    lock.write_text(json.dumps(holder))
    with fakes.run() as run:
        assert "b-second" not in run.interrupted and "a-first" in run.interrupted
    holder["pid"] = 2 ** 22 + 1  # now it is gone
    lock.write_text(json.dumps(holder))
    with fakes.run() as run:
        assert set(run.interrupted) == {"a-first", "b-second"}


def test_a_target_whose_read_fails_is_out_of_reach_too(fakes):
    """Opened, but its read fails (a mail server whose API is down): for apply, the same as
    a target that could not be opened; for a plan, an error."""
    fakes.add("SSM-000001", "SSM-000002")
    fakes.repo.squash_merge()
    fakes.apply()
    fakes.repo.remove("SSM-000002")
    fakes.repo.squash_merge("Baja")
    fakes.write_inventory(first={"unreadable": True})
    with pytest.raises(Exception, match="unreadable: true"):
        fakes.plan()
    with fakes.run(lock=True, revoke_when_unreachable=True) as run:
        plan = run.plan()
        assert set(run.unreachable) == {"a-first"} and {c.target for c in plan.changes} == {"b-second"}
        report = run.apply(plan)
    assert not report.ok and set(fakes.state("b-second")) == {"SSM-000001"}
    fakes.write_inventory()
    fakes.apply()
    converged(fakes)


def test_what_every_apply_rewrites_is_not_drift_after_a_run_that_planned_anything():
    """The mail maps are rewritten from the registry by every apply (mail/apply.py, step 2): a
    run killed between the deny list and the registry leaves them differing, not edited."""
    maps = Change(Movement.MODIFICACION, "correo", "mail-maps", "maps", "maps", drift=True,
                  reason="edited outside the reconciler (drift)")
    planned = ({"object_kind": "mailbox", "key": "ana@salud.lab", "movement": "baja"},)
    stopped = recovery.Interrupted("correo", "r1", None, "", planned, {})
    [relabelled] = recovery.relabel([maps], stopped, frozenset({"mail-maps"}))
    assert not relabelled.drift and "completes what run r1 began" in relabelled.reason
    assert recovery.relabel([maps], stopped) == [maps]  # a kind not declared rewritten: still drift
    nothing = recovery.Interrupted("correo", "r2", None, "", (), {})
    assert recovery.relabel([maps], nothing, frozenset({"mail-maps"})) == [maps]  # a run that planned nothing
