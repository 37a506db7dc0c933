"""A person's baja de servicios (reconciler offboarding): every access removed (verified), every
work order raised on a system with no API, the equipment to collect and the carrier lines to
cancel, complete only when each is done.

The engine, Git, the work-order ledger and the CLI are the real ones; the automatic target is
the fake kind (tests/fakes.py), a test double standing for Active Directory here (the lab demo
runs the same against the real servers)."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import yaml
from conftest import person, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from test_carta import text_of

from reconciler.desired.model import DesiredState
from reconciler.offboarding import document
from reconciler.offboarding.servicios import BajaDeServicios, OrderItem, Removed, removals
from reconciler.run.engine import Run
from reconciler.desired.source import at_ref

UNIT = "HG-CUERNAVACA"
BAJA_FOLIO = "SSM/RH/2026/00377"
LAPTOP = {"inventory_number": "SSM-INV-2025-00311", "serial": "5CD3149XQ2", "type": "laptop", "brand": "Lenovo",
          "model": "ThinkPad E14", "hostname": "HGC-LT-0311", "unit": UNIT, "person": "SSM-000001", "status": "en_uso"}
LINE = {"number": "7773112210", "kind": "carrier", "carrier": "Telmex", "master_account": "7773100000",
        "plan": "Paquete Empresarial 1000", "unit": UNIT, "person": "SSM-000001", "status": "activa",
        "solicitud": {"folio": "SSM/STI/2024/00310", "date": "2024-02-12", "justification": "Línea de Urgencias",
                      "requested_by": "Dirección"}}


@pytest.fixture
def office(fakes, tmp_path):
    """An automatic target (the fake a-first) and SIEMPRE, a system with no API, in one inventory;
    SSM-000001 holds SIEMPRE access, a laptop and a carrier line."""
    repo = fakes.repo
    repo.entitlements["siempre"] = {"description": "Cuenta en SIEMPRE", "system": "siempre"}
    common = {"audit_dir": str(fakes.audit_dir), "credentials_dir": str(tmp_path / "credentials")}
    fakes.inventory.write_text(yaml.safe_dump({"delivery": {"mode": "clear-text-file-lab-only"}, "targets": {
        "a-first": {"kind": "fake_first", "state_file": str(tmp_path / "a-first.json"), **common},
        "siempre": {"kind": "manual", "system": "siempre", "name": "SIEMPRE",
                    "operator": {"name": "Mesa de ayuda SIEMPRE", "contact": "soporte@ssm.gob.mx", "channel": "correo"},
                    "sla_days": 5, **common}}}, allow_unicode=True), encoding="utf-8")
    repo.add(UNIT, person("SSM-000001", entitlements=["siempre"]))
    repo.equipment = [dict(LAPTOP)]
    repo.lines = [dict(LINE)]
    repo.squash_merge("Alta con SIEMPRE, laptop y línea")
    _apply(repo, fakes.inventory)
    return repo, fakes.inventory


def _apply(repo, inventory):
    with Run(at_ref(repo.root), inventory, lock=True) as run:
        plan = run.plan()
        report = run.apply(plan)
    assert report.ok, (report.outcomes, report.skipped)
    return report


def _offboarding(repo, inventory, *more) -> tuple[int, str, str]:
    return run_cli("--lang", "en", "--repo", str(repo.root), "offboarding", "SSM-000001", "--inventory",
                   str(inventory), *more)


def _confirm(repo, folio: str) -> None:
    repo.confirmations.append({"folio": folio, "confirmado": {"fecha": dt.date.today().isoformat(),
                                                               "por": "Ana Ruiz", "ticket": "SIEMPRE-4411"}})


def test_a_baja_lists_every_item_and_is_complete_only_once_each_is_done(office, tmp_path):
    repo, inventory = office
    repo.baja("SSM-000001", folio=BAJA_FOLIO)
    repo.squash_merge("Baja de SSM-000001")
    report = _apply(repo, inventory)
    with Run(at_ref(repo.root), inventory) as run:
        assert report.bajas(run.state) == [("SSM-000001", "José Ñúñez O'Brien")]

    code, out, err = _offboarding(repo, inventory, "--output", "json")
    assert code == 2, err
    said = json.loads(out)
    [removed] = said["removed"]
    assert (removed["target"], removed["key"], removed["status"], removed["verified"], removed["done"]) == \
        ("a-first", "SSM-000001", "applied", True, True)
    [order] = said["work_orders"]
    assert order["folio"].startswith("OT-SIEMPRE-") and not order["done"] and order["issued"]
    assert [(e["key"], e["done"]) for e in said["equipment"]] == [("SSM-INV-2025-00311", False)]
    assert [(x["key"], x["done"]) for x in said["carrier_lines"]] == [("7773112210", False)]
    assert said["folio"] == BAJA_FOLIO and said["pending"] == 3 and not said["complete"]
    assert len(said["approvers"]) == 2

    # On paper, as poppler reads it: the person, the request, every item and its state.
    pdf = tmp_path / "baja.pdf"
    code, out, _err = _offboarding(repo, inventory, "--output", "pdf", "--out", str(pdf))
    words = text_of(pdf.read_bytes())
    for expected in ("José Ñúñez O'Brien", BAJA_FOLIO, order["folio"], "SSM-INV-2025-00311", "7773112210",
                     "Not complete: 3 of 4 items are still pending", "verified"):
        assert expected in " ".join(words.split()), expected

    # The operator answers, the laptop comes back, the carrier cancels the line: by pull request.
    _confirm(repo, order["folio"])
    repo.equipment[0].update(person=None, status="en_almacen")
    del repo.equipment[0]["person"]
    repo.lines[0]["status"] = "baja"
    repo.squash_merge("Confirmación, equipo recogido y línea cancelada")
    _apply(repo, inventory)
    code, out, err = _offboarding(repo, inventory, "--output", "json")
    said = json.loads(out)
    assert code == 0 and said["complete"] and said["pending"] == 0, out
    assert said["work_orders"][0]["confirmed"].endswith("Ana Ruiz · SIEMPRE-4411")
    assert [e["now"] for e in said["equipment"]] == ["en_almacen"]


def test_a_confirmation_pushed_without_approval_leaves_the_baja_incomplete(office):
    repo, inventory = office
    repo.baja("SSM-000001", folio=BAJA_FOLIO)
    repo.squash_merge("Baja")
    _apply(repo, inventory)
    folio = json.loads(_offboarding(repo, inventory, "--output", "json")[1])["work_orders"][0]["folio"]
    _confirm(repo, folio)
    repo.direct_push("Confirmo yo mismo")
    with Run(at_ref(repo.root), inventory, lock=True) as run:
        run.apply(run.plan())
    said = json.loads(_offboarding(repo, inventory, "--output", "json")[1])
    assert not said["work_orders"][0]["done"] and not said["complete"]


def test_only_a_baja_has_a_baja_de_servicios(office):
    repo, inventory = office
    code, _out, err = _offboarding(repo, inventory)
    assert code == 1 and "SSM-000001 (José Ñúñez O'Brien) is not a baja" in err
    code, _out, err = run_cli("--lang", "en", "--repo", str(repo.root), "offboarding", "SSM-999999", "--inventory",
                              str(inventory))
    assert code == 1 and "SSM-999999 is not declared" in err


def _record(key="SSM-000001", movement="baja", time="2026-11-21T10:00:00+00:00", status="applied", verified=True,
            kind="account", folio=BAJA_FOLIO, target="ad") -> dict:
    return {"kind": "change", "target": target, "object_kind": kind, "key": key, "label": key, "movement": movement,
            "time": time, "status": status, "verified": verified, "folio": folio,
            "attributes": [{"name": "groups", "before": ["GG-Correo", "GG-VPN"], "after": []},
                           {"name": "enabled", "before": True, "after": False}]}


def test_only_the_persons_own_removals_since_their_request_count():
    since = "2026-11-20T06:00:00+00:00"
    records = [
        _record(),
        _record(key="SSM-000002", folio="SSM/RH/2026/00999"),  # someone else's baja
        _record(key="SSM-000003"),  # someone else's, under the same request (one memo, two bajas)
        _record(time="2026-10-01T10:00:00+00:00"),  # an earlier baja, reverted since
        _record(kind="group", key="GG-Correo"),  # a container the run touched on the way
        _record(key="jnunezo@salud.lab", folio=None, kind="mailbox", target="mail"),  # their mailbox, by address
        _record(key="4401", movement="modificacion", folio="SSM/STI/2026/00501", kind="line"),  # not theirs
        _record(key="SSM-INV-1", movement="modificacion", folio="SSM/STI/2024/1", kind="computer"),  # released
    ]
    found = removals(records, {"SSM-000001", "jnunezo@salud.lab"}, {"SSM-INV-1"}, since)
    assert [(r.target, r.key) for r in found] == [("ad", "SSM-000001"), ("ad", "SSM-INV-1"),
                                                 ("mail", "jnunezo@salud.lab")]
    assert found[0].changed == ("groups: −GG-Correo, −GG-VPN", "enabled: True → False")


def test_an_object_of_theirs_with_no_baja_recorded_is_pending_and_a_shared_mailbox_counts():
    since = "2026-11-20T06:00:00+00:00"
    made = [_record(movement="alta", time="2025-01-01T10:00:00+00:00"),
            _record(key="4401", movement="alta", time="2025-01-01T10:00:00+00:00", target="sip", kind="sip-line")]
    shared = {**_record(key="urgencias@salud.lab", movement="modificacion", kind="shared-mailbox", target="mail",
                        time="2025-02-01T10:00:00+00:00"),
              "attributes": [{"name": "members", "before": ["SSM-000009"], "after": ["SSM-000001", "SSM-000009"]}]}
    left = {**shared, "time": "2026-11-21T10:00:00+00:00",
            "attributes": [{"name": "members", "before": ["SSM-000001", "SSM-000009"], "after": ["SSM-000009"]}]}
    # The AD account's baja is recorded; the registrar was out of reach (no record of 4401's);
    # the extension given to someone else later changes nothing of this baja.
    later = _record(key="4401", movement="alta", time="2026-12-01T10:00:00+00:00", target="sip", kind="sip-line")
    records = [*made, shared, _record(), left, later]
    found = {(r.target, r.key): r for r in removals(records, {"SSM-000001", "4401"}, set(), since, {"SSM-000001"})}
    assert found["ad", "SSM-000001"].done and found["mail", "urgencias@salud.lab"].done
    assert found["sip", "4401"].status == "not-removed" and not found["sip", "4401"].done
    assert not _baja(removed=tuple(found.values())).complete


def test_an_account_given_back_after_its_baja_is_open_again():
    """A verified baja, then the account enabled again (a revert applied), then a second baja
    that failed: the person has access, the baja is not done."""
    since = "2026-11-20T06:00:00+00:00"
    records = [_record(movement="alta", time="2025-01-01T10:00:00+00:00"), _record(),
               _record(movement="modificacion", time="2026-11-22T10:00:00+00:00"),
               _record(time="2026-11-23T10:00:00+00:00", status="failed", verified=False)]
    [item] = removals(records, {"SSM-000001"}, set(), since)
    assert not item.done and item.status == "failed"


def test_a_target_out_of_reach_during_the_baja_leaves_it_incomplete_until_it_is_applied(fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge("Alta")
    assert fakes.apply()[1].ok
    fakes.repo.baja("SSM-000001", folio=BAJA_FOLIO)
    fakes.repo.squash_merge("Baja")
    fakes.write_inventory(second={"unreachable": True})
    code, _out, _err = run_cli("--repo", str(fakes.repo.root), "apply", "--auto-approve", "--inventory",
                               str(fakes.inventory))
    assert code == 1  # a-first applied the baja; b-second was out of reach
    args = ("--lang", "en", "--repo", str(fakes.repo.root), "offboarding", "SSM-000001", "--inventory",
            str(fakes.inventory), "--output", "json")
    code, out, _err = run_cli(*args)
    said = {r["target"]: r for r in json.loads(out)["removed"]}
    assert code == 2 and said["a-first"]["done"] and said["b-second"]["status"] == "not-removed"
    fakes.write_inventory()
    assert fakes.apply()[1].ok
    code, out, _err = run_cli(*args)
    assert code == 0 and json.loads(out)["complete"], out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["applied", "failed", "skipped"]), st.booleans()), min_size=1, max_size=6))
def test_an_object_is_done_once_a_baja_of_it_was_applied_and_read_back(history):
    """Retried bajas: the first one verified is the item; until one is, the last one tried."""
    records = [_record(time=f"2026-11-21T10:00:{i:02d}+00:00", status=status, verified=verified)
               for i, (status, verified) in enumerate(history)]
    [item] = removals(records, {"SSM-000001"}, set(), "2026-11-20T06:00:00+00:00")
    verified = [i for i, (status, ok) in enumerate(history) if status == "applied" and ok]
    assert item.done == bool(verified)
    assert item.time == records[verified[0] if verified else -1]["time"]
    baja = _baja(removed=(item,))
    assert baja.complete == item.done and baja.pending == (0 if item.done else 1)


def _baja(**items) -> BajaDeServicios:
    fields = dict(employee_key="SSM-000001", person="José | <b>Ñúñez</b> O'Brien", title="Médico", unit=UNIT,
                  account="jnunezo", folio=BAJA_FOLIO, requested="2026-11-20", requested_by="RH",
                  justification="Baja por renuncia", approvers=(), removed=(), orders=(), equipment=(), lines=())
    return BajaDeServicios(**{**fields, **items})


def test_the_markdown_shows_hostile_values_as_text():
    order = OrderItem("siempre", "SIEMPRE", "Mesa | *ayuda*", "OT-SIEMPRE-ABC123", "2026-11-21T10:00:00+00:00",
                      "2026-11-26")
    removed = Removed("ad", "account", "SSM-000001", "[x](http://evil) | y", "baja", "2026-11-21T10:00:00+00:00",
                      "failed", False, (), error="LDAP said <no>")
    text = document.markdown(_baja(removed=(removed,), orders=(order,)))
    assert "<b>" not in text and "[x](http://evil)" not in text and "\\[x\\]" in text and "Mesa \\| \\*ayuda\\*" in text
    assert "failed: LDAP said &lt;no&gt;" in text and "Not complete: 2 of 2 items are still pending" in text
    # Every row of a table has as many cells as its heading: no value adds a column.
    for table in text.split("\n\n"):
        rows = [line for line in table.splitlines() if line.startswith("|")]
        assert len({len(re.findall(r"(?<!\\)\|", row)) for row in rows}) <= 1, table
