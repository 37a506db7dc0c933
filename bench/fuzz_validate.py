"""Fuzzing `reconciler validate` at length (issue 13): many hostile repositories, the figures,
and each distinct failing shape with a minimised example.

    .venv/bin/python bench/fuzz_validate.py [--cases 20000] [--workers 2] [--seed 1] [--bound 5]
                                            [--subprocess-every 200] [--budget 300] [--json FILE]

Writes the figures to bench/results/fuzz_validate.json too (--json elsewhere).

The cases and the property are tests/fuzz_strategies.py's, the same the CI test
(tests/test_fuzz_validate.py) runs a few hundred of: the example repository after one to four
mutations (hostile values at any path, raw YAML tokens, syntax damage, bytes that are not
UTF-8, duplicated keys, aliases, deep nesting, files removed, added under odd names or replaced
by links to a secret outside the repository), maybe with a long secret planted as a value.

Each worker process draws its share of the cases with Hypothesis (generation only: no
shrinking, no example database) and validates each in-process through the CLI's entry point
(`main(["--debug", ...])`: an internal error raises, with its traceback), under a SIGALRM of
twice the time bound; every `--subprocess-every`-th case is also run as `python -m
reconciler.cli`.  The parent kills a worker that reports nothing for a minute (a hang SIGALRM
cannot interrupt, in C) or that dies (a segfault), counts the case it was on, and starts
another for the rest.  Then each distinct failure (its kind and signature: the crash site, the
message's shape) is minimised, in a process of its own: files restored to the valid example
one at a time, then the lines and characters of what is left, while the same failure remains.

Printed: cases, exit 0 and 1, crashes, timeouts, leaks, format failures, time per case (mean,
median, 99th percentile, max), cases per second, wall time, and the shapes.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # fuzz_strategies, and the test helpers it builds on
HANG = 60.0  # default seconds without a word from a worker: it is stuck where SIGALRM cannot reach
KINDS = ("crash", "timeout", "leak", "format", "exit")


# -- a worker: draws and checks its share of the cases -------------------------------------

def worker(args) -> None:
    import fuzz_strategies as fs
    from hypothesis import HealthCheck, Phase, given, seed, settings

    out = Path(args.dir)
    current = out / f"current-{args.worker_id}.pickle"
    saved: set[str] = set()
    count = 0

    def emit(**record) -> None:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    @seed(args.seed)
    @settings(max_examples=args.cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(fs.cases())
    def one(case) -> None:
        nonlocal count
        count += 1
        current.write_bytes(pickle.dumps(case))
        try:
            run, failures = fs.check(case, bound=args.bound)
        except OSError as exc:  # the harness could not write the case (a name the file system refuses)
            emit(case=count, harness=str(exc))
            current.unlink()
            return
        record = {"case": count, "seconds": round(run.seconds, 5), "code": run.code,
                  "failures": [[f.kind, f.signature] for f in failures]}
        if args.subprocess_every and count % args.subprocess_every == 0:
            _, sub_failures = fs.check(case, subprocess_=True, bound=args.bound)
            record["sub"] = [[f.kind, f.signature] for f in sub_failures]
            failures = failures + sub_failures
        for f in failures:
            key = f"{f.kind}\t{f.signature}"
            if key not in saved:
                saved.add(key)
                path = out / f"case-{args.worker_id}-{count}-{len(saved)}.pickle"
                path.write_bytes(pickle.dumps((case, f)))
                record.setdefault("saved", {})[key] = str(path)
        emit(**record)
        current.unlink()  # a hang with no current case is in Hypothesis or the mutations, not in validate

    one()
    emit(done=True, cases=count)


# -- minimising one failure ----------------------------------------------------------------

def minimise(args) -> None:
    import fuzz_strategies as fs

    case, failure = pickle.loads(Path(args.minimise).read_bytes())
    kind, signature = args.kind, args.signature
    subprocess_ = args.via_subprocess
    tests = 0

    def same(candidate) -> bool:
        nonlocal tests
        if tests >= args.budget:
            raise _Budget()
        tests += 1
        try:
            _, failures = fs.check(candidate, subprocess_=subprocess_, bound=args.bound)
        except OSError:
            return False
        return any(f.kind == kind and f.signature == signature for f in failures)

    def with_files(c, files):
        return fs.Case(tuple(files.items()), c.specials, c.secret, c.steps)

    best = case
    try:
        # Whole files back to the valid example, links and the secret away, one at a time.
        for rel in list(best.changed()):
            files = best.file_map
            if rel in fs.BASE:
                files[rel] = fs.BASE[rel]
            else:
                del files[rel]
            candidate = with_files(best, files)
            if same(candidate):
                best = candidate
        for special in list(best.specials):
            candidate = fs.Case(best.files, tuple(s for s in best.specials if s != special), best.secret, best.steps)
            if same(candidate):
                best = candidate
        if best.secret is not None:
            candidate = fs.Case(best.files, best.specials, None, best.steps)
            if same(candidate):
                best = candidate
        # Then what is left of each changed file: its lines, then its characters.
        for rel, text in best.changed().items():
            if text is None:
                continue
            for unit in ("lines", "characters"):
                pieces = best.file_map[rel]
                pieces = pieces.splitlines(keepends=True) if unit == "lines" else list(pieces)

                def still(kept, rel=rel, base=best) -> bool:
                    files = base.file_map
                    files[rel] = "".join(kept)
                    return same(with_files(base, files))

                kept = _ddmin(pieces, still)
                files = best.file_map
                files[rel] = "".join(kept)
                best = with_files(best, files)
    except _Budget:
        pass
    _, failures = fs.check(best, subprocess_=subprocess_, bound=args.bound)
    detail = next((f.detail for f in failures if f.kind == kind and f.signature == signature), failure.detail)
    print(json.dumps({"tests": tests, "example": fs.describe(best, limit=400), "detail": detail[:1500]}))


class _Budget(Exception):
    pass


def _ddmin(items: list, test) -> list:
    """A smallest list of `items` (by removing chunks, halving them) for which test() holds."""
    n = 2
    while len(items) >= 2:
        size = -(-len(items) // n)
        for start in range(0, len(items), size):
            complement = items[:start] + items[start + size:]
            if complement and test(complement):
                items, n = complement, max(n - 1, 2)
                break
        else:
            if n >= len(items):
                break
            n = min(len(items), 2 * n)
    return items


# -- the parent: workers, the watchdog, the figures -----------------------------------------

class Worker:
    def __init__(self, wid: int, cases: int, seed: int, args, directory: Path, lines: queue.Queue):
        self.wid, self.cases, self.seed, self.done = wid, cases, seed, 0
        argv = [sys.executable, __file__, "--worker", "--worker-id", str(wid), "--cases", str(cases), "--seed",
                str(seed), "--bound", str(args.bound), "--dir", str(directory), "--subprocess-every",
                str(args.subprocess_every)]
        # stderr to a file: a worker's traceback can outgrow a pipe's buffer, and it would then
        # block writing it, looking hung, instead of exiting
        self.stderr = directory / f"worker-{wid}.err"
        with open(self.stderr, "w") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
        self.last = time.monotonic()
        self.finished = False
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()

    def _read(self, lines: queue.Queue) -> None:
        for line in self.proc.stdout:
            lines.put((self, line))
        lines.put((self, None))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20000)
    p.add_argument("--workers", type=int, default=max(1, min(os.cpu_count() or 1, 4)))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bound", type=float, default=5.0, help="seconds a case may take (default 5)")
    p.add_argument("--subprocess-every", type=int, default=200, help="also run every Nth case as a process")
    p.add_argument("--budget", type=int, default=300, help="validations to spend minimising each failure")
    p.add_argument("--hang", type=float, default=HANG, help="seconds of silence after which a worker is killed")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "fuzz_validate.json",
                   help="write the figures here too (default bench/results/fuzz_validate.json)")
    p.add_argument("--keep", type=Path, help="keep the failing cases (pickles) in this directory")
    # internal
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-id", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--minimise", help=argparse.SUPPRESS)
    p.add_argument("--kind", help=argparse.SUPPRESS)
    p.add_argument("--signature", help=argparse.SUPPRESS)
    p.add_argument("--via-subprocess", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if args.minimise:
        return minimise(args)

    directory = Path(tempfile.mkdtemp(prefix="fuzz-validate-")) if args.keep is None else args.keep
    directory.mkdir(parents=True, exist_ok=True)
    lines: queue.Queue = queue.Queue()
    started = time.monotonic()
    shares = [args.cases // args.workers + (1 if i < args.cases % args.workers else 0) for i in range(args.workers)]
    workers = [Worker(i, n, args.seed * 1000 + i, args, directory, lines) for i, n in enumerate(shares) if n]
    next_id = len(workers)
    times: list[float] = []
    codes: Counter = Counter()
    by_kind: Counter = Counter()  # cases with at least one failure of the kind
    shapes: dict[tuple[str, str], dict] = {}
    subprocess_runs = harness = 0
    last_print = time.monotonic()

    def note(kind: str, signature: str, saved: str | None, sub: bool = False) -> None:
        shape = shapes.setdefault((kind, signature), {"count": 0, "saved": None, "sub": sub})
        shape["count"] += 1
        if shape["saved"] is None and saved:
            shape["saved"] = saved

    def replace(w: Worker, why: str) -> None:
        nonlocal next_id
        w.finished = True
        current = directory / f"current-{w.wid}.pickle"
        saved = None
        if not current.exists():  # stuck or dead between cases: the harness's, not validate's
            kind, why = "harness", why + " between cases (drawing the next one)"
        else:
            import fuzz_strategies as fs

            kind = "timeout" if why.startswith("hang") else "crash"
            case = pickle.loads(current.read_bytes())
            saved = str(directory / f"{kind}-worker-{w.wid}.pickle")
            Path(saved).write_bytes(pickle.dumps((case, fs.Failure(kind, why, why))))
            times.append(args.hang if kind == "timeout" else 0.0)
        by_kind[kind] += 1
        note(kind, why, saved)
        remaining = w.cases - w.done - 1
        if remaining > 0:
            workers.append(Worker(next_id, remaining, args.seed * 1000 + next_id, args, directory, lines))
            next_id += 1

    while any(not w.finished for w in workers):
        try:
            w, line = lines.get(timeout=1.0)
        except queue.Empty:
            for w in workers:
                if not w.finished and time.monotonic() - w.last > args.hang:
                    w.proc.kill()
                    replace(w, f"hang: no answer for {args.hang:.0f} s (killed)")
            continue
        if w.finished:
            continue
        w.last = time.monotonic()
        if line is None:  # the worker's output ended
            code = w.proc.wait()
            if w.done < w.cases:
                last = w.stderr.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                replace(w, f"worker died with exit {code}: {last[0][:200]}")
            w.finished = True
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("done"):
            continue
        w.done += 1
        if "harness" in record:
            harness += 1
            continue
        times.append(record["seconds"])
        codes[record["code"]] += 1
        saved = record.get("saved", {})
        kinds = set()
        for kind, signature in record["failures"]:
            kinds.add(kind)
            note(kind, signature, saved.get(f"{kind}\t{signature}"))
        for kind, signature in record.get("sub", []):
            note(kind, signature, saved.get(f"{kind}\t{signature}"), sub=True)
        by_kind.update(kinds)
        subprocess_runs += "sub" in record
        if time.monotonic() - last_print > 30:
            last_print = time.monotonic()
            print(f"  … {len(times)} cases, {sum(by_kind.values())} failing, {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)
    wall = time.monotonic() - started

    print(f"cases: {len(times)} ({codes[0]} valid, exit 0; {codes[1]} with problems, exit 1; "
          f"{harness} not writable by the harness); {subprocess_runs} also run as a process; "
          f"{by_kind['harness']} workers replaced after hanging or dying between cases")
    for kind, label in zip(KINDS, ("crashes", "timeouts", "leaks", "format failures", "other exit codes")):
        print(f"{label}: {by_kind[kind]}")
    if times:
        ordered = sorted(times)
        print(f"time per case: mean {statistics.mean(times) * 1000:.1f} ms, median "
              f"{statistics.median(times) * 1000:.1f} ms, 99th percentile "
              f"{ordered[int(len(ordered) * 0.99) - 1] * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms")
    print(f"wall time: {wall:.0f} s with {args.workers} workers ({len(times) / wall:.1f} cases/s)")
    print(f"distinct failing shapes: {len(shapes)}")
    report = []
    for (kind, signature), shape in sorted(shapes.items()):
        print(f"\n== {kind}: {signature} ({shape['count']} cases{', as a process' if shape['sub'] else ''})")
        entry = {"kind": kind, "signature": signature, "count": shape["count"]}
        if shape["saved"] and not signature.startswith(("hang", "worker died")):
            budget = args.budget if kind != "timeout" else 10
            argv = [sys.executable, __file__, "--minimise", shape["saved"], "--kind", kind, "--signature", signature,
                    "--budget", str(budget), "--bound", str(args.bound)] + (["--via-subprocess"] if shape["sub"] else [])
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
                found = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"minimised in {found['tests']} validations:\n{found['example']}\n-- what it did:\n{found['detail']}")
                entry.update(found)
            except (subprocess.TimeoutExpired, IndexError, json.JSONDecodeError) as exc:
                print(f"(not minimised: {type(exc).__name__})")
        elif shape["saved"]:
            print(f"(the case it was on is in {shape['saved']})")
        report.append(entry)
    if args.json:
        ordered = sorted(times) or [0.0]
        figures = {"cases": len(times), "seed": args.seed, "workers": args.workers, "bound_seconds": args.bound,
                   "exit_0": codes[0], "exit_1": codes[1], "run_as_a_process": subprocess_runs,
                   **{label.replace(" ", "_"): by_kind[kind] for kind, label in
                      zip(KINDS, ("crashes", "timeouts", "leaks", "format failures", "other exit codes"))},
                   "harness_failures": by_kind["harness"] + harness,
                   "ms_per_case": {"mean": round(statistics.mean(ordered) * 1000, 1),
                                   "median": round(statistics.median(ordered) * 1000, 1),
                                   "p99": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1),
                                   "max": round(ordered[-1] * 1000, 1)},
                   "wall_seconds": round(wall), "shapes": report}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.keep is None and not shapes:  # the failing cases stay, for a look
        shutil.rmtree(directory, ignore_errors=True)
    elif shapes:
        print(f"\nthe failing cases (pickles of fuzz_strategies.Case) are in {directory}")


if __name__ == "__main__":
    main()
