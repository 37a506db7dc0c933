"""Kill apply at random moments and check that the next run converges (issue 13, item 9).

    .venv/bin/python bench/crash_trials.py [--trials 100] [--batch 8] [--seed 1] [--keep-lab]

Needs the lab: it starts from a freshly provisioned one (ci/lab/down --purge, ci/lab/up) and
leaves a freshly provisioned one behind (unless --keep-lab), so the tests and ci/demo run
after it as on a new machine.  With --lab-as-is (the test suite) it uses the running lab and
removes what it made: its OU tree, the mail server's registry and maps, the registrar's lines.  Each trial lands one approved change on a throwaway
desired-state repository whose targets are the lab's directory, mail server and registrar:
the alta of a batch of people, each with a mailbox and an extension, or the baja of the
previous batch.  `reconciler apply` runs as its own process and is killed with SIGKILL after
a random delay between 0 and the time an uninterrupted apply took; then apply runs again
(at most three times) and the harness checks:

  converged    the plan after it is empty: nothing stuck;
  duplicates   no employee has two accounts;
  credentials  every account of the batch has its password in a credentials file that still
               exists, and that password is the one AD holds (AD answers "must change
               password", data 773, not "wrong password");
  drift        the plan right after the kill calls nothing "changed outside the reconciler";
  history      `reconciler history` shows every alta of the batch on the directory;
  audit        `reconciler audit verify` passes.

Prints the figures and writes bench/results/crash.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from gitrepo import land  # noqa: E402  (sets RECONCILER_APPLY_KEY for the applies)
from people import generate, write  # noqa: E402

LAB = Path("/var/lib/reconciler-lab")
BASE_DN = "DC=salud,DC=lab"


def lab(*scripts: list[str]) -> None:
    for script in scripts:
        subprocess.run([str(ROOT / "ci" / "lab" / script[0]), *script[1:]], check=True, capture_output=True)


def inventory(work: Path, root: str) -> Path:
    """The lab's inventory, with the directory under an OU of its own (`root`) and the trails here."""
    targets = yaml.safe_load((ROOT / "inventory" / "lab.yaml").read_text())["targets"]
    kept = {}
    for name, target in targets.items():
        if target["kind"] not in ("active_directory", "mail", "sip"):
            continue
        target.update(audit_dir=str(work / "audit"), credentials_dir=str(work / "credentials"))
        if target["kind"] == "active_directory":
            target["ous"] = {"people": f"OU=Personal,{root}", "groups": f"OU=Grupos,{root}",
                             "bajas": f"OU=Bajas,{root}"}
        kept[name] = target
    path = work / "inventory.yaml"
    # Clear text: the trials check that every password set is one the file hands over.
    path.write_text(yaml.safe_dump({"delivery": {"mode": "clear-text-file-lab-only"}, "targets": kept},
                                   allow_unicode=True), encoding="utf-8")
    return path


def cli(repo: Path, inv: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler.cli", "--no-color", "--repo", str(repo), *args,
                           "--inventory", str(inv)], capture_output=True, text=True, timeout=timeout)


def killed_apply(repo: Path, inv: Path, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli", "--no-color", "--repo", str(repo), "apply",
                             "--auto-approve", "--inventory", str(inv)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


class Directory:
    def __init__(self):
        from ldap3 import NONE, Connection, Server, Tls

        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(LAB / "ca.pem"))
        self.server = Server("127.0.0.1", port=636, use_ssl=True, tls=tls, get_info=NONE)
        self.conn = Connection(self.server, user="Administrator@SALUD.LAB",
                               password=(LAB / "bind.pw").read_text(), auto_bind=True)

    def remove(self, root: str) -> None:
        """The harness's OU and everything in it (the tree-delete control)."""
        self.conn.delete(root, controls=[("1.2.840.113556.1.4.805", True, None)])

    def accounts(self, key: str) -> list[str]:
        from ldap3 import SUBTREE

        self.conn.search(BASE_DN, f"(&(objectClass=user)(employeeID={key}))", SUBTREE, attributes=["sAMAccountName"])
        found = [e["attributes"]["sAMAccountName"] for e in self.conn.response if e.get("type") == "searchResEntry"]
        return [s[0] if isinstance(s, list) else s for s in found]  # no schema read: every value is a list

    def login(self, sam: str, password: str) -> str:
        from ldap3 import Connection

        conn = Connection(self.server, user=f"{sam}@salud.lab", password=password)
        conn.bind()
        return conn.result.get("message", "")


def clear_mail_and_phone() -> None:
    """What the trials left on the shared mail server and registrar, as the lab tests clear it."""
    import psycopg

    for name in ("users", "recipients", "aliases", "denied"):
        (LAB / "mail" / "registro" / name).write_text("")
    (LAB / "mail" / "registro" / "users.kick-pending").unlink(missing_ok=True)
    subprocess.run(["postfix", "reload"], capture_output=True)
    with psycopg.connect("postgresql://reconciler@127.0.0.1:5432/kamailio", autocommit=True,
                         password=(LAB / "phone" / "reconciler-db.pw").read_text().strip()) as db:
        db.execute("DELETE FROM subscriber")
        for table in ("reconciler_line", "reconciler_unregister"):
            db.execute(f"DROP TABLE IF EXISTS {table}")


def passwords(work: Path) -> dict[str, str]:
    """account -> the newest password any credentials file still holds for it."""
    found: dict[str, str] = {}
    files = sorted((work / "credentials").glob("*.csv"), key=lambda p: p.stat().st_mtime_ns)
    for path in files:
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                found[row["account"]] = row["password"]
    return found


def interrupted_runs(work: Path) -> int:
    """Runs the trails record as stopped before their end (closed by a later run)."""
    return sum(path.read_text(encoding="utf-8").count('"result":"interrupted"')
               for path in (work / "audit").glob("*.audit.jsonl"))


def batch_people(by_unit: dict, start: int, size: int) -> list[tuple[str, dict]]:
    everyone = [(unit, p) for unit, people in sorted(by_unit.items()) for p in people]
    return everyone[start:start + size]


def write_state(repo: Path, people: list[tuple[str, dict]]) -> None:
    by_unit: dict[str, list[dict]] = {}
    for unit, p in people:
        by_unit.setdefault(unit, []).append(p)
    for path in (repo / "desired_state" / "users").glob("*.yaml"):
        path.unlink()
    write(repo, by_unit)
    lines = [{"number": str(100000 + int(p["employee_key"][4:])), "kind": "extension", "unit": unit,
              "person": p["employee_key"], "status": "activa" if p["status"] == "activo" else "baja",
              "solicitud": p["solicitud"]} for unit, p in people]
    assets = repo / "desired_state" / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    (assets / "lines.yaml").write_text(yaml.safe_dump({"lines": lines}, allow_unicode=True, sort_keys=False),
                                       encoding="utf-8")


def trial(number: int, rng: random.Random, repo: Path, inv: Path, work: Path, declared: list, batch: list,
          altas: bool, budget: float, directory: Directory) -> dict:
    keys = [p["employee_key"] for _, p in batch]
    for _, p in batch:
        p["status"] = "activo" if altas else "baja"
        if altas:
            p["mailbox"] = {"address": f"{p['employee_key'].lower().replace('-', '.')}@salud.lab"}
    write_state(repo, declared)
    land(repo, f"Trial {number}: {'altas' if altas else 'bajas'} {keys[0]}…{keys[-1]}")
    delay = rng.uniform(0, budget)
    closed_before = interrupted_runs(work)
    killed_apply(repo, inv, delay)
    after_kill = cli(repo, inv, "plan", "--output", "json")
    plan = json.loads(after_kill.stdout) if after_kill.returncode in (0, 2) else {"changes": []}
    mislabelled = [c["key"] for c in plan["changes"] if c.get("drift")]
    started, runs, code = time.monotonic(), 0, None
    while runs < 3 and code != 0:
        runs += 1
        code = cli(repo, inv, "apply", "--auto-approve").returncode
    took = time.monotonic() - started
    converged = cli(repo, inv, "plan").returncode == 0
    duplicates = [k for k in keys if len(directory.accounts(k)) > 1]
    lost, wrong = [], []
    if altas:
        known = passwords(work)
        for k in keys:
            sams = directory.accounts(k)
            if not sams:
                continue
            if sams[0] not in known:
                lost.append(k)
            elif "data 773" not in directory.login(sams[0], known[sams[0]]):
                wrong.append(k)
    unrecorded = []
    if altas:
        for k in keys:
            shown = cli(repo, inv, "history", k, "--output", "json")
            moves = json.loads(shown.stdout) if shown.returncode == 0 else []
            if not any(m["movement"] == "alta" and m["kind"] == "account" and m["status"] == "applied" for m in moves):
                unrecorded.append(k)
    audit_ok = cli(repo, inv, "audit", "verify").returncode == 0
    return {"trial": number, "interrupted_runs_closed": interrupted_runs(work) - closed_before, "movement": "altas" if altas else "bajas", "killed_after_s": round(delay, 2),
            "applies_to_converge": runs, "seconds_to_converge": round(took, 1), "converged": converged,
            "duplicates": duplicates, "lost_credentials": lost, "wrong_credentials": wrong,
            "mislabelled_as_drift": mislabelled, "altas_missing_from_history": unrecorded, "audit_ok": audit_ok}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8, help="people per trial (at most 25: max_bajas)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep-lab", action="store_true", help="leave the lab as the trials left it")
    ap.add_argument("--lab-as-is", action="store_true",
                    help="use the running lab without provisioning it, and remove what the trials made (the tests)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "crash.json")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    if not args.lab_as_is:
        lab(["down", "--purge"], ["up"])
    results: list[dict] = []
    root = f"OU=Crash-{secrets.token_hex(3)},OU=Pruebas,{BASE_DN}"  # delegated to svc-reconciler (ci/lab/accounts-up)
    directory = Directory()
    try:
        with tempfile.TemporaryDirectory(prefix="reconciler-crash-") as tmp:
            work = Path(tmp)
            repo, inv = work / "repo", inventory(work, root)
            by_unit = generate(args.batch * (args.trials // 2 + 2), seed=args.seed)
            declared: list = []
            # Calibration: an uninterrupted apply of one batch sets the window the kills fall in.
            first = batch_people(by_unit, 0, args.batch)
            for _, p in first:
                p["mailbox"] = {"address": f"{p['employee_key'].lower().replace('-', '.')}@salud.lab"}
            declared += first
            write_state(repo, declared)
            land(repo, "Calibración")
            started = time.monotonic()
            done = cli(repo, inv, "apply", "--auto-approve")
            assert done.returncode == 0, f"the calibration apply failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            budget = time.monotonic() - started
            print(f"an uninterrupted apply of {args.batch} altas takes {budget:.1f} s: kills fall in [0, {budget:.1f}] s")
            batch, position = first, args.batch
            for number in range(1, args.trials + 1):
                altas = number % 2 == 0  # odd: the baja of the batch in place; even: a new batch
                if altas:
                    batch = batch_people(by_unit, position, args.batch)
                    position += args.batch
                    declared += batch
                result = trial(number, rng, repo, inv, work, declared, batch, altas, budget, directory)
                results.append(result)
                bad = [k for k in ("duplicates", "lost_credentials", "wrong_credentials", "mislabelled_as_drift",
                                   "altas_missing_from_history") if result[k]]
                bad += [] if result["converged"] else ["not converged"]
                bad += [] if result["audit_ok"] else ["audit"]
                mid = "mid-run" if result["interrupted_runs_closed"] else "after or before the run"
                print(f"trial {number:3d} {result['movement']:6s} killed at {result['killed_after_s']:5.1f} s ({mid}): "
                      f"{'ok' if not bad else 'FAILED ' + ', '.join(bad)} "
                      f"({result['applies_to_converge']} apply, {result['seconds_to_converge']} s)", flush=True)
    finally:
        if args.lab_as_is:
            directory.remove(root)
            clear_mail_and_phone()
        elif not args.keep_lab:
            lab(["down", "--purge"], ["up"])
    summary = {
        "trials": len(results),
        "killed_mid_run": sum(r["interrupted_runs_closed"] > 0 for r in results),
        "converged": sum(r["converged"] for r in results),
        "stuck": sum(not r["converged"] for r in results),
        "duplicates": sum(len(r["duplicates"]) for r in results),
        "lost_or_unannounced_credentials": sum(len(r["lost_credentials"]) + len(r["wrong_credentials"])
                                               for r in results),
        "mislabelled_as_drift": sum(len(r["mislabelled_as_drift"]) for r in results),
        "altas_missing_from_history": sum(len(r["altas_missing_from_history"]) for r in results),
        "audit_failures": sum(not r["audit_ok"] for r in results),
        "median_seconds_to_converge": sorted(r["seconds_to_converge"] for r in results)[len(results) // 2]
        if results else None,
        "batch": args.batch, "seed": args.seed,
    }
    print(json.dumps(summary, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "trials": results}, indent=2, ensure_ascii=False) + "\n")
    failed = summary["stuck"] + summary["duplicates"] + summary["lost_or_unannounced_credentials"] + \
        summary["mislabelled_as_drift"] + summary["altas_missing_from_history"] + summary["audit_failures"]
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
