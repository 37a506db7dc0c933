"""Benchmark the mail provider's plan on the lab's real Dovecot: N declared mailboxes, all in
place, so the plan must find nothing to change.

    .venv/bin/python bench/bench_mail.py [N]     (default 10000; needs ci/lab/up)

It generates N people (bench/people.py) and gives every active one a mailbox, then brings the
lab's mail registry to that state the way apply does (the registry and its maps staged and
written by the reconciler's own applier; doveadm is not asked to create N mailboxes' folders,
which the plan never reads).  Then it times, median of 5 runs:
  - load: the YAML loaded and validated (shared with every other target);
  - read: the registry and the three maps parsed, and doveadm's one request (the users
    Dovecot serves, and each shared mailbox's rights);
  - diff: the pure function;
  - settled check: the proof that nothing the plan read has changed since a plan that found
    nothing to do (providers/mail/settled.py): the files fetched again, Dovecot asked again,
    both compared as digests.  What a drift check pays for the mail server while it holds;
and checks the plan is empty.  The lab's mail files are restored afterwards.
Goal (issue 4): the mailbox plan (read + diff) for 10,000 people under 3 seconds.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from labmark import lab_used  # noqa: E402

from in_place import mailboxes_in_place, with_mailboxes  # noqa: E402
from people import generate, write  # noqa: E402

from reconciler.desired.load import load_desired_state  # noqa: E402
from reconciler.config.inventory import load_inventory, mail_rules  # noqa: E402
from reconciler.providers.contract import PlanRequest  # noqa: E402
from reconciler.providers.mail.provider import MailProvider  # noqa: E402
from reconciler.providers.mail.diff import diff  # noqa: E402
from reconciler.providers.mail.records import expand  # noqa: E402
from reconciler.providers.mail.host import LocalHost  # noqa: E402

RUNS = 5
FILES = ("registry", "recipients", "aliases", "denied")


def main() -> None:
    lab_used("bench/bench_mail.py")  # ci/demo provisions a new lab after this
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    today = time.strftime("%Y-%m-%d")
    targets = load_inventory(ROOT / "inventory" / "lab.yaml")
    target = targets["mail-lab"]
    saved = {name: Path(getattr(target, name)).read_bytes() for name in FILES}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp)
            write(repo, with_mailboxes(generate(n, seed=n)))
            started = time.perf_counter()
            state = load_desired_state(repo / "desired_state", mail=mail_rules(targets))
            load_seconds = time.perf_counter() - started
            entries = mailboxes_in_place(target, state, today)
            reads, diffs, totals, checks, held = [], [], [], [], 0
            os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp()  # the settled memory of this bench alone
            for _ in range(RUNS):
                with MailProvider(target) as provider:
                    t0 = time.perf_counter()
                    actual, _ = provider.read()
                    t1 = time.perf_counter()
                    changes, conflicts = diff(expand(state, target), actual, target, today)
                    t2 = time.perf_counter()
                    planned = provider.plan(PlanRequest(state, today))
                    provider.settle(planned, "bench")
                    t3 = time.perf_counter()
                    standing = provider.settled("bench")
                    checks.append(time.perf_counter() - t3)
                    held += standing is not None
                assert not changes and not conflicts, (changes[:3], conflicts[:3])
                reads.append(t1 - t0)
                diffs.append(t2 - t1)
                totals.append(t2 - t0)
    finally:
        for name, data in saved.items():
            LocalHost().write(getattr(target, name), data.decode("utf-8"))
    result = {
        "people": n, "mailboxes": entries, "load_s": round(load_seconds, 3),
        "read_s": round(statistics.median(reads), 3), "diff_s": round(statistics.median(diffs), 3),
        "mail_plan_s": round(statistics.median(totals), 3), "goal_s": 3.0, "changes": 0,
        "settled_check_s": round(statistics.median(checks), 3), "settled_held": held,
    }
    print(f"{n} people, {entries} mailboxes in the registry, nothing to change (median of {RUNS}):")
    print(f"  load + validate YAML (shared by every target)   {result['load_s']:.2f} s")
    print(f"  read: registry, maps and one doveadm request     {result['read_s']:.2f} s")
    print(f"  diff                                             {result['diff_s']:.2f} s")
    print(f"  mailbox plan (read + diff)                       {result['mail_plan_s']:.2f} s  (goal < 3 s)")
    print(f"  settled check (nothing it reads has changed)     {result['settled_check_s']:.2f} s  "
          f"(held in {held} of {RUNS}: a check that does not hold means a normal plan)")
    out = ROOT / "bench" / "results" / "mail.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
