"""Benchmark: a one-file change on a large repository, incremental plan versus full plan.

    .venv/bin/python bench/bench_incremental.py [N]     (default 10000; needs ci/lab/up)

Builds a Git repository of N generated people (main, an approved squash merge), brings the
lab's directory to it (on a freshly provisioned lab domain: N altas, about 5 minutes for
10,000 on Samba; a later run with the same N finds them in place), records that commit as applied, then lands a pull
request that changes one person's title in one file.  It times, median of several runs:
  - the full plan: every file loaded and validated, every managed account read, diffed;
  - the incremental plan (--since-applied): git diff names the file, only the changed entry
    is planned and read;
both in-process (connect + load + read + diff + provenance) and as the `reconciler plan`
command.  Both plans must be the same single modificación.
"""
from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from labmark import lab_used  # noqa: E402

from bench_ad import BASE, fresh_lab, inventory  # noqa: E402
from gitrepo import land  # noqa: E402
from people import ENTITLEMENTS, generate, write  # noqa: E402

from reconciler.desired.entries import split_entries  # noqa: E402
from reconciler.run.engine import Run  # noqa: E402
from reconciler.desired.source import at_ref  # noqa: E402


def timed_plan(repo: Path, inv: Path, since_applied: bool):
    split_entries.cache_clear()  # every run cold, as a fresh `reconciler plan` is
    t0 = time.perf_counter()
    with Run(at_ref(repo), inv, since_applied=since_applied) as run:
        plan = run.plan()
    return time.perf_counter() - t0, plan


def command(repo: Path, inv: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "reconciler"), "--repo", str(repo), "plan",
                           "--inventory", str(inv), *extra], stdout=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.returncode  # exactly the one change
    return time.perf_counter() - t0


def main() -> None:
    lab_used("bench/bench_incremental.py")  # ci/demo provisions a new lab after this
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo = work / "repo"
        write(repo, generate(n, seed=n))
        entitlements = {k: {**v, "group": f"{v['group']}-I{n}"} for k, v in ENTITLEMENTS.items()}
        (repo / "desired_state" / "entitlements.yaml").write_text(
            yaml.safe_dump({"entitlements": entitlements}, allow_unicode=True), encoding="utf-8")
        land(repo, f"{n} people")
        inv = inventory(work / "inventory.yaml", f"OU=Incr-{n},{BASE}")

        with Run(at_ref(repo), inv, lock=True) as run:
            plan = run.plan()
            if plan.empty:
                run.record_applied(plan)
                print(f"N = {n}: the directory already holds these {n} people")
        if not plan.empty:
            # Other data in the lab (the demo's people) would hold some of the generated names.
            fresh_lab()
            with Run(at_ref(repo), inv, lock=True) as run:
                plan = run.plan()
                print(f"N = {n}: bringing a fresh lab directory to the repository ({plan.summary_line()})", flush=True)
                t0 = time.perf_counter()
                report = run.apply(plan)
                assert report.ok and report.applied_refs, "the initial apply must complete"
                print(f"  initial apply: {time.perf_counter() - t0:.1f} s", flush=True)

        files = sorted((repo / "desired_state" / "users").glob("*.yaml"))
        changed = files[len(files) // 2]
        text = changed.read_text(encoding="utf-8")
        changed.write_text(re.sub(r"(?m)^(\s+title: ).*$", r"\1Jefe de Servicio", text, count=1), encoding="utf-8")
        land(repo, "Cambio de puesto")
        people_in_file = text.count("employee_key:")

        full = [timed_plan(repo, inv, False) for _ in range(3)]
        incr = [timed_plan(repo, inv, True) for _ in range(5)]
        for _, plan in full + incr:
            assert len(plan.changes) == 1 and plan.changes[0].movement.value == "modificacion", plan.summary()
        assert full[0][1].changes[0].content() == incr[0][1].changes[0].content()
        full_s = statistics.median(t for t, _ in full)
        incr_s = statistics.median(t for t, _ in incr)
        full_cmd = statistics.median(command(repo, inv) for _ in range(3))
        incr_cmd = statistics.median(command(repo, inv, "--since-applied") for _ in range(3))
    print(f"\nOne title changed in {changed.name} ({people_in_file} people), repository of {n} people:")
    print(f"  full plan        : {full_s:7.3f} s in-process   {full_cmd:7.3f} s as `reconciler plan`")
    print(f"  incremental plan : {incr_s:7.3f} s in-process   {incr_cmd:7.3f} s as `reconciler plan --since-applied`")
    print(f"  full / incremental: {full_s / incr_s:.1f}x in-process, {full_cmd / incr_cmd:.1f}x as commands "
          "(the command includes starting Python and importing, about 0.3 s)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "incremental.json").write_text(json.dumps({
        "people": n, "file_people": people_in_file, "full_plan_seconds": round(full_s, 3),
        "incremental_plan_seconds": round(incr_s, 3), "ratio_in_process": round(full_s / incr_s, 1),
        "full_command_seconds": round(full_cmd, 3), "incremental_command_seconds": round(incr_cmd, 3),
        "ratio_commands": round(full_cmd / incr_cmd, 1)}, indent=2))


if __name__ == "__main__":
    main()
