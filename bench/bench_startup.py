"""Benchmark: how fast each command starts, and what it imports.

    .venv/bin/python bench/bench_startup.py [RUNS]     (default 15; `plan` needs ci/lab/up)

For each command it runs the installed `reconciler` RUNS times as a new process and takes the
median wall time; then, once, `python -X importtime` of the same command to measure how much
of it is importing, and which target libraries (ldap3, pyinfra, netmiko, gitpython) were loaded.

  --help                          parsing only
  validate                        the example desired_state/ and inventory, from the working tree
  plan (incremental, one change)  a small repository whose one-person change lands after the
                                  applied commit, planned with --since-applied against the lab AD,
                                  on a freshly provisioned lab domain, left fresh afterwards
                                  (skipped, and said so, when the lab is not up)

Goals (issue 11): --help under 0.1 s, validate under 0.3 s, the incremental plan under 0.3 s.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECONCILER = ROOT / ".venv" / "bin" / "reconciler"
PYTHON = ROOT / ".venv" / "bin" / "python"
LIBRARIES = ("ldap3", "pyinfra", "netmiko", "git", "paramiko", "jsonschema")
LAB = Path("/var/lib/reconciler-lab")


def wall(argv: list[str], expect: int, env: dict) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    took = time.perf_counter() - started
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}, expected {expect}\n{proc.stderr}")
    return took


def imports(argv: list[str], env: dict) -> tuple[float, list[str]]:
    """Seconds spent importing (sum of top-level cumulative times) and the libraries loaded."""
    code = "import sys; from reconciler.cli import main; sys.argv[0] = 'reconciler'; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([str(PYTHON), "-X", "importtime", "-c", code, *argv[1:]], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env, text=True)
    total, loaded = 0, set()
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        if len(m.group(3)) == 1:  # a top-level import: its cumulative time counts once
            total += int(m.group(2))
        root = m.group(4).split(".")[0]
        if root in LIBRARIES:
            loaded.add(root)
    return total / 1e6, sorted(loaded)


def incremental_repo(work: Path) -> tuple[list[str], int] | None:
    """A repository with one applied commit and one more that changes one person."""
    if not (LAB / "bind.pw").is_file():
        return None
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_ad import BASE, fresh_lab, inventory  # noqa: E402  (bench helpers, the lab's AD inventory)
    from gitrepo import land
    from people import ENTITLEMENTS, generate, write
    import yaml

    repo = work / "repo"
    write(repo, generate(50, seed=50))
    entitlements = {k: {**v, "group": f"{v['group']}-S50"} for k, v in ENTITLEMENTS.items()}
    (repo / "desired_state" / "entitlements.yaml").write_text(
        yaml.safe_dump({"entitlements": entitlements}, allow_unicode=True), encoding="utf-8")
    land(repo, "50 people")
    inv = inventory(work / "inventory.yaml", f"OU=Startup,{BASE}")
    base = [str(RECONCILER), "--repo", str(repo)]
    fresh_lab()  # other data in the lab (the demo's people) would hold some of the generated keys and names
    applied = subprocess.run(base + ["apply", "--inventory", str(inv), "--auto-approve"], stdout=subprocess.DEVNULL)
    if applied.returncode != 0:
        raise SystemExit(f"the lab's directory does not take the 50 people (apply exit {applied.returncode})")
    files = sorted((repo / "desired_state" / "users").glob("*.yaml"))
    text = files[0].read_text(encoding="utf-8")
    files[0].write_text(re.sub(r"(?m)^(\s+title: ).*$", r"\1Jefe de Servicio", text, count=1), encoding="utf-8")
    land(repo, "Cambio de puesto")
    return base + ["plan", "--inventory", str(inv), "--since-applied"], 2


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    sys.path.insert(0, str(ROOT / "bench"))
    import gitrepo  # noqa: F401  (sets the apply key, as the apply job has it: incremental plans trust its refs)

    env = {**os.environ, "NO_COLOR": "1"}
    commands = {
        "--help": ([str(RECONCILER), "--help"], 0),
        "validate": ([str(RECONCILER), "--repo", str(ROOT), "validate", "--inventory",
                      str(ROOT / "inventory" / "lab.yaml")], 0),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        planned = incremental_repo(Path(tmp))  # on a freshly provisioned lab domain
        if planned is not None:
            commands["plan --since-applied (one change)"] = planned
        for name, (argv, expect) in commands.items():
            wall(argv, expect, env)  # warm the page cache and .pyc files
            seconds = statistics.median(wall(argv, expect, env) for _ in range(runs))
            imported, libraries = imports(argv, env)
            results[name] = {"seconds": round(seconds, 3), "import_seconds": round(imported, 3),
                             "target_libraries": libraries}
        python = statistics.median(wall([str(PYTHON), "-c", "pass"], 0, env) for _ in range(runs))
    print(f"Start-up of each command, median of {runs} runs (bare Python: {python:.3f} s):")
    for name, r in results.items():
        libs = ", ".join(r["target_libraries"]) or "none"
        print(f"  {name:36s} {r['seconds']:6.3f} s   importing {r['import_seconds']:.3f} s   libraries: {libs}")
    if planned is None:
        print("  plan --since-applied: skipped, the lab is not up (ci/lab/up)")
    if planned is not None:
        from bench_ad import fresh_lab
        fresh_lab()  # leave the lab as the tests do: run ci/demo again to see the example data
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "startup.json").write_text(json.dumps({"runs": runs, "python_seconds": round(python, 3),
                                                  "commands": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
