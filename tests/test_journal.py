"""The run journal records an interrupted apply."""
from __future__ import annotations

import json

from reconciler.journal import Journal
from reconciler.plan import Change, Movement


def test_an_interrupted_run_says_so(tmp_path):
    change = Change(Movement.ALTA, "ad", "account", "E1", "jnunezo (José Ñúñez O'Brien)")
    journal = Journal(tmp_path / "journal", "ad-run")
    journal.start("run", "ad", "commit abc", [change])
    journal.close(aborted=KeyboardInterrupt("stopped by the operator"))
    records = [json.loads(line) for line in journal.path.read_text(encoding="utf-8").splitlines()]
    assert [r["event"] for r in records] == ["start", "planned", "aborted", "end"]
    assert records[1]["label"] == "jnunezo (José Ñúñez O'Brien)"
    assert records[2]["reason"] == "KeyboardInterrupt: stopped by the operator"
