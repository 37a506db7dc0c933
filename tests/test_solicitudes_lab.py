"""Git is the approval: real Git histories (squash merges, merge commits, trailers, direct
pushes) applied to the lab's real Samba AD DC, accepted and refused exactly as the policy says."""
from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from ldap3 import MODIFY_REPLACE

from conftest import APPROVER_1, APPROVER_2, REQUESTER, UNIT_HEAD, person
from reconciler import i18n

pytestmark = pytest.mark.lab  # every test: a sandbox in the lab's Samba AD DC

APPLIED_REF = "refs/reconciler/applied/ad-test"


def applied_commit(sandbox) -> str | None:
    try:
        return sandbox.repo.git.commit(APPLIED_REF).hexsha
    except Exception:  # noqa: BLE001 - no such ref yet
        return None


def trail(sandbox) -> list[dict]:
    path = sandbox.audit_dir / "ad-test.audit.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def account_records(sandbox) -> list[dict]:
    return [r for r in trail(sandbox) if r["kind"] == "change" and r["object_kind"] == "account"]


def test_a_squash_merge_with_approvals_is_applied_and_its_solicitud_recorded(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    head = sandbox.repo.squash_merge("Alta de José Ñúñez", approvers=(APPROVER_1,))
    code, out, err = sandbox.cli("apply", land=False)
    assert code == 0, out + err
    assert "solicitud: PR #1, commit " in out and "✓ approved by Ing. Marta Ávila Ibáñez" in out
    assert sandbox.account("jnunezo") is not None
    assert applied_commit(sandbox) == head
    [record] = account_records(sandbox)
    assert record["solicitud"]["how"] == "squash merge" and record["solicitud"]["landed"] == head
    assert record["solicitud"]["approvers"] == ["Ing. Marta Ávila Ibáñez <marta.avila@salud.morelos.gob.mx>"]


def test_a_merge_commit_names_the_branch_author_as_requester_and_its_trailers_as_approvers(sandbox):
    sandbox.repo.squash_merge("Estructura inicial")  # units and entitlements, nobody yet
    sandbox.repo.add("CS-JIUTEPEC", person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    merge = sandbox.repo.merge_pr("alta-zoe", "Alta de Zoé Güemes", requester=UNIT_HEAD,
                                  approvers=(APPROVER_2,), commits=2)
    code, out, err = sandbox.cli("apply", land=False)
    assert code == 0, out + err
    [record] = account_records(sandbox)
    solicitud = record["solicitud"]
    assert solicitud["how"] == "merge commit" and solicitud["landed"] == merge and solicitud["pull_request"] == "#2"
    assert solicitud["requester"].startswith("Dra. Ana Lucía Ordóñez")
    assert solicitud["commit"] != merge  # the feature commit that wrote the lines
    assert record["approval"]["counted"] == ["Lic. Raúl Peña Güemes <raul.pena@salud.morelos.gob.mx>"]


def test_a_self_approved_change_is_skipped_and_strict_refuses_the_whole_run(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.squash_merge("Alta", requester=APPROVER_1, approvers=(APPROVER_1,))
    code, out, err = sandbox.cli("apply", "--strict", land=False)
    assert code == 1
    assert "refusing to apply (--strict)" in err and "nothing was changed" in err
    assert "Ing. Marta Ávila Ibáñez requested the change and cannot approve it" in err
    assert sandbox.account("jnunezo") is None
    code, out, err = sandbox.cli("apply", land=False)
    assert code == 3, out + err
    assert "skipped + account jnunezo (José Ñúñez O'Brien): needs 1 approver, has 0 signed; " \
           "Ing. Marta Ávila Ibáñez requested the change and cannot approve it" in out
    assert sandbox.account("jnunezo") is None
    assert applied_commit(sandbox) is None  # not everything was applied
    [record] = account_records(sandbox)
    assert record["status"] == "skipped" and "cannot approve" in record["error"]
    code, out, _ = sandbox.cli("history", "jnunezo")
    assert ": skipped\n" in out and "✗ not approved: needs 1 approver, has 0 signed; Ing. Marta Ávila Ibáñez requested " \
                                     "the change and cannot approve it" in out


def test_a_privileged_grant_needs_two_approvers_while_the_rest_of_the_pr_applies(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", entitlements=["internet", "vpn"]),
                     person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    sandbox.repo.squash_merge("Altas", approvers=(APPROVER_1,))
    code, out, err = sandbox.cli("apply", land=False)
    assert code == 3, out + err
    assert "grants privileged vpn: needs 2 distinct approvers, has 1" in out
    assert sandbox.account("jnunezo") is None and sandbox.account("zguemeso") is not None
    # The second approver signs a follow-up pull request that touches the person: now it applies.
    sandbox.repo.find("SSM-000001")["department"] = "Urgencias Adultos"
    sandbox.repo.squash_merge("VPN para guardia", approvers=(APPROVER_1, APPROVER_2))
    code, out, err = sandbox.cli("apply", land=False)
    assert code == 0, out + err
    assert sandbox.groups_of("jnunezo") == {"GG-Internet", "GG-VPN-Remoto"}


def test_a_direct_push_to_main_is_never_applied(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.squash_merge("Alta")
    assert sandbox.cli("apply", land=False)[0] == 0
    sandbox.repo.find("SSM-000001")["title"] = "Director General"
    sandbox.repo.direct_push("me asciendo")
    code, out, err = sandbox.cli("apply", land=False)
    assert code == 3
    assert "was pushed straight to the protected branch without a signed approval" in out
    assert sandbox.account("jnunezo")["title"] == "Médico General"


def test_approvers_are_limited_to_their_units(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.add("CS-JIUTEPEC", person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    sandbox.repo.squash_merge("Altas", approvers=(UNIT_HEAD,))
    code, out, err = sandbox.cli("apply", land=False)
    assert code == 3
    assert "Dra. Ana Lucía Ordóñez may not approve unit CS-JIUTEPEC" in out
    assert sandbox.account("jnunezo") is not None and sandbox.account("zguemeso") is None


def test_an_unknown_approver_does_not_count(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.squash_merge("Alta", approvers=(("Fulano de Tal", "fulano@example.org"),))
    code, out, _ = sandbox.cli("apply", land=False)
    assert code == 3 and "a signature by fulano@example.org, who is not an approver in inventory/approvers.yaml" in out


def test_apply_never_reads_uncommitted_files_and_plan_previews_them_when_asked(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.squash_merge("Alta")
    sandbox.repo.add("CS-JIUTEPEC", person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    sandbox.repo.write()  # on disk, not committed
    code, out, _ = sandbox.cli("plan", "--working-tree", land=False)
    assert code == 2 and "working tree" in out and "zguemeso" in out
    code, out, _ = sandbox.cli("apply", land=False)
    assert code == 0 and "zguemeso" not in out
    assert sandbox.account("zguemeso") is None and sandbox.account("jnunezo") is not None


def test_a_plan_is_pinned_to_its_fingerprint(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.squash_merge("Alta")
    sandbox.apply()
    sandbox.repo.find("SSM-000001")["title"] = "Jefe de Urgencias"
    sandbox.repo.squash_merge("Cambio de puesto")
    code, out, _ = sandbox.cli("plan", "--output", "markdown", land=False)
    fingerprint = out.split("reconciler-fingerprint: ")[1].split(" ")[0]
    # Someone edits the account by hand after the plan was approved: the plan moved.
    sandbox.conn.modify(sandbox.account("jnunezo")["dn"], {"department": [(MODIFY_REPLACE, ["Quirófano"])]})
    code, out, err = sandbox.cli("apply", "--expect-fingerprint", fingerprint, land=False)
    assert code == 1 and f"not the approved {fingerprint}" in err
    assert sandbox.account("jnunezo")["title"] == "Médico General"
    code, out, _ = sandbox.cli("plan", "--output", "json", land=False)
    current = json.loads(out)["fingerprint"]
    assert current != fingerprint
    code, out, err = sandbox.cli("apply", "--expect-fingerprint", current, land=False)
    assert code == 0, out + err
    assert sandbox.account("jnunezo")["title"] == "Jefe de Urgencias"


def test_a_live_lock_refuses_and_an_expired_one_is_taken_over(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.squash_merge("Alta")
    sandbox.audit_dir.mkdir(parents=True)
    lock = sandbox.audit_dir / "ad-test.lock"
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    holder = {"operator": "ci-runner-2", "host": os.uname().nodename, "pid": os.getpid(), "ci_job": "GitLab job 77",
              "since": "2026-11-22T10:00:00+00:00", "expires": later, "token": "x"}
    lock.write_text(json.dumps(holder))
    code, out, err = sandbox.cli("apply", land=False)
    assert code == 1 and "target ad-test is locked by another apply: ci-runner-2 on" in err
    assert "CI job GitLab job 77" in err and sandbox.account("jnunezo") is None
    holder["expires"] = expired = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)).isoformat()
    lock.write_text(json.dumps(holder))
    code, out, err = sandbox.cli("apply", land=False)  # past its expiry, but its process runs here: held
    assert code == 1 and "is locked by another apply" in err
    holder["host"] = "ci-runner-2"  # another runner's lock past its expiry: taken over
    lock.write_text(json.dumps(holder))
    code, out, err = sandbox.cli("apply", land=False)
    assert code == 0, out + err
    assert "took over the lock of ci-runner-2" in err and f"expired at {i18n.when(expired)}" in err
    assert not lock.exists() and sandbox.account("jnunezo") is not None
    assert trail(sandbox)[0]["locks_taken_over"]


def test_audit_verify_names_the_first_edited_or_removed_record(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    sandbox.repo.find("SSM-000001")["title"] = "Jefe de Urgencias"
    sandbox.apply()
    code, out, _ = sandbox.cli("audit", "verify")
    assert code == 0 and "chain intact, matches the git notes" in out
    code, out, _ = sandbox.cli("audit", "verify", "--from-git")  # an auditor with only the repository
    assert code == 0 and "target ad-test (git notes): " in out and "records, chain intact" in out
    path = sandbox.audit_dir / "ad-test.audit.jsonl"
    original = path.read_text(encoding="utf-8")
    lines = original.splitlines(keepends=True)
    # An edit: someone changes who approved a change.
    n = next(i for i, line in enumerate(lines) if json.loads(line)["kind"] == "change")
    edited = json.loads(lines[n])
    edited["approval"]["counted"] = ["Alguien Más <otro@example.org>"]
    path.write_text("".join(lines[:n] + [json.dumps(edited, ensure_ascii=False) + "\n"] + lines[n + 1:]),
                    encoding="utf-8")
    code, out, _ = sandbox.cli("audit", "verify")
    assert code == 1 and f"line {n + 1} (seq {n + 1}): its content does not match its hash: the record was edited" in out
    # A removal.
    path.write_text("".join(lines[:3] + lines[4:]), encoding="utf-8")
    code, out, _ = sandbox.cli("audit", "verify")
    assert code == 1 and "line 4 (seq 5): expected seq 4; record 4 was removed" in out
    # An edited git note: Git alone shows it too.
    note = sandbox.repo.git.git.notes("--ref", "reconciler", "show", "HEAD")
    sandbox.repo.git.git.notes("--ref", "reconciler", "add", "-f", "-m", note.replace("Jefe de Urgencias", "Director"),
                               "HEAD")
    code, out, _ = sandbox.cli("audit", "verify", "--from-git")
    assert code == 1 and "(git notes): git note on " in out and "the record was edited" in out
    sandbox.repo.git.git.notes("--ref", "reconciler", "add", "-f", "-m", note, "HEAD")
    # The last records cut off: the chain is intact, but Git's notes remember them.
    path.write_text("".join(lines[:-2]), encoding="utf-8")
    code, out, _ = sandbox.cli("audit", "verify")
    assert code == 1 and f"record seq {len(lines) - 1} noted in Git" in out and "is missing from" in out


def test_history_and_report_tell_an_auditor_who_asked_who_approved_and_when(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.squash_merge("Alta", requester=UNIT_HEAD, approvers=(APPROVER_1,))
    sandbox.cli("apply", land=False)
    sandbox.repo.move("SSM-000001", "CS-JIUTEPEC")
    sandbox.repo.squash_merge("Cambio de adscripción", requester=REQUESTER, approvers=(APPROVER_2,))
    sandbox.cli("apply", land=False)
    sandbox.repo.find("SSM-000001").update(status="baja", solicitud={
        "folio": "SSM/STI/2026/09999", "date": "2026-11-20", "justification": "Renuncia",
        "requested_by": "Dra. Ana Lucía Ordóñez Peña"})
    sandbox.repo.squash_merge("Baja por renuncia", requester=UNIT_HEAD, approvers=(APPROVER_1, APPROVER_2))
    sandbox.cli("apply", land=False)
    code, out, _ = sandbox.cli("history", "jnunezo")
    assert code == 0
    assert out.count("account jnunezo (José Ñúñez O'Brien)") == 3
    assert out.index(" alta account") < out.index(" modificación account") < out.index(" baja account")
    assert "PR #1, requested by Dra. Ana Lucía Ordóñez <ana.ordonez@salud.morelos.gob.mx>, landed " in out
    assert "; ✓ approved by Ing. Marta Ávila Ibáñez\n" in out
    assert "PR #2, requested by José Núñez O'Brien" in out and "ou: " in out
    assert "✓ approved by Ing. Marta Ávila Ibáñez, Lic. Raúl Peña Güemes" in out
    code, out, _ = sandbox.cli("history", "SSM-000001", "--output", "json")
    moves = json.loads(out)
    code, from_git, _ = sandbox.cli("history", "SSM-000001", "--output", "json", "--from-git")
    assert json.loads(from_git) == moves  # Git alone tells the same story
    assert [m["movement"] for m in moves] == ["alta", "modificacion", "baja"]
    assert all(m["status"] == "applied" and m["verified"] for m in moves)
    month = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m")
    code, out, _ = sandbox.cli("report", "--month", month, "--output", "csv")
    rows = {line.split(",")[1]: line.split(",") for line in out.splitlines()[1:]}
    assert rows["altas"][2:5] == ["1", "1", "100.0"]
    assert rows["modificaciones"][2:5] == ["1", "1", "100.0"]
    assert rows["bajas"][2:5] == ["1", "1", "100.0"]
    assert rows["total"][2:5] == ["3", "3", "100.0"]
    code, out, _ = sandbox.cli("report", "--month", "2020-01")
    assert code == 0 and "total" in out


def test_incremental_plan_reads_only_what_changed_and_a_full_plan_still_catches_drift(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.add("CS-JIUTEPEC", person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    sandbox.apply()
    # A hand edit in Jiutepec, then a pull request that only touches Cuernavaca.
    sandbox.conn.modify(sandbox.account("zguemeso")["dn"], {"title": [(MODIFY_REPLACE, ["Otro"])]})
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000003", curp=None, given_names="Iñaki", first_surname="Muñoz",
                                             second_surname=None))
    sandbox.repo.squash_merge("Alta de Iñaki")
    code, out, _ = sandbox.cli("plan", "--since-applied", "--output", "json", land=False)
    plan = json.loads(out)
    assert plan["scope"].startswith("incremental since ") and "1 changed file, 1 changed person" in plan["scope"]
    assert [c["label"] for c in plan["changes"]] == ["imunoz (Iñaki Muñoz)"]
    code, out, _ = sandbox.cli("plan", "--output", "json", land=False)
    labels = {c["label"] for c in json.loads(out)["changes"]}
    assert labels == {"imunoz (Iñaki Muñoz)", "zguemeso (Zoé Güemes O'Brien)"}
    # A removal in the changed file is seen as a baja by the incremental plan.
    sandbox.repo.remove("SSM-000001")
    sandbox.repo.squash_merge("Baja")
    code, out, _ = sandbox.cli("plan", "--since-applied", "--output", "json", land=False)
    changes = json.loads(out)["changes"]
    assert {(c["movement"], c["key"]) for c in changes} == {("alta", "SSM-000003"), ("baja", "SSM-000001")}
    # Units changing means everyone may change: a full plan, and it says why.
    sandbox.repo.units["HG-CUERNAVACA"]["name"] = "Hospital General de Cuernavaca Dr. José G. Parres"
    sandbox.repo.squash_merge("Nombre oficial")
    code, out, _ = sandbox.cli("plan", "--since-applied", land=False)
    assert "Scope: full (desired_state/units.yaml changed)" in out
    # After a complete apply the recorded commit moves and nothing is left to do incrementally.
    sandbox.apply("--since-applied")
    code, out, _ = sandbox.cli("plan", "--since-applied", land=False)
    assert code == 0 and "No changes." in out


def test_incremental_plan_falls_back_to_a_full_one_when_a_partial_view_cannot_judge(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.add("CS-JIUTEPEC", person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    sandbox.apply()
    # A namesake in another file: account names are derived looking at everyone.
    sandbox.repo.add("CS-JIUTEPEC", person("SSM-000004", curp=None, given_names="Jorge"))
    sandbox.repo.squash_merge("Alta de Jorge")
    code, out, _ = sandbox.cli("plan", "--since-applied", land=False)
    assert code == 2 and "Scope: full (the account name jnunezo is near a new or renamed account's name)" in out
    assert "+ account jnunezo000004 (Jorge Ñúñez O'Brien)" in out
    # An employee declared a second time in a changed file: only the full validation sees the first.
    sandbox.repo.remove("SSM-000004")
    sandbox.repo.add("CS-JIUTEPEC", person("SSM-000001", curp=None, given_names="José"))
    sandbox.repo.squash_merge("Otra vez José")
    code, out, err = sandbox.cli("plan", "--since-applied", land=False)
    assert code == 1 and "employee key 'SSM-000001' is already declared at desired_state/users/" in err
