"""Benchmark the AD provider against the lab's Samba AD DC and against bare ldap3.

    .venv/bin/python bench/bench_ad.py [N ...]        (default: 1000 10000; needs ci/lab/up)
    .venv/bin/python bench/bench_ad.py --plan-only N  (the no-change plan again, on the data
                                                       the last full run of N left in the lab)

For each N, in both orders on fresh lab domains, it loads N generated people and prints:
  - apply: N altas by the reconciler (adds, group memberships, read-back verification), and
    the same N adds with the same attributes and password made by bare ldap3 calls on one
    connection, as accounts per second and as a ratio;
  - plan with nothing to change: load + validate the YAML, read the directory, diff; and a bare
    paged search of the same attributes, as a ratio.
Samba's add rate falls as the directory grows, so whichever runs second adds to a directory N
accounts larger: the bench runs both orders and reports the geometric mean of the two ratios.
Each N starts on a freshly provisioned lab domain (ci/lab/down --purge; ci/lab/up): deleting
tens of thousands of objects takes Samba longer than provisioning a new domain.  The lab is
disposable; the last N's data stays in it.  Run ci/demo afterwards for the example data.
"""
from __future__ import annotations

import gc
import json
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

from gitrepo import land  # noqa: E402
from in_place import extensions, with_mailboxes  # noqa: E402
from people import ENTITLEMENTS, generate, write  # noqa: E402

from reconciler.credentials import generate_password  # noqa: E402
from reconciler.desired.load import load_desired_state  # noqa: E402
from reconciler.run.engine import Run  # noqa: E402
from reconciler.config.inventory import load_inventory  # noqa: E402
from reconciler.providers.ad.connection import connect  # noqa: E402
from reconciler.providers.ad.diff import diff  # noqa: E402
from reconciler.providers.ad.read import ACCOUNT_ATTRIBUTES, read_directory  # noqa: E402
from reconciler.providers.ad.records import MANAGED_ATTRIBUTES, expand, marker_value  # noqa: E402
from reconciler.desired.source import at_ref  # noqa: E402

LAB = Path("/var/lib/reconciler-lab")
BASE = "DC=salud,DC=lab"


def inventory(path: Path, root: str, others: dict | None = None) -> Path:
    """One AD target, `bench`, managing `root`; and `others` (name: settings) beside it."""
    target = {
        "kind": "active_directory", "host": "127.0.0.1", "port": 636, "base_dn": BASE, "upn_suffix": "salud.lab",
        "ous": {"people": f"OU=Personal,{root}", "groups": f"OU=Grupos,{root}", "bajas": f"OU=Bajas,{root}"},
        # As the lab's inventory binds: applies as the delegated account, plans as the read-only one.
        "bind_dn": "svc-reconciler@SALUD.LAB", "bind_password": {"file": str(LAB / "ad" / "svc-reconciler.pw")},
        "read_bind": {"bind_dn": "svc-lectura@SALUD.LAB", "bind_password": {"file": str(LAB / "ad" / "svc-lectura.pw")}},
        "tls": {"ca_file": str(LAB / "ca.pem")}, "max_bajas": 25, "credentials_dir": str(path.parent / "creds"),
        "audit_dir": str(path.parent / "audit"),
    }
    # Clear text: the benchmark measures the directory, not the sealing (a lab's choice).
    path.write_text(yaml.safe_dump({"delivery": {"mode": "clear-text-file-lab-only"}, "targets": {"bench": target, **(others or {})}},
                                   allow_unicode=True))
    return path


def bench_repo(workdir: Path, n: int, every_kind: bool = False) -> Path:
    """DIR/repo-N: N generated people (seed N), their groups named GG-…-B<N>, as an approved
    merge; with `every_kind`, each with a mailbox and an extension too."""
    repo = workdir / f"repo-{n}"
    people = generate(n, seed=n)
    write(repo, with_mailboxes(people) if every_kind else people)
    if every_kind:
        (repo / "desired_state" / "assets").mkdir(exist_ok=True)
        (repo / "desired_state" / "assets" / "lines.yaml").write_text(
            yaml.safe_dump({"lines": extensions(people)}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    entitlements = {k: {**v, "group": f"{v['group']}-B{n}"} for k, v in ENTITLEMENTS.items()}
    (repo / "desired_state" / "entitlements.yaml").write_text(
        yaml.safe_dump({"entitlements": entitlements}, allow_unicode=True))
    land(repo, f"{n} people")
    return repo


def fresh_lab() -> None:
    for script in ("down", "up"):
        args = [str(ROOT / "ci" / "lab" / script)] + (["--purge"] if script == "down" else [])
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bare_adds(conn, accounts, root: str, bare_root: str) -> float:
    """The same adds the reconciler makes, by hand: the same DNs (in a parallel tree), the same
    attributes, marker and password, one conn.add per account on one connection."""
    unit_ous = sorted({a.parent.replace(root, bare_root) for a in accounts}, key=len)
    for ou in [bare_root, f"OU=Personal,{bare_root}", *unit_ous]:
        conn.add(ou, "organizationalUnit")
    start = time.perf_counter()
    for a in accounts:
        attrs = {n: a.attributes[n] for n in MANAGED_ATTRIBUTES if a.attributes.get(n)}
        attrs["sAMAccountName"] = "b" + a.sam[:19]  # names are unique in the whole domain
        attrs["userPrincipalName"] = "b" + a.attributes["userPrincipalName"]
        attrs["employeeID"] = "B" + a.key
        attrs.update(adminDescription=marker_value(a.state_hash()),
                     unicodePwd=f'"{generate_password()}"'.encode("utf-16-le"), userAccountControl=512, pwdLastSet=0)
        if not conn.add(a.target_dn.replace(root, bare_root), ["top", "person", "organizationalPerson", "user"], attrs):
            raise SystemExit(f"bare add failed: {conn.result}")
    return time.perf_counter() - start


def bench(n: int, workdir: Path, reconciler_first: bool = False, measure: bool = True) -> dict:
    root = f"OU=Bench-{n},OU=Pruebas,{BASE}"  # delegated to svc-reconciler (ci/lab/accounts-up)
    bare_ou = f"OU=Bare-{n},{BASE}"
    repo = bench_repo(workdir, n)
    inv = inventory(workdir / f"inventory-{n}.yaml", root)
    target = load_inventory(inv)["bench"]
    fresh_lab()
    conn = connect(target)
    state = load_desired_state(repo / "desired_state")
    desired = expand(state, target)
    accounts = [a for a in desired.accounts.values() if a.enabled]

    if not reconciler_first:
        bare_seconds = bare_adds(conn, accounts, root, bare_ou)
    with Run(at_ref(repo), inv) as run:
        t0 = time.perf_counter()
        plan = run.plan()
        t1 = time.perf_counter()
        report = run.apply(plan)
        t2 = time.perf_counter()
        phases = dict(run.providers["bench"].timings)
    if reconciler_first:
        bare_seconds = bare_adds(conn, accounts, root, bare_ou)
    assert report.ok, [o.error for o in report.failed][:5]
    applied = sum(1 for o in report.outcomes if o.change.kind == "account" and o.verified)
    ours_rate = applied / (t2 - t1)
    bare_rate = len(accounts) / bare_seconds
    result = {
        "people": n, "accounts": applied,
        "apply_seconds": round(t2 - t1, 2), "apply_per_second": round(ours_rate, 1),
        "bare_add_seconds": round(bare_seconds, 2), "bare_add_per_second": round(bare_rate, 1),
        "apply_vs_bare": round(ours_rate / bare_rate, 3), "first_plan_seconds": round(t1 - t0, 2),
        "order": "reconciler first" if reconciler_first else "bare ldap3 first",
        "apply_phases_seconds": {k: round(v, 2) for k, v in phases.items()},
    }
    print(f"\nN = {n} people ({applied} accounts applied and verified), {result['order']}")
    print(f"  apply, reconciler : {result['apply_seconds']:8.2f} s  {ours_rate:7.1f} accounts/s "
          "(adds + memberships + read-back verification)")
    print(f"  adds, bare ldap3  : {bare_seconds:8.2f} s  {bare_rate:7.1f} accounts/s")
    print("  apply phases      : " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    print(f"  apply / bare      : {ours_rate / bare_rate:.0%}", flush=True)
    if measure:
        result.update(measure_plan(repo, inv, conn, target, desired, root))
    conn.unbind()
    return result


def measure_plan(repo: Path, inv: Path, conn, target, desired, root: str, repeats: int = 3) -> dict:
    """A plan with nothing to change, end to end (load, connect, read, diff) and in its parts;
    the median of a few runs."""
    rows = []
    more = [connect(target)]
    for _ in range(repeats):
        t3 = time.perf_counter()
        with Run(at_ref(repo), inv) as run:
            again = run.plan()
        t4 = time.perf_counter()
        assert again.empty, again.summary()
        gc.disable()  # the parts, one after another, under the conditions of a run (see engine.Run)
        load_desired_state(repo / "desired_state")
        t6 = time.perf_counter()
        actual = read_directory(conn, target, desired, more)
        t7 = time.perf_counter()
        diff(desired, actual, target, "2026-01-01")
        t8 = time.perf_counter()
        gc.enable()
        bare_ldap3_search(target, f"OU=Personal,{root}")
        t9 = time.perf_counter()
        cli = subprocess.run([str(ROOT / ".venv" / "bin" / "reconciler"), "--repo", str(repo), "plan",
                              "--inventory", str(inv)], stdout=subprocess.DEVNULL)
        t10 = time.perf_counter()
        assert cli.returncode == 0
        rows.append((t4 - t3, t6 - t4, t7 - t6, t8 - t7, t9 - t8, t10 - t9))
    for c in more:
        c.unbind()
    plan, load, read, dif, bare, command = (statistics.median(col) for col in zip(*rows))
    print(f"  no-change plan    : {plan:8.3f} s  end to end, median of {repeats}; its parts one after another: "
          f"load+validate {load:.3f} s, read {read:.3f} s, diff {dif:.3f} s (the read overlaps the load)")
    print(f"  `reconciler plan` : {command:8.3f} s  the command, as a person or CI runs it (interpreter start included)")
    print(f"  bare ldap3 search : {bare:8.3f} s  one paged search of the same attributes with a default "
          f"ldap3 connection (plan / bare search: {plan / bare:.2f}x)", flush=True)
    return {"nochange_plan_seconds": round(plan, 3), "nochange_command_seconds": round(command, 3),
            "nochange_load_seconds": round(load, 3),
            "nochange_read_seconds": round(read, 3), "nochange_diff_seconds": round(dif, 3),
            "bare_paged_search_seconds": round(bare, 3), "plan_vs_bare_search": round(plan / bare, 2)}


def bare_ldap3_search(target, base: str) -> int:
    """What anyone would write with ldap3: a default connection and one paged search."""
    from ldap3 import Connection, Server, Tls
    import ssl
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=target.ca_file)
    conn = Connection(Server(target.host, port=target.port, use_ssl=True, tls=tls), user=target.bind_dn,
                      password=target.bind_password.read(), auto_bind=True)
    count = sum(1 for _ in conn.extend.standard.paged_search(base, "(&(objectCategory=person)(objectClass=user))",
                                                             attributes=ACCOUNT_ATTRIBUTES, paged_size=1000))
    conn.unbind()
    return count


def plan_only(n: int, workdir: Path) -> dict:
    """Measure the no-change plan again on the tree the last full run of N left in the lab."""
    root = f"OU=Bench-{n},OU=Pruebas,{BASE}"  # delegated to svc-reconciler (ci/lab/accounts-up)
    repo = bench_repo(workdir, n)
    inv = inventory(workdir / f"inventory-{n}.yaml", root)
    target = load_inventory(inv)["bench"]
    conn = connect(target)
    desired = expand(load_desired_state(repo / "desired_state"), target)
    print(f"\nN = {n} people, no-change plan on the tree left by the last full run")
    result = {"people": n, **measure_plan(repo, inv, conn, target, desired, root, repeats=5)}
    conn.unbind()
    return result


def main() -> None:
    lab_used("bench/bench_ad.py")  # ci/demo provisions a new lab after this
    if sys.argv[1:2] == ["--plan-only"]:
        with tempfile.TemporaryDirectory() as tmp:
            for n in [int(a) for a in sys.argv[2:]] or [10000]:
                plan_only(n, Path(tmp))
        return
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            # Both orders on fresh domains: the geometric mean of the two ratios cancels the
            # effect of the directory's size on Samba's add rate.
            first = bench(n, Path(tmp), reconciler_first=True, measure=False)
            second = bench(n, Path(tmp), reconciler_first=False)
            fair = (first["apply_vs_bare"] * second["apply_vs_bare"]) ** 0.5
            print(f"  apply / bare, both orders (geometric mean): {fair:.0%}", flush=True)
            results += [first, {**second, "apply_vs_bare_both_orders": round(fair, 3)}]
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    print(f"\nfigures saved to {out / 'latest.json'}")


if __name__ == "__main__":
    main()
