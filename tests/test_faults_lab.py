"""A bad day against the lab's real Samba AD DC (issue 13): apply killed with SIGKILL at a
chosen point of its work, a baja left halfway, and the next run that must converge with
nothing lost, nothing mislabelled and nothing stuck."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys

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

    out = sandbox.apply()
    assert "stopped before its end; its 10 changes are recorded now: 8 done, 2 begun and finished by this run, 0 not done" in out
    assert "the 2 passwords it set are in this run's credentials file" in out
    assert not stopped_file.exists()  # carried, not left behind in clear
    [credentials] = list(sandbox.credentials_dir.glob("*.csv"))
    assert str(credentials) in out
    rows = {r["account"]: r["password"] for r in csv.DictReader(credentials.open(encoding="utf-8"))}
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
