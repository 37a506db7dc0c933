"""The full no-change plan of N people as a command: cold, warm, and after 100 hand edits.

    .venv/bin/python bench/bench_plan.py N --dir DIR [--runs R]   (needs the lab loaded with
                                                                   bench/lab_load.py N --dir DIR)

On the repository and lab bench/lab_load.py left in DIR, with delta reads on
(`delta_read_hours: 24`), it times `reconciler plan --target bench` (the directory) as a new
process, median of R runs (3):
  - cold: an empty cache directory (no parse cache, no compiled schemas, no directory snapshot):
    every file parsed and validated, every account read;
  - settled, nothing written: the same plan again; the cold one found nothing to do, so this
    one stands on it when the directory proves nothing it reads changed (run/settled.py);
  - settled, after 100 logons: 100 accounts written by hand in attributes the plan does not
    read (what logons and password changes do): the USN moves, the plan must still stand;
  - warm, no settled plan: the remembered plan removed, the plan as before settled plans (the
    delta read, then the desired state and the diff of everyone);
  - after 100 hand edits: 100 accounts changed by hand in the directory (titles, a disabled
    account, group memberships added and removed), then the plan; every edited employee key must
    be in the plan as drift, and nothing else.  The warm plan before it found nothing and was
    remembered, so this one plans only the people written (run/settled.py).  The edits are
    undone after each run;
then, when DIR's inventory has the mail server and the registrar too (bench/lab_load.py), the
nightly drift check of every target, `reconciler plan`:
  - every target, first plan: the directory's memory is of another selection of targets, so
    every target is read (the directory by its delta read) and the plan is remembered;
  - every target, settled: the same plan again, standing on it;
  - every target, after 100 hand edits in the directory: only the people written are planned,
    the mail server and the registrar standing on their memories;
and, for each, the peak resident memory from /usr/bin/time -v.  Beside them: one paged search
of the same attributes over the people OU with a default ldap3 connection, in-process.
"""
from __future__ import annotations

import argparse
import json
import os
import random
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

from bench_ad import LAB, bare_ldap3_search  # noqa: E402

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, NONE, SUBTREE, Connection, Server, Tls  # noqa: E402

from reconciler.config.inventory import load_inventory  # noqa: E402

RECONCILER = ROOT / ".venv" / "bin" / "reconciler"
SETTLED = "nothing it reads has changed since the plan of"  # the scope of a plan that stood (run/settled.py)
ONLY_THEY = "only they are planned"  # the scope of a plan of only the people written since


def delta_inventory(workdir: Path, n: int) -> Path:
    raw = yaml.safe_load((workdir / f"inventory-{n}.yaml").read_text(encoding="utf-8"))
    raw["targets"]["bench"]["delta_read_hours"] = 24
    path = workdir / f"inventory-{n}-delta.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def command(repo: Path, inventory: Path, cache: Path, every: bool = False) -> tuple[float, float, dict]:
    """Seconds, peak MiB and the JSON plan of one `reconciler plan` of the directory (`every`:
    of every target), as a new process."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    args = ["/usr/bin/time", "-v", str(RECONCILER), "--repo", str(repo), "plan", "--inventory", str(inventory),
            "--output", "json", *([] if every else ["--target", "bench"])]
    t0 = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 2):
        raise SystemExit(f"plan failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    return seconds, peak, json.loads(done.stdout)


def admin() -> Connection:
    import ssl

    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(LAB / "ca.pem"))
    server = Server("127.0.0.1", port=636, use_ssl=True, tls=tls, get_info=NONE)
    return Connection(server, user="Administrator@SALUD.LAB", password=(LAB / "bind.pw").read_text(), auto_bind=True)


def hand_edits(conn: Connection, target, n: int, count: int, seed: int, undo: list) -> set[str]:
    """`count` enabled accounts edited by hand; returns their keys, and adds to `undo` how to
    undo each edit as it is made."""
    found = [(e["dn"], e["attributes"]["employeeID"], e["attributes"].get("title"))
             for e in conn.extend.standard.paged_search(
                 target.people_ou, "(&(objectClass=user)(employeeID=*)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
                 SUBTREE, attributes=["employeeID", "title"], paged_size=1000, generator=True)
             if e.get("type") == "searchResEntry"]
    chosen = random.Random(seed).sample(sorted(found), count)
    group = f"CN=GG-VPN-Remoto-B{n},{target.groups_ou}"  # bench/lab_load.py's groups: GG-…-B<N>
    keys = set()
    for i, (dn, key, title) in enumerate(chosen):
        keys.add(key if isinstance(key, str) else key[0])
        if i % 10 == 0:  # a membership added (or removed) by hand: the group changes, not the account
            if conn.modify(group, {"member": [(MODIFY_ADD, [dn])]}):
                undo.append((group, {"member": [(MODIFY_DELETE, [dn])]}))
            else:
                conn.modify(group, {"member": [(MODIFY_DELETE, [dn])]})
                undo.append((group, {"member": [(MODIFY_ADD, [dn])]}))
        elif i % 10 == 1:
            conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, [514])]})
            undo.append((dn, {"userAccountControl": [(MODIFY_REPLACE, [512])]}))
        else:
            conn.modify(dn, {"title": [(MODIFY_REPLACE, ["Cambiado a mano"])]})
            old = title if isinstance(title, str) else (title[0] if title else None)
            undo.append((dn, {"title": [(MODIFY_REPLACE, [old])] if old else [(MODIFY_DELETE, [])]}))
        assert conn.result["result"] == 0, conn.result
    return keys


def logons(conn: Connection, target, count: int, seed: int) -> None:
    """What a morning of logons and password changes writes: `count` accounts' attributes the
    plan does not read (info, comment).  The directory's USN moves; the plan must still stand."""
    found = [e["dn"] for e in conn.extend.standard.paged_search(
        target.people_ou, "(&(objectClass=user)(employeeID=*))", SUBTREE, attributes=["1.1"], paged_size=1000,
        generator=True) if e.get("type") == "searchResEntry"]
    for dn in random.Random(seed).sample(sorted(found), count):
        conn.modify(dn, {"info": [(MODIFY_REPLACE, [f"logon {seed}"])], "comment": [(MODIFY_REPLACE, ["logon"])]})
        assert conn.result["result"] == 0, conn.result


LABELS = (("cold", "cold cache, full read"), ("settled", "warm, settled, nothing written"),
          ("logons", "warm, settled, after 100 logons"), ("warm", "warm, no settled plan, no change"),
          ("edits", "warm cache, after 100 hand edits"),
          ("every", "every target, first plan"), ("every-settled", "every target, settled"),
          ("every-edits", "every target, after 100 hand edits"))


def after_edits(conn: Connection, target, n: int, seed: int, plan_now) -> tuple[float, float]:
    """100 hand edits in the directory, `plan_now()`, the edits undone; every edited key must
    be planned, and nothing else, as a plan of only the people written."""
    undo: list = []
    try:
        keys = hand_edits(conn, target, n, 100, seed, undo)
        seconds, peak, plan = plan_now()
    finally:
        for dn, change in undo:
            conn.modify(dn, change)
    planned = {c["key"] for c in plan["changes"]}
    assert ONLY_THEY in plan["scope"], plan["scope"]
    assert planned == keys, f"edits not found: {sorted(keys - planned)[:5]}, extra: {sorted(planned - keys)[:5]}"
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    repo, inventory = args.dir / f"repo-{args.n}", delta_inventory(args.dir, args.n)
    target = load_inventory(inventory)["bench"]
    conn = admin()
    every = {"bench-mail", "bench-phone"} <= set(load_inventory(inventory))  # bench/lab_load.py's three targets
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in LABELS}
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-cache-") as tmp:
        for run in range(args.runs):
            cache = Path(tmp) / f"cold-{run}"
            seconds, peak, plan = command(repo, inventory, cache)
            assert not plan["changes"], f"the directory is not at the desired state: {len(plan['changes'])} changes"
            rows["cold"].append((seconds, peak))
            seconds, peak, plan = command(repo, inventory, cache)
            assert not plan["changes"] and SETTLED in plan["scope"], plan["scope"]
            rows["settled"].append((seconds, peak))
            logons(conn, target, 100, run)
            seconds, peak, plan = command(repo, inventory, cache)
            assert not plan["changes"] and SETTLED in plan["scope"], plan["scope"]
            rows["logons"].append((seconds, peak))
            for memory in cache.glob("reconciler/directory/*.settled.json"):
                memory.unlink()  # the plan as it was before settled plans: the delta read, then everything
            seconds, peak, plan = command(repo, inventory, cache)
            assert not plan["changes"] and SETTLED not in plan["scope"]
            rows["warm"].append((seconds, peak))
            rows["edits"].append(after_edits(conn, target, args.n, run, lambda: command(repo, inventory, cache)))
            if every:  # the nightly drift check of every target: the directory, mailboxes and extensions
                seconds, peak, plan = command(repo, inventory, cache, every=True)
                assert not plan["changes"] and SETTLED not in plan["scope"], plan["scope"]
                rows["every"].append((seconds, peak))
                seconds, peak, plan = command(repo, inventory, cache, every=True)
                assert not plan["changes"] and SETTLED in plan["scope"], plan["scope"]
                rows["every-settled"].append((seconds, peak))
                rows["every-edits"].append(after_edits(conn, target, args.n, run + 100,
                                                       lambda: command(repo, inventory, cache, every=True)))
            print(f"  run {run + 1}: " + ", ".join(f"{name} {rows[name][-1][0]:.2f} s" for name in rows if rows[name]),
                  flush=True)
    t0 = time.perf_counter()
    bare_ldap3_search(target, target.people_ou)
    bare = time.perf_counter() - t0
    print(f"\nN = {args.n} people, `reconciler plan` as a command, median of {args.runs} (peak memory):")
    for name, label in LABELS:
        if not rows[name]:
            continue
        seconds = statistics.median(s for s, _ in rows[name])
        peak = max(p for _, p in rows[name])
        print(f"  {label:34s} {seconds:7.2f} s   {peak:6.0f} MiB")
    print(f"  {'bare ldap3 paged search':34s} {bare:7.2f} s   (in-process, the same attributes, people OU)")


if __name__ == "__main__":
    main()
