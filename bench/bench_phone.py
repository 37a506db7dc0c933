"""Benchmark the phone provider's plan: N extensions declared and in place, nothing to change.

    .venv/bin/python bench/bench_phone.py [N]     (default 10000; needs only Kamailio's schema)

It generates N people (bench/people.py) and one extension each, creates a registrar database
with Kamailio's own SQLite schema (/usr/share/kamailio/db_sqlite/auth_db-create.sql) in a
temporary directory, brings it to the declared state with the provider's own apply (N altas:
N random secrets, one transaction), then times the no-change plan, median of 5:
  - read: the one query over the subscriber table and the reconciler's ownership table;
  - diff: the pure function (including working out which extensions should exist);
and checks it is empty.  Goal (issue 6): under 2 seconds for 10,000 extensions.
"""
from __future__ import annotations

import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from in_place import extensions  # noqa: E402
from people import generate, write  # noqa: E402

from reconciler.credentials import CredentialFile  # noqa: E402
from reconciler.desired.load import load_desired_state  # noqa: E402
from reconciler.providers.sip.target import DatabaseSettings, SipTarget  # noqa: E402
from reconciler.providers.contract import PlanRequest  # noqa: E402
from reconciler.providers.sip.provider import SipProvider  # noqa: E402
from reconciler.providers.sip import store  # noqa: E402
from reconciler.providers.sip.diff import desired_lines, diff  # noqa: E402

SCHEMA = Path("/usr/share/kamailio/db_sqlite/auth_db-create.sql")
RUNS = 5


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        by_unit = generate(n, seed=n)
        write(tmp, by_unit)
        (tmp / "desired_state" / "assets").mkdir(exist_ok=True)
        (tmp / "desired_state" / "assets" / "lines.yaml").write_text(
            yaml.safe_dump({"lines": extensions(by_unit)}, allow_unicode=True, sort_keys=False))
        database = tmp / "kamailio.db"
        with sqlite3.connect(database) as db:
            db.execute("CREATE TABLE version (table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL)")
            db.executescript(SCHEMA.read_text())
        target = SipTarget(name="bench", domain="salud.lab", database=DatabaseSettings(path=str(database)), rpc_url="http://127.0.0.1:1/RPC")
        state = load_desired_state(tmp / "desired_state")
        with SipProvider(target) as provider:
            planned = provider.plan(PlanRequest(state, "2026-11-22"))
            started = time.perf_counter()
            credentials = CredentialFile(tmp / "credentials", "bench")
            outcomes = provider.apply(planned, planned.changes, credentials)
            credentials.close()
            apply_seconds = time.perf_counter() - started
            assert all(o.status == "applied" for o in outcomes), [o.error for o in outcomes if o.error][:3]
        reads, diffs = [], []
        for _ in range(RUNS):
            with SipProvider(target) as provider:
                t0 = time.perf_counter()
                actual = store.read(provider.conn, target.domain)
                t1 = time.perf_counter()
                desired, gone = desired_lines(state)
                changes, conflicts = diff(desired, actual, target.name, gone)
                t2 = time.perf_counter()
            assert not changes and not conflicts
            reads.append(t1 - t0)
            diffs.append(t2 - t1)
    result = {"extensions": len(outcomes), "apply_altas_s": round(apply_seconds, 3),
              "read_s": round(statistics.median(reads), 3), "diff_s": round(statistics.median(diffs), 3),
              "phone_plan_s": round(statistics.median(reads) + statistics.median(diffs), 3), "goal_s": 2.0}
    print(f"{result['extensions']} extensions in place, nothing to change (median of {RUNS}):")
    print(f"  read: one query (subscriber + ownership)   {result['read_s']:.3f} s")
    print(f"  diff                                      {result['diff_s']:.3f} s")
    print(f"  phone plan (read + diff)                  {result['phone_plan_s']:.3f} s  (goal < 2 s)")
    print(f"  for reference, the {result['extensions']} altas (secrets, one transaction)  {apply_seconds:.2f} s")
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "phone.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
