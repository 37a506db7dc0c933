"""Desktops and laptops follow their declarations as computer objects in the lab's real AD:
created in their unit's OU with their holder in managedBy, renamed in place, released when
their holder is a baja, and decommissioned (disabled, moved to the bajas OU, stamped with the
verdict)."""
from __future__ import annotations

import pytest
from ldap3 import SUBTREE

from conftest import person

pytestmark = pytest.mark.lab  # every test: a sandbox in the lab's Samba AD DC


def computer(sandbox, hostname: str) -> dict | None:
    sandbox.conn.search(sandbox.root, f"(&(objectCategory=computer)(cn={hostname}))", SUBTREE,
                        attributes=["description", "managedBy", "userAccountControl", "location", "objectGUID",
                                    "sAMAccountName"])
    entries = [e for e in sandbox.conn.response if e.get("type") == "searchResEntry"]
    if not entries:
        return None
    attrs = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in entries[0]["attributes"].items()}
    return {**attrs, "dn": entries[0]["dn"]}


def desktop(hostname: str = "HGC-URG-PC01", holder: str | None = "SSM-000001", **fields) -> dict:
    item = {"inventory_number": "SSM-INV-2024-00123", "serial": "MXL4221ABC", "type": "desktop", "brand": "HP",
            "model": "ProDesk 400 G9", "hostname": hostname, "unit": "HG-CUERNAVACA",
            "location": "Urgencias, estación de enfermería", "status": "en_uso"}
    if holder:
        item["person"] = holder
    item.update(fields)
    return item


def test_a_computer_follows_its_declaration_from_alta_to_decommission(sandbox):
    repo = sandbox.repo
    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None),
             person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    repo.equipment = [desktop()]
    sandbox.apply()
    pc = computer(sandbox, "HGC-URG-PC01")
    assert pc["dn"].startswith("CN=HGC-URG-PC01,OU=HG-CUERNAVACA,OU=Personal,")
    assert pc["sAMAccountName"] == "HGC-URG-PC01$" and int(pc["userAccountControl"]) == 0x1000
    assert pc["managedBy"] == sandbox.account("jnunezo")["dn"]
    assert "inventario SSM-INV-2024-00123" in pc["description"] and pc["location"].startswith("Urgencias")
    sandbox.assert_converged()
    guid = pc["objectGUID"]

    repo.equipment = [desktop("HGC-URG-PC02", holder="SSM-000002")]  # renamed and handed to Zoé
    sandbox.apply()
    assert computer(sandbox, "HGC-URG-PC01") is None
    pc = computer(sandbox, "HGC-URG-PC02")
    assert pc["objectGUID"] == guid and pc["managedBy"] == sandbox.account("zguemeso")["dn"]
    sandbox.assert_converged()

    repo.equipment = [desktop("HGC-URG-PC02", holder=None, status="baja", decommission={
        "reason": "obsolescencia", "date": "2026-10-20", "dictamen": "DT/STI/2026/0042",
        "reusable_parts": ["memoria RAM 8 GB", "disco SSD 240 GB"]})]
    sandbox.apply()
    pc = computer(sandbox, "HGC-URG-PC02")
    assert pc["dn"].endswith(sandbox.bajas_ou) and int(pc["userAccountControl"]) & 2
    assert pc["description"].startswith("Baja 2026-10-20 dictamen DT/STI/2026/0042 (obsolescencia)")
    assert "managedBy" not in pc or not pc["managedBy"]
    sandbox.assert_converged()


def test_a_holders_baja_releases_the_computer_in_the_same_plan(sandbox):
    repo = sandbox.repo
    repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    repo.equipment = [desktop()]
    sandbox.apply()
    repo.find("SSM-000001").update(status="baja", solicitud={
        "folio": "SSM/RH/2026/00377", "date": "2026-11-20", "justification": "Baja por renuncia",
        "requested_by": "Recursos Humanos"})
    plan = sandbox.plan_json()
    [released] = [c for c in plan["changes"] if c["kind"] == "computer"]
    assert released["reason"] == "released: its holder is a baja"
    assert {"name": "holder", "before": "SSM-000001", "after": None} in released["attributes"]
    assert any(w.startswith("collect desktop SSM-INV-2024-00123") for w in plan["warnings"])
    sandbox.apply()
    pc = computer(sandbox, "HGC-URG-PC01")
    assert not pc.get("managedBy") and int(pc["userAccountControl"]) & 2 == 0  # still in use, by the unit
    sandbox.assert_converged()


def test_a_computer_made_by_hand_at_a_declared_hostname_is_adopted_and_a_user_holding_it_is_a_conflict(sandbox):
    for ou in (sandbox.root, f"OU=manual,{sandbox.root}"):  # made by hand, before any apply
        assert sandbox.conn.add(ou, "organizationalUnit"), sandbox.conn.result
    dn = f"CN=HGC-URG-PC01,OU=manual,{sandbox.root}"
    assert sandbox.conn.add(dn, ["top", "person", "organizationalPerson", "user", "computer"],
                            {"sAMAccountName": "HGC-URG-PC01$", "userAccountControl": 0x1000,
                             "description": "PC de urgencias"})
    guid = computer(sandbox, "HGC-URG-PC01")["objectGUID"]
    user = f"CN=HGC-URG-PC02,OU=manual,{sandbox.root}"  # a user account holding a computer's name
    assert sandbox.conn.add(user, ["top", "person", "organizationalPerson", "user"], {"sAMAccountName": "HGC-URG-PC02$"})
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001", curp=None))
    sandbox.repo.equipment = [desktop(), desktop("HGC-URG-PC02", None, inventory_number="SSM-INV-2024-00124")]
    plan = sandbox.plan_json()
    assert {c["key"] for c in plan["conflicts"]} == {"SSM-INV-2024-00123", "SSM-INV-2024-00124"}  # no adopt_from
    sandbox.write_inventory(adopt_from=[f"OU=manual,{sandbox.root}"])
    plan = sandbox.plan_json()
    [conflict] = plan["conflicts"]
    assert conflict["key"] == "SSM-INV-2024-00124" and user in conflict["message"]
    [adopted] = [c for c in plan["changes"] if c["kind"] == "computer"]
    assert adopted["movement"] == "adopcion" and adopted["key"] == "SSM-INV-2024-00123"
    assert {"name": "description", "before": "PC de urgencias",
            "after": "HP ProDesk 400 G9 · inventario SSM-INV-2024-00123 · serie MXL4221ABC"} in adopted["attributes"]
    sandbox.apply()
    now = computer(sandbox, "HGC-URG-PC01")
    assert now["objectGUID"] == guid and f"OU=HG-CUERNAVACA,{sandbox.people_ou}".lower() in now["dn"].lower()
    assert now["managedBy"].lower() == sandbox.account("jnunezo")["dn"].lower()
    code, out, _ = sandbox.cli("plan")
    assert "HGC-URG-PC02" in out and "HGC-URG-PC01" not in out  # only the conflict is left
