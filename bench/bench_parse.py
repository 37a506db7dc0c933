"""Benchmark: loading and validating the desired state of N people, with the parse cache cold
(nothing kept: every unit file parsed and validated) and warm (every file read before by this
program), as `reconciler validate` does it, each a fresh process; with its peak memory.

    .venv/bin/python bench/bench_parse.py [N ...]     (default 10000 100000; no lab needed)

Generates N people (bench/people.py, ten units) into a Git repository once per N, then runs
`reconciler validate --ref main` three times cold (a new, empty cache directory each time) and
three times warm, and prints the median seconds and the peak resident memory (the child's
ru_maxrss); then, three times, the load of 100 of those people spread over the files, as a plan
of only the people written since loads them (timed inside its process: the load alone).  The
cross-file checks (duplicate keys and CURPs, account names) run every time:
only each file's own reading is kept.
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from gitrepo import land  # noqa: E402
from people import generate, write  # noqa: E402


def repository(n: int, where: Path) -> Path:
    root = where / f"people-{n}"
    if not (root / ".git").exists():
        root.mkdir(parents=True, exist_ok=True)
        write(root, generate(n))
        land(root, f"{n} personas")
    return root


def timed(root: Path, cache: Path) -> tuple[float, int]:
    """Seconds and peak KiB of one `reconciler validate --ref main`, in its own process."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    env.pop("RECONCILER_SCHEMA_CACHE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([str(ROOT / ".venv/bin/reconciler"), "--repo", str(root), "validate", "--ref", "main",
                           "--inventory", str(ROOT / "inventory/lab.yaml")], env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(done.stdout + done.stderr)
    return took, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


SOME = """
import random, sys, time
from reconciler.desired.load import load_desired_state
from reconciler.desired.source import at_ref
files = at_ref(sys.argv[1], "main").files
everyone = load_desired_state(files).people
only = {}
for person in random.Random(18).sample(list(everyone), 100):
    only.setdefault(person.source.file.split("desired_state/", 1)[1], set()).add(person.employee_key)
start = time.perf_counter()
some = load_desired_state(at_ref(sys.argv[1], "main").files, only={k: frozenset(v) for k, v in only.items()})
assert len(some.people) == 100
print(time.perf_counter() - start)
"""


def some(root: Path, cache: Path) -> float:
    """Seconds to load 100 people spread over the files, as a plan of only the people written
    since does (the other entries blanked, not parsed), timed inside its own process."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    done = subprocess.run([str(ROOT / ".venv/bin/python"), "-c", SOME, str(root)], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(done.stdout + done.stderr)
    return float(done.stdout.strip())


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10000, 100000]
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            root = repository(n, Path(tmp))
            cold, warm, peak = [], [], 0
            for i in range(3):
                seconds, rss = timed(root, Path(tmp) / f"cold-{n}-{i}")
                cold.append(seconds)
                peak = max(peak, rss)
            cache = Path(tmp) / f"warm-{n}"
            timed(root, cache)
            for _ in range(3):
                seconds, rss = timed(root, cache)
                warm.append(seconds)
            partial = statistics.median(some(root, cache) for _ in range(3))
            print(f"{n:>7} people: validate cold {statistics.median(cold):6.2f} s, warm {statistics.median(warm):6.2f} s"
                  f"; peak memory {peak / 1024:5.0f} MiB (ru_maxrss of the largest run); 100 of them "
                  f"{partial:5.2f} s")


if __name__ == "__main__":
    main()
