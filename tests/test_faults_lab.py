"""A bad day against the lab's real Samba AD DC (issue 13): apply killed with SIGKILL at a
chosen point of its work, a baja left halfway, and the next run that must converge with
nothing lost, nothing mislabelled and nothing stuck."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ldap3 import MODIFY_REPLACE
from test_ad_lab import UAC_DISABLED, _bind_result

from conftest import person

pytestmark = pytest.mark.lab

# Runs the CLI in a process that kills itself with SIGKILL when apply reaches `point` (a
# method of the AD applier): no finally, no atexit, no flush; what a lost runner leaves.
KILLED_AT = """
import os, signal, sys
from reconciler.providers.ad import apply as ad_apply
point = sys.argv.pop(1)
def killed(self, o, *args, **kwargs):
    if point != "_move" or o.change.movement.value == "baja":
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, o, *args, **kwargs)
real = getattr(ad_apply.ADApplier, point)
setattr(ad_apply.ADApplier, point, killed)
from reconciler.cli import main
sys.exit(main(sys.argv[1:]))
"""


def killed_apply(sandbox, point: str) -> None:
    sandbox.repo.write()
    if sandbox.repo.git.is_dirty(untracked_files=True):
        sandbox.repo.squash_merge()
    proc = subprocess.run([sys.executable, "-c", KILLED_AT, point, "--no-color", "--repo", str(sandbox.repo.root),
                           "apply", "--inventory", str(sandbox.inventory), "--auto-approve"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr


def records(sandbox) -> list[dict]:
    path = sandbox.audit_dir / "ad-test.audit.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_altas_of_a_killed_apply_are_recognised_recorded_and_their_passwords_announced(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"), person("SSM-000002", given_names="Ana", curp=None))
    killed_apply(sandbox, "_memberships")  # killed after the altas, before the group memberships
    assert sandbox.account("jnunezo") is not None and sandbox.groups_of("jnunezo") == set()
    [stopped_file] = list(sandbox.credentials_dir.glob("*.csv"))

    plan = sandbox.plan_json()
    accounts = [c for c in plan["changes"] if c["kind"] == "account"]
    assert len(accounts) == 2 and all(c["movement"] == "modificacion" and not c["drift"] for c in accounts)
    assert all(c["reason"].startswith("completes what run ") for c in accounts)

    out = sandbox.apply("--since-applied")  # as CI runs it: a stopped run makes the plan full
    assert "stopped before its end; its 10 changes are recorded now: 8 done, 2 begun and finished by this run, 0 not done" in out
    assert f"2 passwords it set are in use: deliver them from {stopped_file}" in out
    assert f"2 new passwords or line secrets: {stopped_file}" in out  # listed with the run's files
    rows = {r["account"]: r["password"] for r in csv.DictReader(stopped_file.open(encoding="utf-8"))}
    assert set(rows) == {"jnunezo", "anunezo"}
    for sam, password in rows.items():  # the passwords the killed run set: in use, must change
        assert "data 773" in _bind_result(f"{sam}@salud.lab", password)
    assert sandbox.groups_of("jnunezo") == {"GG-SIEMPRE-Usuarios", "GG-Internet"}
    sandbox.assert_converged()

    altas = [r for r in records(sandbox) if r["kind"] == "change" and r.get("closed_by")
             and r["object_kind"] == "account"]
    assert [(r["movement"], r["status"]) for r in altas] == [("alta", "applied")] * 2
    code, out, _ = sandbox.cli("history", "jnunezo", land=False)
    assert code == 0 and "alta account jnunezo (José Ñúñez O'Brien): applied" in out, out
    code, out, _ = sandbox.cli("audit", "verify", land=False)
    assert code == 0 and "chain intact" in out, out


def test_a_baja_killed_between_disabling_and_moving_is_finished(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    sandbox.repo.remove("SSM-000001")
    killed_apply(sandbox, "_move")
    account = sandbox.account("jnunezo")
    assert int(account["userAccountControl"]) & UAC_DISABLED  # access gone first
    assert account["dn"].endswith(f"OU=HG-CUERNAVACA,{sandbox.people_ou}")
    out = sandbox.apply()
    assert "stopped before its end" in out
    account = sandbox.account("jnunezo")
    assert account["dn"].endswith(sandbox.bajas_ou) and int(account["userAccountControl"]) & UAC_DISABLED
    sandbox.assert_converged()


def test_an_enabled_account_left_in_the_bajas_ou_finishes_its_baja_under_its_units_approval(sandbox):
    """What an interrupted baja left before bajas disabled first: the account moved to the
    bajas OU, still enabled, declared nowhere.  Its unit is the file it was removed from."""
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    dn = sandbox.account("jnunezo")["dn"]
    assert sandbox.conn.modify_dn(dn, dn.split(",OU=")[0], new_superior=sandbox.bajas_ou)
    sandbox.repo.remove("SSM-000001")
    plan = sandbox.plan_json()
    [baja] = [c for c in plan["changes"] if c["kind"] == "account"]
    assert baja["movement"] == "baja" and baja["unit"] == "HG-CUERNAVACA" and baja["approval"]["approved"], baja
    sandbox.apply()
    account = sandbox.account("jnunezo")
    assert int(account["userAccountControl"]) & UAC_DISABLED and sandbox.groups_of("jnunezo") == set()
    sandbox.assert_converged()
    # A hand-made enable in the bajas OU later is a new baja of the same account, same unit.
    assert sandbox.conn.modify(account["dn"], {"userAccountControl": [(MODIFY_REPLACE, [512])]})
    [again] = [c for c in sandbox.plan_json()["changes"] if c["kind"] == "account"]
    assert again["movement"] == "baja" and again["approval"]["approved"]


QUERY_POLICY = ("CN=Default Query Policy,CN=Query-Policies,CN=Directory Service,CN=Windows NT,CN=Services,"
                "CN=Configuration,DC=salud,DC=lab")


@pytest.fixture
def idle_limit(sandbox):
    """The lab DC drops connections idle for more than 2 s (AD's MaxConnIdleTime; 900 s by
    default) for connections opened from now on; restored afterwards."""
    from ldap3 import MODIFY_ADD, MODIFY_DELETE

    from conftest import lab_connection

    def limit(old: str, new: str) -> None:
        conn = lab_connection()
        assert conn.modify(QUERY_POLICY, {"lDAPAdminLimits": [(MODIFY_DELETE, [f"MaxConnIdleTime={old}"]),
                                                              (MODIFY_ADD, [f"MaxConnIdleTime={new}"])]}), conn.result
        conn.unbind()
    limit("900", "2")
    try:
        yield 2
    finally:
        limit("2", "900")


def test_an_idle_limit_of_seconds_on_the_dc_does_not_fail_an_apply(sandbox, idle_limit):
    import time

    from reconciler.desired.source import at_ref
    from reconciler.run.engine import Run

    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.write()
    sandbox.repo.squash_merge()
    with Run(at_ref(sandbox.repo.root), sandbox.inventory, lock=True) as run:
        plan = run.plan()
        time.sleep(idle_limit + 2)  # a person reading the plan before typing "yes"
        report = run.apply(plan)
        assert report.ok, [(o.change.label, o.error) for o in report.failed]
    assert sandbox.groups_of("jnunezo") == {"GG-SIEMPRE-Usuarios", "GG-Internet"}
    sandbox.assert_converged()


def test_a_connection_dropped_mid_apply_is_opened_again_and_the_change_repeated(sandbox, monkeypatch):
    from reconciler.providers.ad import apply as ad_apply

    real = ad_apply.ADApplier._alta
    dropped = []

    def drop_then_alta(self, o):
        if not dropped:  # the first alta's request goes out on a connection that is gone
            dropped.append(o.change.key)
            self.conn.socket.shutdown(2)
        return real(self, o)
    monkeypatch.setattr(ad_apply.ADApplier, "_alta", drop_then_alta)
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"), person("SSM-000002", given_names="Ana", curp=None))
    out = sandbox.apply()
    assert dropped and "0 failed" in out
    assert sandbox.account("jnunezo") is not None and sandbox.account("anunezo") is not None
    sandbox.assert_converged()


def test_a_dc_gone_mid_apply_fails_the_rest_with_the_reason_and_the_summary_is_printed(sandbox, monkeypatch):
    from reconciler.errors import ReconcilerError
    from reconciler.providers.ad import apply as ad_apply
    from reconciler.providers.ad import provider

    real = ad_apply.ADApplier._alta

    def gone(self, o):
        self.conn.socket.shutdown(2)
        return real(self, o)

    def refused(target, attempts=3, pause=1.0):
        raise ReconcilerError(f"target {target.name}: cannot reach {target.url}: connection refused")
    monkeypatch.setattr(ad_apply.ADApplier, "_alta", gone)
    monkeypatch.setattr(provider, "reconnect", refused)
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    code, out, err = sandbox.cli("apply")
    assert code == 1 and "Traceback" not in err and "Internal error" not in err, err
    assert "could not be opened again" in out and "connection refused" in out
    assert "Apply complete:" in out and "failed" in out
    # The password written for the alta that never landed is announced with its file anyway.
    assert "new password or line secret:" in out
    monkeypatch.undo()  # the DC is back: the next run converges
    sandbox.apply()
    sandbox.assert_converged()


def test_the_before_image_puts_a_changed_and_moved_account_back_with_ldapmodify(sandbox):
    """Backup before change (issue 13 item 7): the run's before-image is LDIF that a person
    can apply by hand to undo the run on the directory; the trail vouches for the file."""
    import hashlib
    import os
    import stat

    from conftest import LAB_DIR

    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    before = sandbox.account("jnunezo")
    groups_before = sandbox.groups_of("jnunezo")
    entry = sandbox.repo.find("SSM-000001")
    entry.update(title="Jefe de Urgencias", entitlements=["internet"])
    sandbox.repo.move("SSM-000001", "CS-JIUTEPEC")
    sandbox.apply()
    assert sandbox.account("jnunezo")["title"] == "Jefe de Urgencias"

    start = [r for r in records(sandbox) if r["kind"] == "run-start"][-1]
    image = start["before_image"]
    path = Path(image["path"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert hashlib.sha256(path.read_bytes()).hexdigest() == image["sha256"]
    env = {**os.environ, "LDAPTLS_CACERT": str(LAB_DIR / "ca.pem")}
    proc = subprocess.run(["ldapmodify", "-H", "ldaps://127.0.0.1", "-x", "-D", "Administrator@SALUD.LAB",
                           "-y", str(LAB_DIR / "bind.pw"), "-f", str(path)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    after = sandbox.account("jnunezo")
    assert after["dn"] == before["dn"] and after["title"] == "Médico General"
    assert sandbox.groups_of("jnunezo") == groups_before
    # Put back by hand, the account is what the earlier commit declared: the plan now wants
    # the newer one again, and nothing calls it drift (the marker is the earlier one too).
    [change] = [c for c in sandbox.plan_json()["changes"] if c["kind"] == "account"]
    assert change["movement"] == "modificacion" and not change["drift"]


def test_a_repeated_add_counts_as_done_only_when_the_object_is_the_one_this_run_made(sandbox):
    """The add's answer was lost and the repeat says "already exists": done if the entry is
    ours (same marker and employeeID), a failure if someone else holds that DN."""
    from reconciler.providers.ad.apply import ADApplier
    from reconciler.providers.ad.records import MARKER

    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    ours = sandbox.account("jnunezo")
    applier = ADApplier(sandbox.conn, None, None, {})
    add = sandbox.conn.add
    mine = {"adminDescription": ours["adminDescription"], "employeeID": ["SSM-000001"]}
    assert add(ours["dn"], ["top", "person", "organizationalPerson", "user"], mine) is False  # 68
    assert applier._landed("add", (ours["dn"], [], mine), {})
    theirs = {"adminDescription": MARKER + " applied=0000", "employeeID": ["SSM-000099"]}
    assert not applier._landed("add", (ours["dn"], [], theirs), {})
    assert not applier._landed("modify_dn", (ours["dn"], "CN=Nadie", ), {"new_superior": sandbox.bajas_ou})
