"""The crash harness (bench/crash_trials.py), a short run: apply killed with SIGKILL at random
moments of altas and bajas of people with mailboxes and extensions; every trial converges
with nothing duplicated, lost, mislabelled or unrecorded.  The long run (100 trials) is the
script's default; its figures are in the README."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "crash_trials.py"


def test_short_crash_trials_all_converge_with_nothing_lost(tmp_path):
    out = tmp_path / "crash.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--trials", "4", "--batch", "3", "--seed", "7",
                           "--lab-as-is", "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text())["summary"]
    assert summary["trials"] == summary["converged"] == 4
    for figure in ("stuck", "duplicates", "lost_or_unannounced_credentials", "mislabelled_as_drift",
                   "altas_missing_from_history", "audit_failures"):
        assert summary[figure] == 0, (figure, proc.stdout)
