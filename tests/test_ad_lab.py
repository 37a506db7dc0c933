"""Altas, modificaciones and bajas against the lab's real Samba AD DC."""
from __future__ import annotations

import csv
import os
import ssl
import stat

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, NONE, Connection, Server, Tls

from conftest import BASE_DN, LAB_DIR, person

pytestmark = pytest.mark.lab  # every test: a sandbox in the lab's Samba AD DC

UAC_DISABLED = 0x2


def _bind_result(upn: str, password: str) -> str:
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(LAB_DIR / "ca.pem"))
    conn = Connection(Server("127.0.0.1", port=636, use_ssl=True, tls=tls, get_info=NONE), user=upn, password=password)
    conn.bind()
    return conn.result["message"]


def test_alta_creates_an_enabled_account_that_must_change_its_password(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    out = sandbox.apply()
    assert "+ account jnunezo (José Ñúñez O'Brien)" in out
    account = sandbox.account("jnunezo")
    assert account["dn"] == (r"CN=Ñúñez O'Brien\, José,OU=HG-CUERNAVACA," + sandbox.people_ou)
    assert account["displayName"] == "José Ñúñez O'Brien"
    assert account["givenName"] == "José" and account["sn"] == "Ñúñez O'Brien"
    assert account["userPrincipalName"] == "jnunezo@salud.lab"
    assert account["employeeID"] == "SSM-000001"
    assert account["title"] == "Médico General" and account["ipPhone"] == "424"
    assert account["physicalDeliveryOfficeName"] == "Hospital General de Cuernavaca"
    assert not int(account["userAccountControl"]) & UAC_DISABLED
    assert sandbox.groups_of("jnunezo") == {"GG-SIEMPRE-Usuarios", "GG-Internet"}
    assert "curp" not in {k.lower() for k in account}  # sensitive data stays out of AD

    # The password is only in the root-only credentials file, and it works: AD answers
    # "must change password" (data 773) rather than "wrong password" (data 52e).
    files = list(sandbox.credentials_dir.glob("*.csv"))
    assert len(files) == 1
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sandbox.credentials_dir).st_mode) == 0o700
    rows = list(csv.DictReader(files[0].open(encoding="utf-8")))
    assert [r["account"] for r in rows] == ["jnunezo"]
    password = rows[0]["password"]
    assert password not in out
    assert "data 773" in _bind_result("jnunezo@salud.lab", password)
    assert "data 52e" in _bind_result("jnunezo@salud.lab", password + "x")
    assert str(files[0]) in out

    sandbox.assert_converged()


def test_apply_reports_verified_changes(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"), person("SSM-000002", given_names="Ana", first_surname="López",
                                                                    second_surname="García", curp=None))
    out = sandbox.apply()
    ous_groups = 1 + 3 + 1 + 3  # root OU, people/groups/bajas OUs, the unit OU, the three declared groups
    assert f"Apply complete: {2 + ous_groups} altas, 0 modificaciones, 0 bajas applied; {2 + ous_groups} verified" in out
    assert "0 failed" in out


def test_modificacion_changes_attributes_and_shows_before_and_after(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    sandbox.repo.find("SSM-000001").update(title="Jefe de Urgencias", phone="777 311 9999")
    del sandbox.repo.find("SSM-000001")["extension"]
    code, out, _ = sandbox.cli("plan")
    assert code == 2
    assert '~ title                     "Médico General" → "Jefe de Urgencias"' in out
    assert '~ ipPhone                   "424" → (none)' in out
    assert "Plan: 0 altas, 1 modificación, 0 bajas." in out
    sandbox.apply()
    account = sandbox.account("jnunezo")
    assert account["title"] == "Jefe de Urgencias" and account["telephoneNumber"] == "777 311 9999"
    assert "ipPhone" not in account or not account["ipPhone"]
    sandbox.assert_converged()


def test_modificacion_adds_and_removes_group_memberships(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    sandbox.repo.find("SSM-000001")["entitlements"] = ["expediente_electronico", "vpn"]
    code, out, _ = sandbox.cli("plan")
    assert f"+ groups {sandbox.group('GG-VPN-Remoto')}" in out
    assert f"- groups {sandbox.group('GG-Internet')}" in out
    sandbox.apply()
    assert sandbox.groups_of("jnunezo") == {"GG-SIEMPRE-Usuarios", "GG-VPN-Remoto"}
    sandbox.assert_converged()


def test_a_change_of_unit_moves_the_account(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    sandbox.repo.move("SSM-000001", "OC-DGPE")
    sandbox.apply()
    account = sandbox.account("jnunezo")
    # An OU name with a comma, and a CN with a comma, in one DN.
    assert account["dn"] == rf"CN=Ñúñez O'Brien\, José,OU=Oficinas Centrales\, DGPE,{sandbox.people_ou}"
    assert account["physicalDeliveryOfficeName"] == "Oficinas Centrales, Dirección General de Planeación"
    assert sandbox.groups_of("jnunezo") == {"GG-SIEMPRE-Usuarios", "GG-Internet"}
    sandbox.assert_converged()


def test_a_change_of_name_renames_the_account(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    sandbox.repo.find("SSM-000001").update(first_surname="Peña", second_surname="Muñoz")
    code, out, _ = sandbox.cli("plan")
    assert '~ sAMAccountName            "jnunezo" → "jpenam"' in out
    sandbox.apply()
    assert sandbox.account("jnunezo") is None
    account = sandbox.account("jpenam")
    assert account["dn"].startswith(r"CN=Peña Muñoz\, José,OU=HG-CUERNAVACA,")
    assert account["userPrincipalName"] == "jpenam@salud.lab" and account["employeeID"] == "SSM-000001"
    assert sandbox.groups_of("jpenam") == {"GG-SIEMPRE-Usuarios", "GG-Internet"}
    sandbox.assert_converged()


def test_baja_disables_revokes_moves_and_stamps_but_never_deletes(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    sandbox.repo.find("SSM-000001").update(status="baja", solicitud={
        "folio": "SSM/RH/2026/00377", "date": "2026-11-03", "justification": "Baja por renuncia voluntaria",
        "requested_by": "Lic. Marco Antonio Bahena Solís"})
    code, out, _ = sandbox.cli("plan")
    assert code == 2 and "- account jnunezo" in out and "Plan: 0 altas, 0 modificaciones, 1 baja." in out
    sandbox.apply()
    account = sandbox.account("jnunezo")
    assert account is not None
    assert account["dn"] == rf"CN=Ñúñez O'Brien\, José (jnunezo),{sandbox.bajas_ou}"
    assert int(account["userAccountControl"]) & UAC_DISABLED
    assert sandbox.groups_of("jnunezo") == set()
    assert account["description"] == "Baja 2026-11-03 folio SSM/RH/2026/00377"
    sandbox.assert_converged()

    # Reactivation (a new alta solicitud for the same employee) brings the account back.
    sandbox.repo.find("SSM-000001")["status"] = "activo"
    sandbox.apply()
    account = sandbox.account("jnunezo")
    assert account["dn"].endswith(f"OU=HG-CUERNAVACA,{sandbox.people_ou}")
    assert not int(account["userAccountControl"]) & UAC_DISABLED
    assert "description" not in account
    assert sandbox.groups_of("jnunezo") == {"GG-SIEMPRE-Usuarios", "GG-Internet"}
    sandbox.assert_converged()


def test_a_person_no_longer_declared_becomes_a_baja(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"), person("SSM-000002", given_names="Ana", curp=None))
    sandbox.apply()
    sandbox.repo.remove("SSM-000002")
    code, out, _ = sandbox.cli("plan")
    assert "no longer declared in desired_state" in out
    sandbox.apply()
    account = sandbox.account("anunezo")
    assert int(account["userAccountControl"]) & UAC_DISABLED
    assert account["dn"].endswith(sandbox.bajas_ou)
    assert account["description"].startswith("Baja ") and "sin folio" in account["description"]
    sandbox.assert_converged()


def test_hand_made_changes_are_reported_as_drift_and_corrected(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    dn = sandbox.account("jnunezo")["dn"]
    sandbox.conn.modify(dn, {"title": [(MODIFY_REPLACE, ["Director"])],
                             "userAccountControl": [(MODIFY_REPLACE, [512 | UAC_DISABLED])]})
    group = f"CN={sandbox.group('GG-VPN-Remoto')},{sandbox.groups_ou}"
    assert sandbox.conn.modify(group, {"member": [(MODIFY_ADD, [dn])]})
    plan = sandbox.plan_json()
    [change] = plan["changes"]
    assert change["movement"] == "modificacion" and change["drift"] is True
    assert "drift" in change["reason"]
    by_name = {a["name"]: a for a in change["attributes"]}
    assert by_name["title"] == {"name": "title", "before": "Director", "after": "Médico General"}
    assert by_name["enabled"]["after"] is True
    vpn = sandbox.group("GG-VPN-Remoto")
    assert vpn in by_name["groups"]["before"] and vpn not in by_name["groups"]["after"]
    sandbox.apply()
    account = sandbox.account("jnunezo")
    assert account["title"] == "Médico General" and not int(account["userAccountControl"]) & UAC_DISABLED
    assert sandbox.groups_of("jnunezo") == {"GG-SIEMPRE-Usuarios", "GG-Internet"}
    sandbox.assert_converged()


def test_a_requested_change_is_not_called_drift(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.apply()
    sandbox.repo.find("SSM-000001")["title"] = "Jefe de Urgencias"
    [change] = sandbox.plan_json()["changes"]
    assert change["drift"] is False and change["reason"] is None


def test_an_unmanaged_account_that_collides_is_a_conflict_and_left_alone(sandbox):
    # Someone created jnunezo by hand, outside the reconciler, in the default Users container.
    foreign_dn = "CN=Jose Nunez (manual),CN=Users," + BASE_DN
    sandbox.conn.delete(foreign_dn)
    assert sandbox.conn.add(foreign_dn, ["top", "person", "organizationalPerson", "user"],
                            {"sAMAccountName": "jnunezo", "title": "Creada a mano"})
    try:
        sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"), person("SSM-000002", given_names="Ana", curp=None))
        plan = sandbox.plan_json()
        assert [c["key"] for c in plan["conflicts"]] == ["SSM-000001"]
        assert "held by unmanaged object" in plan["conflicts"][0]["message"]
        assert "SSM-000001" not in {c["key"] for c in plan["changes"]}
        code, out, _ = sandbox.cli("plan")
        assert "1 conflict" in out and "jnunezo" in out
        before = sandbox.account("jnunezo")
        sandbox.apply()
        after = sandbox.account("jnunezo")
        assert after == before  # not one attribute touched
        assert sandbox.account("anunezo") is not None  # the rest of the plan went ahead
    finally:
        sandbox.conn.delete(foreign_dn)


def test_an_unmarked_account_carrying_the_employee_key_is_adopted_not_created_again(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000002", given_names="Ana", curp=None))
    sandbox.apply()  # creates the OUs
    unit_ou = f"OU=HG-CUERNAVACA,{sandbox.people_ou}"
    dn = f"CN=Someone Else,{unit_ou}"
    assert sandbox.conn.add(dn, ["top", "person", "organizationalPerson", "user"],
                            {"sAMAccountName": "someone.else", "employeeID": "SSM-000001",
                             "adminDescription": "hecha a mano"})
    guid = sandbox.account("someone.else")["objectGUID"]
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", account={"sam": "someone.else"}))
    plan = sandbox.plan_json()
    [conflict] = plan["conflicts"]  # no adopt_from: nothing made by hand is ever adopted
    assert "held by unmanaged object" in conflict["message"] and plan["changes"] == []
    sandbox.write_inventory(adopt_from=[sandbox.people_ou])
    plan = sandbox.plan_json()
    [change] = [c for c in plan["changes"] if c["kind"] == "account"]
    assert change["movement"] == "adopcion" and plan["summary"]["adopciones"] == 1 and plan["conflicts"] == []
    assert {"name": "adminDescription", "before": "hecha a mano", "after": "reconciler"} in change["attributes"]
    code, out, _ = sandbox.cli("plan")
    assert "< cuenta" in out or "< account" in out
    sandbox.apply()
    adopted = sandbox.account("someone.else")
    assert adopted["objectGUID"] == guid and adopted["title"] == "Médico General"
    assert adopted["adminDescription"].startswith("reconciler applied=")
    sandbox.assert_converged()


def test_a_second_account_of_the_person_outside_adopt_from_stops_the_adoption(sandbox):
    """The person's hand-made account is under adopt_from, and another one carrying their key sits
    elsewhere (CN=Users): adopting the first would leave the second enabled after their baja.
    The domain is searched for the key, and the adoption is a conflict naming the other."""
    for ou in (sandbox.root, f"OU=Legado,{sandbox.root}"):
        assert sandbox.conn.add(ou, "organizationalUnit"), sandbox.conn.result
    legacy = f"CN=Ana Legado,OU=Legado,{sandbox.root}"
    stray = f"CN=Ana Vieja {sandbox.suffix},CN=Users,{BASE_DN}"
    for dn, sam in ((legacy, f"ana.{sandbox.suffix}"), (stray, f"ana.vieja.{sandbox.suffix}")):
        assert sandbox.conn.add(dn, ["top", "person", "organizationalPerson", "user"],
                                {"sAMAccountName": sam, "employeeID": "SSM-000001"}), sandbox.conn.result
    try:
        sandbox.write_inventory(adopt_from=[f"OU=Legado,{sandbox.root}"])
        sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", given_names="Ana", curp=None))
        plan = sandbox.plan_json()
        assert not [c for c in plan["changes"] if c["kind"] == "account"]
        [conflict] = plan["conflicts"]
        assert "SSM-000001" in conflict["message"] and stray in conflict["message"], conflict
        sandbox.conn.delete(stray)  # the old account removed: the adoption goes ahead
        [change] = [c for c in sandbox.plan_json()["changes"] if c["kind"] == "account"]
        assert change["movement"] == "adopcion"
        # adopt: names one of two accounts under adopt_from that carry the key: the other is named
        twin = f"CN=Ana Gemela,OU=Legado,{sandbox.root}"
        assert sandbox.conn.add(twin, ["top", "person", "organizationalPerson", "user"],
                                {"sAMAccountName": f"ana.g.{sandbox.suffix}", "employeeID": "SSM-000001"})
        sandbox.repo.remove("SSM-000001")
        sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", given_names="Ana", curp=None,
                                                 adopt=f"ana.{sandbox.suffix}"))
        plan = sandbox.plan_json()
        assert not [c for c in plan["changes"] if c["kind"] == "account"]
        assert any(twin in c["message"] for c in plan["conflicts"]), plan["conflicts"]
    finally:
        sandbox.conn.delete(stray)


def test_a_member_of_a_privileged_group_through_nesting_is_never_adopted(sandbox):
    """Whatever the YAML says and wherever it sits: the directory itself is asked (in-chain)."""
    for ou in (sandbox.root, f"OU=Legado,{sandbox.root}"):
        assert sandbox.conn.add(ou, "organizationalUnit"), sandbox.conn.result
    admin = f"CN=Admin Escondido,OU=Legado,{sandbox.root}"
    nested = f"CN=Soporte Avanzado {sandbox.suffix},OU=Legado,{sandbox.root}"
    assert sandbox.conn.add(nested, ["top", "group"], {"sAMAccountName": f"soporte.{sandbox.suffix}"})
    assert sandbox.conn.add(admin, ["top", "person", "organizationalPerson", "user"],
                            {"sAMAccountName": f"adm.{sandbox.suffix}", "employeeID": "SSM-000001"})
    sandbox.conn.modify(nested, {"member": [(MODIFY_ADD, [admin])]})
    domain_admins = f"CN=Domain Admins,CN=Users,{BASE_DN}"
    assert sandbox.conn.modify(domain_admins, {"member": [(MODIFY_ADD, [nested])]}), sandbox.conn.result
    try:
        sandbox.write_inventory(adopt_from=[f"OU=Legado,{sandbox.root}"])
        sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
        plan = sandbox.plan_json()
        [conflict] = plan["conflicts"]
        assert "never adopts" in conflict["message"] and admin in conflict["message"]
        assert not [c for c in plan["changes"] if c["kind"] == "account"]
    finally:
        sandbox.conn.modify(domain_admins, {"member": [(MODIFY_DELETE, [nested])]})


def test_the_deletion_guard_refuses_mass_bajas_unless_told(sandbox):
    people = [person(f"SSM-00000{i}", given_names=n, curp=None) for i, n in enumerate(["Ana", "Luis", "Inés"], 1)]
    sandbox.repo.add("CS-JIUTEPEC", *people)
    sandbox.apply()
    sandbox.write_inventory(max_bajas=2)
    for p in people:
        sandbox.repo.remove(p["employee_key"])
    code, out, err = sandbox.cli("plan")
    assert code == 2 and "exceed the deletion guard" in out
    code, out, err = sandbox.cli("apply")
    assert code == 1
    assert "refusing to apply: 3 bajas on target ad-test exceed max_bajas (2)" in err
    assert "--allow-mass-baja" in err and "Traceback" not in err
    assert not int(sandbox.account("anunezo")["userAccountControl"]) & UAC_DISABLED  # nothing changed
    sandbox.apply("--allow-mass-baja")
    assert int(sandbox.account("anunezo")["userAccountControl"]) & UAC_DISABLED
    sandbox.assert_converged()


def test_plan_outputs_json_and_markdown_with_exit_codes(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    plan = sandbox.plan_json()
    assert plan["summary"] == {"adopciones": 0, "altas": 9, "modificaciones": 0, "bajas": 0, "conflicts": 0}
    account = next(c for c in plan["changes"] if c["kind"] == "account")
    assert account["label"] == "jnunezo (José Ñúñez O'Brien)" and account["folio"] == "SSM/STI/2026/00001"
    assert all("password" not in a["name"].lower() and "unicodePwd" != a["name"] for a in account["attributes"])
    code, out, _ = sandbox.cli("plan", "--output", "markdown")
    assert code == 2
    assert out.startswith("<!-- reconciler-fingerprint: ") and "\n### Reconciler plan\n" in out and "**Plan: 9 altas, 0 modificaciones, 0 bajas.**" in out
    assert "| + | account | jnunezo (José Ñúñez O'Brien) | SSM/STI/2026/00001 |" in out
    sandbox.apply()
    code, out, _ = sandbox.cli("plan", "--output", "markdown")
    assert code == 0 and "No changes." in out


def test_connection_errors_are_clear(sandbox, tmp_path):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password")
    sandbox.write_inventory(bind_password={"file": str(wrong)})
    code, out, err = sandbox.cli("apply")
    assert code == 1 and "refused the bind as svc-reconciler@SALUD.LAB" in err and "not-the-password" not in err
    # A plan binds as the read-only account, and names it when its password is wrong.
    sandbox.write_inventory(read_bind={"bind_dn": "svc-lectura@SALUD.LAB", "bind_password": {"file": str(wrong)}})
    code, out, err = sandbox.cli("plan")
    assert code == 1 and "refused the bind as svc-lectura@SALUD.LAB" in err and "not-the-password" not in err
    sandbox.write_inventory(tls={})  # no lab CA: the certificate must not be trusted
    code, out, err = sandbox.cli("plan")
    assert code == 1 and "certificate" in err and "not trusted" in err
    sandbox.write_inventory(bind_password={"env": "RECONCILER_TEST_UNSET_VARIABLE"})
    code, out, err = sandbox.cli("apply")
    assert code == 1 and "RECONCILER_TEST_UNSET_VARIABLE, which is not set" in err


def test_invalid_yaml_is_reported_by_plan_while_the_directory_is_being_read(sandbox):
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", status="Activo"))
    code, out, err = sandbox.cli("plan")
    assert code == 1 and "Traceback" not in err
    assert "desired_state/users/hg-cuernavaca.yaml:" in err and "people[0].status: 'Activo' is not one of" in err
    sandbox.write_inventory(port=1)  # and when the target is unreachable too, the YAML problem comes first
    code, out, err = sandbox.cli("plan")
    assert code == 1 and "people[0].status" in err and "cannot reach" not in err


def test_each_apply_leaves_a_chained_audit_trail_without_secrets_and_a_git_note(sandbox):
    import json

    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    out = sandbox.apply()
    trail = sandbox.audit_dir / "ad-test.audit.jsonl"
    assert f"Audit trail: {trail}" in out
    assert stat.S_IMODE(os.stat(trail).st_mode) == 0o600
    records = [json.loads(line) for line in trail.read_text(encoding="utf-8").splitlines()]
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "run-start" and kinds[-1] == "run-end" and records[-1]["result"] == "complete"
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert all(r["prev"] == p["hash"] for p, r in zip(records, records[1:]))
    changes = [r for r in records if r["kind"] == "change"]
    planned = [r for r in records if r["kind"] == "planned"]
    assert len(changes) == len(planned) == records[0]["planned"] == 9
    assert kinds.index("change") > max(i for i, k in enumerate(kinds) if k == "planned")  # intent first
    account = next(r for r in changes if r["object_kind"] == "account")
    assert account["label"] == "jnunezo (José Ñúñez O'Brien)"
    assert account["status"] == "applied" and account["verified"] is True
    assert account["solicitud"]["pull_request"] == "#1"
    assert account["solicitud"]["requester"] == "José Núñez O'Brien <jose.nunez@salud.morelos.gob.mx>"
    assert account["approval"]["approved"] is True and account["commit"] == sandbox.repo.git.head.commit.hexsha
    assert records[0]["target"] == "ad-test" and records[0]["operator"] and records[0]["reconciler"]
    [credentials] = list(sandbox.credentials_dir.glob("*.csv"))
    password = list(csv.DictReader(credentials.open(encoding="utf-8")))[0]["password"]
    assert password not in trail.read_text(encoding="utf-8")
    # The same records, attached to the applied commit as a git note.
    note = sandbox.repo.git.git.notes("--ref", "reconciler", "show", "HEAD")
    lines = [line for line in note.splitlines() if line.strip()]
    assert [json.loads(line)["hash"] for line in lines[:-1]] == [r["hash"] for r in records]
    assert lines[-1].startswith("reconciler-seal-v1 ")  # the run's records, sealed by the apply key
    assert password not in note
