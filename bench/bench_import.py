"""Benchmark: importing an existing directory, and the adoption plan that follows.

    .venv/bin/python bench/bench_import.py [N] [--no-plant]    (default 10000; needs ci/lab/up)

On a freshly provisioned lab domain (ci/lab/down --purge; ci/lab/up: deleting ten thousand
objects with ldbdel takes longer than planting them), plants the legacy lab with N accounts
(ci/lab/legado-up --people N --password-every 50: one ldbadd, timed apart; Samba derives every
password's Kerberos keys, so only one account in 50 gets one), then times, as
commands, median of three runs:
  - `reconciler import --report-only` (one paged search per search base, every group once);
  - `reconciler import` writing the units' files;
  - `reconciler plan --output json` of the imported desired state (working tree): every person
    found by employeeID across the domain and planned as an adopción;
and prints the counts, so the figures can be checked against what was planted.  The legacy
directory is left, and the lab marked (labmark): ci/demo starts from a new one.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ci" / "lab"))
from demo_repo import complete  # noqa: E402
from labmark import lab_used  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LAB = Path(os.environ.get("RECONCILER_LAB_DIR", "/var/lib/reconciler-lab"))
CLI = [str(ROOT / ".venv" / "bin" / "reconciler")]
LEGACY = "OU=Heredado,DC=salud,DC=lab"


def timed(argv: list[str], runs: int = 3) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 2):
            sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        out = proc.stdout
    return statistics.median(times), out


def workspace(tmp: Path) -> tuple[Path, Path]:
    repo = tmp / "repo"
    (repo / "desired_state" / "users").mkdir(parents=True)
    shutil.copy(ROOT / "desired_state" / "units.yaml", repo / "desired_state" / "units.yaml")
    # The legacy directory's groups, as legado-up wrote their entitlements.
    shutil.copy(LAB / "legacy" / "entitlements.yaml", repo / "desired_state" / "entitlements.yaml")
    lab = yaml.safe_load((ROOT / "inventory" / "lab.yaml").read_text(encoding="utf-8"))
    ad = lab["targets"]["ad-lab"]
    ad["ous"] = {"people": f"OU=Personal,OU=Reconciler,{LEGACY}", "groups": f"OU=Grupos,{LEGACY}",
                 "bajas": f"OU=Bajas,OU=Reconciler,{LEGACY}"}
    ad["audit_dir"] = ad["credentials_dir"] = str(tmp / "audit")
    ad["adopt_from"] = [f"OU=Usuarios,{LEGACY}"]
    inventory = tmp / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"delivery": {"mode": "clear-text-file-lab-only"},
                                         "targets": {"ad-legado": ad}}, allow_unicode=True), encoding="utf-8")
    return repo, inventory


def main() -> int:
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), 10_000))
    start = time.perf_counter()
    if "--no-plant" in sys.argv:  # the lab already holds them (a second run of the same N)
        planted = 0.0
    else:
        plant(n)
        planted = time.perf_counter() - start
    return measure(n, planted)


def plant(n: int) -> None:
    lab_used("bench_import")
    for script in ("down", "up"):
        args = [str(ROOT / "ci" / "lab" / script)] + (["--purge"] if script == "down" else [])
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab_used("bench_import")
    subprocess.run([str(ROOT / "ci" / "lab" / "legado-up"), "--people", str(n), "--password-every", "50"],
                   check=True, capture_output=True)


def measure(n: int, planted: float) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        repo, inventory = workspace(Path(tmp))
        common = CLI + ["--repo", str(repo)]
        mapping = ["--inventory", str(inventory), "--mapping", str(ROOT / "inventory" / "legado-import.yaml")]
        report, out = timed(common + ["import", *mapping, "--report-only", "--output", "json"])
        rows = json.loads(out)["rows"]
        users = repo / "desired_state" / "users"

        def write() -> list[str]:  # the folders import writes, empty again
            for folder in ("users", "assets", "security_rules"):
                shutil.rmtree(repo / "desired_state" / folder, ignore_errors=True)
            users.mkdir()
            return common + ["import", *mapping, "--output", "json"]

        times = []
        for _ in range(3):
            argv = write()
            t, _out = timed(argv, runs=1)
            times.append(t)
        people = sum(len(yaml.safe_load(p.read_text(encoding="utf-8"))["people"]) for p in users.glob("*.yaml"))
        complete(repo / "desired_state")  # what a person fills in before the pull request
        git = ["git", "-C", str(repo)]
        subprocess.run(git + ["init", "-q", "-b", "main"], check=True)
        plan_time, out = timed(common + ["plan", "--working-tree", "--inventory", str(inventory), "--output", "json"])
        plan = json.loads(out)
    print(f"legacy lab: {n} accounts planted in {planted:.1f} s (ldbadd; 0: planted before)")
    print(f"import --report-only: {report:.2f} s ({len(rows)} report rows)")
    print(f"import writing the units' files: {statistics.median(times):.2f} s ({people} people)")
    print(f"adoption plan (plan --working-tree): {plan_time:.2f} s, summary {plan['summary']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
