"""Bring N generated people, with their mailboxes and extensions, into the lab in minutes.

    .venv/bin/python bench/lab_load.py N [--dir DIR] [--keep]     (needs ci/lab/up)

It writes N people (bench/people.py, seed N), each with a mailbox and an extension, to
DIR/repo-N as an approved merge, with the inventory DIR/inventory-N.yaml: three targets,
`bench` (AD, managing OU=Bench-N,OU=Pruebas), `bench-mail` and `bench-phone` (the lab's mail
server and registrar, as inventory/lab.yaml names them).  Then, with the reconciler's own code:
  - the directory: it works out what an apply would create (the reconciler's own diff) and
    writes those OUs, groups, accounts and memberships as one LDIF, which `ldbadd` adds
    straight into the DC's database (sam.ldb, beside the running DC: Samba's own tools take
    the same locks the DC does);
  - the mail server and the registrar: bench/in_place.py (the registry and maps staged by the
    applier and written once; the registrar's apply in one transaction).
What remains of the plan afterwards (a computer, say) is applied by the reconciler itself, and
the plan of all three targets must then be empty.

Why it is fast: over LDAP, each add crosses TLS, the DC's ACL checks and, above all, the
password: Samba derives Kerberos keys from it (PBKDF2, thousands of rounds).  Loaded accounts
carry no password, and loaded lines a secret nobody was told (the limits of the method: nobody
can log on or register until a reset), and ldbadd adds everything in one transaction as the
system.  Everything else is exactly what an apply writes: the same DNs, attributes, marker
with the applied hash, enabled flag and groups; the same registry lines and subscriber rows.

Unless --keep, the lab is provisioned again first (ci/lab/down --purge; ci/lab/up): deleting
100,000 objects takes Samba far longer than a new domain.  Measured on this machine (2 cores):
see the README, "Scale".
"""
from __future__ import annotations

import argparse
import base64
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

from bench_ad import BASE, LAB, bench_repo, fresh_lab, inventory  # noqa: E402
from in_place import lines_in_place, mailboxes_in_place  # noqa: E402

from reconciler import dn as dnlib  # noqa: E402
from reconciler.desired.source import at_ref  # noqa: E402
from reconciler.config.inventory import load_inventory, mail_rules  # noqa: E402
from reconciler.desired.load import load_desired_state  # noqa: E402
from reconciler.plan import Movement  # noqa: E402
from reconciler.providers.ad.connection import connect  # noqa: E402
from reconciler.providers.ad.diff import ActualDirectory, diff  # noqa: E402
from reconciler.providers.ad.read import read_groups, read_ous  # noqa: E402
from reconciler.providers.ad.records import expand  # noqa: E402
from reconciler.providers.ad.records import MANAGED_ATTRIBUTES, MARKER, marker_value  # noqa: E402
from reconciler.run.engine import Run, today_here  # noqa: E402

SAM = LAB / "samba" / "private" / "sam.ldb"
UF_NORMAL_ACCOUNT, UF_ACCOUNTDISABLE = 0x200, 0x2


def _line(name: str, value: str) -> str:
    """One LDIF attribute line; base64 when the value is not plain ASCII (LDIF's rule)."""
    text = str(value)
    plain = text.isascii() and text.isprintable() and not text.startswith((" ", ":", "<")) and not text.endswith(" ")
    if plain:
        return f"{name}: {text}"
    return f"{name}:: {base64.b64encode(text.encode('utf-8')).decode('ascii')}"


def _entry(dn: str, attrs: list[tuple[str, object]]) -> str:
    return "\n".join([_line("dn", dn)] + [_line(n, v) for n, v in attrs]) + "\n"


def ldif(changes, groups_ou: str) -> tuple[str, list]:
    """The plan's OU, group and account altas as LDIF entries (OUs first, parents before
    children; groups last, with their members), and the changes it leaves to the reconciler."""
    ous = sorted((c for c in changes if c.kind == "ou" and c.movement is Movement.ALTA), key=lambda c: len(c.key))
    accounts = [c for c in changes if c.kind == "account" and c.movement is Movement.ALTA]
    groups = [c for c in changes if c.kind == "group" and c.movement is Movement.ALTA]
    loaded = {id(c) for c in [*ous, *accounts, *groups]}
    rest = [c for c in changes if id(c) not in loaded]
    out = [_entry(c.key, [("objectClass", "organizationalUnit"), ("ou", dnlib.first_value(c.key)),
                          ("adminDescription", MARKER)]) for c in ous]
    members: dict[str, list[str]] = {}
    for c in accounts:
        want = c.desired
        attrs: list[tuple[str, object]] = [("objectClass", "user")]
        for name in MANAGED_ATTRIBUTES:
            value = want.attributes.get(name)
            for v in (value if isinstance(value, tuple) else [value] if value else []):
                attrs.append((name, v))
        uac = UF_NORMAL_ACCOUNT | (0 if want.enabled else UF_ACCOUNTDISABLE)
        attrs += [("adminDescription", marker_value(want.state_hash())), ("userAccountControl", uac),
                  ("pwdLastSet", 0)]
        out.append(_entry(want.target_dn, attrs))
        for g in want.groups:
            members.setdefault(g.casefold(), []).append(want.target_dn)
    for c in groups:
        description = c.attributes[0].after if c.attributes else c.key
        dn = dnlib.child("CN", c.key, groups_ou)
        out.append(_entry(dn, [("objectClass", "group"), ("sAMAccountName", c.key), ("description", description),
                               ("adminDescription", MARKER)] + [("member", m) for m in members.get(c.key.casefold(), [])]))
    return "\n".join(out), rest


def other_targets(workdir: Path) -> dict:
    """The lab's mail server and registrar as inventory/lab.yaml names them, with this load's
    own credentials and audit folders."""
    lab = yaml.safe_load((ROOT / "inventory" / "lab.yaml").read_text(encoding="utf-8"))["targets"]
    own = {"credentials_dir": str(workdir / "creds"), "audit_dir": str(workdir / "audit")}
    return {"bench-mail": {**lab["mail-lab"], **own}, "bench-phone": {**lab["phone-lab"], **own}}


def altas(state, target) -> list:
    """What an apply to the empty bench OU would create: the pure diff against a directory
    holding only the OUs and groups already there (no name lookups: nothing else is there)."""
    desired = expand(state, target)
    conn = connect(target)
    try:
        actual = ActualDirectory({}, ous=read_ous(conn, desired.ous), groups=read_groups(conn, target))
    finally:
        conn.unbind()
    changes, conflicts = diff(desired, actual, target, today_here())
    assert not conflicts, conflicts[:3]
    return changes


def load(n: int, workdir: Path, keep: bool) -> dict:
    root = f"OU=Bench-{n},OU=Pruebas,{BASE}"
    repo = workdir / f"repo-{n}"
    if not (repo / ".git").exists():
        bench_repo(workdir, n, every_kind=True)
    inv = inventory(workdir / f"inventory-{n}.yaml", root, other_targets(workdir))
    if not keep:
        fresh_lab()
    t0 = time.perf_counter()
    targets = load_inventory(inv)
    target = targets["bench"]
    state = load_desired_state(repo / "desired_state", mail=mail_rules(targets))
    changes = altas(state, target)
    t1 = time.perf_counter()
    text, rest = ldif(changes, target.groups_ou)
    with tempfile.NamedTemporaryFile("w", suffix=".ldif", encoding="utf-8", dir=workdir) as f:
        f.write(text)
        f.flush()
        # batch_mode: no sub-transaction per entry.  Samba copies its large index lists at
        # each one, which makes every add cost time in proportion to the directory's size
        # (17 ms an add at 16,000 accounts, 2.5 ms in batch mode); an error cancels it all.
        done = subprocess.run(["ldbadd", "-o", "batch_mode:1", "-H", str(SAM), f.name], capture_output=True,
                              text=True)
    entries = text.count("\ndn:") + text.startswith("dn:")
    # ldbadd can stop at a failed entry and still exit 0: what it added must be everything.
    if done.returncode != 0 or f"Added {entries} records successfully" not in done.stdout:
        raise SystemExit(f"ldbadd failed: {(done.stdout + done.stderr).strip()[-2000:]}")
    t2 = time.perf_counter()
    mailboxes = mailboxes_in_place(targets["bench-mail"], state, today_here())
    t3 = time.perf_counter()
    lines = lines_in_place(targets["bench-phone"], state, today_here())
    t4 = time.perf_counter()
    if rest:
        with Run(at_ref(repo), inv, lock=True) as run:
            report = run.apply(run.plan())
            assert report.ok, [o.error for o in report.failed][:5]
    t5 = time.perf_counter()
    with Run(at_ref(repo), inv) as run:
        after = run.plan()
    assert after.empty, after.summary()
    figures = {"people": n, "diff_seconds": round(t1 - t0, 1), "ldbadd_seconds": round(t2 - t1, 1),
               "mailboxes": mailboxes, "mail_seconds": round(t3 - t2, 1), "lines": lines,
               "phone_seconds": round(t4 - t3, 1), "rest_applied": len(rest), "rest_seconds": round(t5 - t4, 1)}
    print(f"N = {n}: diff {figures['diff_seconds']} s, ldbadd {figures['ldbadd_seconds']} s "
          f"({n / (t2 - t1):.0f} people/s), {mailboxes} mailboxes in {figures['mail_seconds']} s, "
          f"{lines} extensions in {figures['phone_seconds']} s, {len(rest)} other changes applied in "
          f"{figures['rest_seconds']} s; the plan of all three targets is now empty. "
          f"Repository {repo}, inventory {inv}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int)
    parser.add_argument("--dir", type=Path, help="where the repository and inventory go (kept)")
    parser.add_argument("--keep", action="store_true", help="load into the lab's domain as it is")
    args = parser.parse_args()
    lab_used("bench/lab_load.py")
    workdir = args.dir or Path(tempfile.mkdtemp(prefix=f"reconciler-load-{args.n}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    load(args.n, workdir, args.keep)


if __name__ == "__main__":
    main()
