"""The audit trail's chain, the auditors' views over a scripted history, and target locks."""
from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from reconciler.audit.trail import AuditLog, verify_file
from reconciler.audit.indicators import history, monthly_indicators
from reconciler.run.lock import TargetLock, TargetLocked


def write_trail(directory, n: int = 5) -> AuditLog:
    log = AuditLog(directory, "ad")
    for i in range(n):
        log.append("change", key=f"SSM-{i:06d}", label=f"persona {i}", status="applied")
    log.close()
    return log


def test_a_trail_continues_its_chain_across_runs(tmp_path):
    write_trail(tmp_path, 3)
    log = write_trail(tmp_path, 2)
    records = [json.loads(line) for line in log.path.read_text(encoding="utf-8").splitlines()]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert verify_file(log.path).ok and verify_file(log.path).records == 5


@pytest.mark.parametrize("tamper, expected", [
    (lambda lines: lines[:2] + [lines[2].replace("persona 2", "persona X")] + lines[3:],
     "line 3 (seq 3): its content does not match its hash: the record was edited"),
    (lambda lines: lines[:1] + lines[2:], "line 2 (seq 3): expected seq 2; record 2 was removed"),
    (lambda lines: [lines[1], lines[0]] + lines[2:], "line 1 (seq 2): expected seq 1"),
])
def test_any_edit_or_removal_breaks_the_chain_at_that_record(tmp_path, tamper, expected):
    log = write_trail(tmp_path)
    lines = log.path.read_text(encoding="utf-8").splitlines(keepends=True)
    log.path.write_text("".join(tamper(lines)), encoding="utf-8")
    verdict = verify_file(log.path)
    assert not verdict.ok and expected in verdict.broken


def test_a_recomputed_hash_does_not_hide_an_edit(tmp_path):
    from reconciler.audit.trail import canonical, record_hash

    log = write_trail(tmp_path)
    lines = log.path.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[1])
    record["status"] = "failed"
    record["hash"] = record_hash(record)
    log.path.write_text("".join([lines[0], canonical(record) + "\n", *lines[2:]]), encoding="utf-8")
    assert "line 3 (seq 3): its prev hash does not match record 2" in verify_file(log.path).broken


def change(time, movement, status="applied", verified=True, approved_at="2026-11-02T09:00:00+00:00",
           landed="a" * 40, key="SSM-000001", approved=True, object_kind="account"):
    return {"kind": "change", "time": time, "target": "ad", "object_kind": object_kind, "key": key,
            "label": f"cuenta {key}", "movement": movement, "status": status, "verified": verified,
            "attributes": [{"name": "title", "before": "A", "after": "B"}],
            "solicitud": {"landed": landed, "pull_request": "#4", "requester": "Ana <ana@x.mx>",
                          "approvers": ["Raúl <raul@x.mx>"], "approved_at": approved_at},
            "approval": {"approved": approved}}


SCRIPTED = [
    # Two altas approved on 2 November: one applied 2 hours later, one failed then applied the next day.
    change("2026-11-02T11:00:00+00:00", "alta"),
    change("2026-11-02T11:00:00+00:00", "alta", status="failed", verified=False, key="SSM-000002"),
    change("2026-11-03T09:00:00+00:00", "alta", key="SSM-000002"),
    # A modificación approved in November, applied but not verified: not attended.
    change("2026-11-10T10:00:00+00:00", "modificacion", verified=False, approved_at="2026-11-10T09:30:00+00:00",
           landed="b" * 40),
    # A baja approved in October and applied in November: counts for October.
    change("2026-11-01T10:00:00+00:00", "baja", approved_at="2026-10-31T23:00:00+00:00", landed="c" * 40),
    # An unapproved change skipped, and the OU created on the way: neither is a solicitud.
    change("2026-11-12T10:00:00+00:00", "alta", status="skipped", verified=None, approved=False, landed="d" * 40),
    change("2026-11-02T11:00:00+00:00", "alta", object_kind="ou", key="OU=X"),
]


def test_monthly_indicators_from_a_scripted_history():
    rows = {r.movement: r for r in monthly_indicators(SCRIPTED, "2026-11")}
    assert (rows["altas"].approved, rows["altas"].applied_verified, rows["altas"].percent) == (2, 2, 100.0)
    assert rows["altas"].median_hours == 13.0 and rows["altas"].max_hours == 24.0
    assert (rows["modificaciones"].approved, rows["modificaciones"].applied_verified) == (1, 0)
    assert rows["modificaciones"].percent == 0.0 and rows["modificaciones"].failed_or_pending == 1
    assert rows["bajas"].approved == 0 and rows["bajas"].percent is None
    assert (rows["total"].approved, rows["total"].applied_verified, rows["total"].percent) == (3, 2, 66.7)
    october = {r.movement: r for r in monthly_indicators(SCRIPTED, "2026-10")}
    assert october["bajas"].applied_verified == 1 and october["bajas"].max_hours == 11.0


def test_history_lists_an_objects_movements_with_who_asked_and_approved():
    moves = history(SCRIPTED, "SSM-000002")
    assert [(m.status, m.verified) for m in moves] == [("failed", False), ("applied", True)]
    assert moves[1].requester == "Ana <ana@x.mx>" and moves[1].approvers == ("Raúl <raul@x.mx>",)
    assert moves[1].changed == ("title: 'A' → 'B'",) and moves[1].pull_request == "#4"
    assert history(SCRIPTED, "nadie") == []


def test_a_lock_held_by_a_running_process_refuses_with_its_holder(tmp_path):
    with TargetLock(tmp_path, "ad"):
        with pytest.raises(TargetLocked, match=r"target ad is locked by another apply: .* \(pid \d+"):
            TargetLock(tmp_path, "ad").acquire()
    assert not (tmp_path / "ad.lock").exists()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path):
    holder = {"operator": "ana", "host": os.uname().nodename, "pid": 2 ** 22 + 7, "since": "2026-11-22T01:00:00+00:00",
              "expires": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat(), "token": "t"}
    (tmp_path / "ad.lock").write_text(json.dumps(holder))
    lock = TargetLock(tmp_path, "ad").acquire()
    assert lock.replaced.startswith("ana on ") and lock.replaced.endswith("(its process is gone)")
    lock.release()


def test_an_unreadable_lock_is_stale_and_a_released_lock_leaves_no_files(tmp_path):
    (tmp_path / "ad.lock").write_text("{not json")
    lock = TargetLock(tmp_path, "ad").acquire()
    assert lock.replaced.endswith("(unreadable)")
    lock.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ad.lock.guard"]


def test_a_line_that_is_not_a_record_is_named_not_a_traceback(tmp_path):
    from reconciler.audit.trail import load_records, verify_notes
    from reconciler.errors import ReconcilerError

    log = write_trail(tmp_path, 3)
    lines = log.path.read_text(encoding="utf-8").splitlines(keepends=True)
    log.path.write_text(lines[0] + "{roto\n" + "".join(lines[2:]), encoding="utf-8")
    assert verify_file(log.path).broken == "ad.audit.jsonl line 2: not a JSON record"
    with pytest.raises(ReconcilerError, match=r"ad.audit.jsonl line 2 is not an audit record"):
        load_records([tmp_path])
    good = json.loads(lines[0])
    assert verify_notes([("c" * 40, good), ("c" * 40, None)])[0][2] == \
        "git note on cccccccccc: a line that is not a JSON record"
    with pytest.raises(ReconcilerError, match="git note on cccccccccc has a line that is not an audit record"):
        load_records(notes=[("c" * 40, None)])


def test_the_month_of_an_approval_is_the_institutions():
    """Approved at 03:00 UTC on 1 December is still 30 November in Mexico City (the inventory's
    default time zone): it counts for November, as the people who approved it lived it."""
    from reconciler import i18n

    late = [change("2026-12-01T04:00:00+00:00", "alta", approved_at="2026-12-01T03:00:00+00:00", landed="e" * 40)]
    i18n.institution(None, "America/Mexico_City")
    try:
        assert {r.movement: r.approved for r in monthly_indicators(late, "2026-11")}["altas"] == 1
        assert {r.movement: r.approved for r in monthly_indicators(late, "2026-12")}["altas"] == 0
        i18n.institution(None, "UTC")
        assert {r.movement: r.approved for r in monthly_indicators(late, "2026-12")}["altas"] == 1
    finally:
        i18n.institution(None, "America/Mexico_City")


def test_today_is_the_institutions_date():
    import datetime as dt

    from reconciler import i18n
    from reconciler.run.engine import today_here

    i18n.institution(None, "Pacific/Kiritimati")  # UTC+14: its date is ahead of UTC's for most of the day
    try:
        assert today_here() == dt.datetime.now(dt.timezone(dt.timedelta(hours=14))).date().isoformat()
    finally:
        i18n.institution(None, "America/Mexico_City")
