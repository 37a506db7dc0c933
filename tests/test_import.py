"""`reconciler import` as pure functions: an existing directory sorted into declared people and
report rows, written as files that validate as they are (or name the decisions left)."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.providers.ad.existing import filetime
from reconciler.providers.found import DirectoryRead, Found
from reconciler.adoption.mapping import ImportMapping, UnitRule
from reconciler.adoption.output import report_csv, report_markdown, write_desired
from reconciler.adoption.people import (DISABLED, DISABLED_RECENTLY, DUPLICATE, INCOMPLETE, MARKED, NO_KEY, OUTSIDE, SERVICE, STALE, UNMAPPED_GROUP,
                                        import_people, split_surnames)
from reconciler.desired.load import load_desired_state
from reconciler.errors import ReconcilerError, ValidationFailed

NOW = dt.datetime(2026, 12, 2, 12, tzinfo=dt.timezone.utc)
RECENT = NOW - dt.timedelta(days=3)
HGC = "OU=Hospital General Cuernavaca,OU=Usuarios,OU=Legado,DC=salud,DC=lab"
OC = "OU=Oficinas Centrales,OU=Usuarios,OU=Legado,DC=salud,DC=lab"
GROUPS = "OU=Grupos,OU=Legado,DC=salud,DC=lab"
OTHER = "OU=Otros,OU=Legado,DC=salud,DC=lab"
MAPPING = ImportMapping(
    target=None, search_bases=("OU=Legado,DC=salud,DC=lab",),
    rules=(UnitRule("HG-CUERNAVACA", ou=HGC), UnitRule("OC-DGPE", ou=OC, attribute="department",
                                                         equals="Direccion General de Planeacion")),
    exclude=("svc.*", "adm_*"), stale_days=90, disabled_days=180,
    solicitud={"folio": "SSM/STI/2026/ADOPCION-01", "justification": "Adopción del directorio existente",
               "requested_by": "Jefatura de Infraestructura"})
BY_GROUP = {"gg-internet": "internet", "gg-siempre-usuarios": "expediente_electronico", "gg-vpn-remoto": "vpn"}


def found(dn: str, sam: str, key: str | None = None, *, enabled=True, groups=(), last_logon=RECENT, changed=RECENT,
          **attributes) -> Found:
    attrs = {"sAMAccountName": sam, "employeeID": key, "givenName": "José Ángel", "sn": "Núñez O'Brien",
             "title": "Médico General", "company": "Dirección de Atención Médica", "telephoneNumber": "777 311 2210",
             "ipPhone": "4210", "mail": None, **attributes}
    return Found(dn, attrs, enabled, tuple(groups), last_logon, changed, RECENT - dt.timedelta(days=900))


def directory(*accounts: Found) -> DirectoryRead:
    nested = {f"CN=Internet-Enfermeria,{OTHER}": (f"CN=GG-Internet,{GROUPS}",), f"CN=GG-Internet,{GROUPS}": (),
              f"CN=Impresoras-Piso2,{OTHER}": (), f"CN=GG-SIEMPRE-Usuarios,{GROUPS}": (),
              f"CN=GG-VPN-Remoto,{OTHER}": ()}  # a namesake of an entitlement's group, elsewhere
    from reconciler import dn as dnlib

    return DirectoryRead(accounts, {dnlib.key(k): v for k, v in nested.items()},
                         {dnlib.key(k): dnlib.first_value(k) for k in nested})


def test_people_are_sorted_into_units_with_their_names_kept_and_entitlements_through_nested_groups():
    ana = found(f"CN=Ana Peña,{HGC}", "ana.pena", "SSM-900001", givenName="Ana Lucía", sn="De la Cruz Ñuñez",
                groups=(f"CN=Internet-Enfermeria,{OTHER}", f"CN=Impresoras-Piso2,{OTHER}",
                        f"CN=GG-SIEMPRE-Usuarios,{GROUPS}", f"CN=GG-VPN-Remoto,{OTHER}"), mail="ana.pena@salud.lab")
    result = import_people(directory(ana), MAPPING, BY_GROUP, {"ana.pena@salud.lab": {"address": "ana.pena@salud.lab"}},
                           NOW, GROUPS)
    [draft] = result.people["HG-CUERNAVACA"]
    d = draft.data
    assert (d["given_names"], d["first_surname"], d["second_surname"]) == ("Ana Lucía", "De la Cruz", "Ñuñez")
    assert d["entitlements"] == ["expediente_electronico", "internet"]  # Internet-Enfermeria is in GG-Internet
    assert d["adopt"] == "ana.pena" and d["account"] == {"sam": "ana.pena", "cn": "Ana Peña"}
    assert d["mailbox"] == {"address": "ana.pena@salud.lab"} and d["status"] == "activo"
    assert "Impresoras-Piso2" in draft.notes[0]  # never dropped silently
    assert sorted((r.problem, r.object) for r in result.rows) == [(UNMAPPED_GROUP, "GG-VPN-Remoto"),
                                                                   (UNMAPPED_GROUP, "Impresoras-Piso2")]


def test_every_problem_is_a_row_with_a_decision_and_only_sound_accounts_are_imported():
    old = NOW - dt.timedelta(days=400)
    accounts = [
        found(f"CN=svc.backup,{HGC}", "svc.backup", "SSM-900100"),
        found(f"CN=Sin Clave,{HGC}", "sin.clave"),
        found(f"CN=Dos A,{HGC}", "dos.a", "SSM-900200"), found(f"CN=Dos B,{OC}", "dos.b", "SSM-900200"),
        found("CN=Fuera,OU=Varios,OU=Legado,DC=salud,DC=lab", "fuera.de", "SSM-900300"),
        found(f"CN=Vieja,{HGC}", "vieja.baja", "SSM-900400", enabled=False, changed=old, last_logon=old),
        found(f"CN=Dormida,{HGC}", "dormida.x", "SSM-900500", last_logon=old),
        found(f"CN=Planeacion,{OC}", "p.lopez", "SSM-900600", department="DIRECCIÓN GENERAL DE PLANEACIÓN"),
        found(f"CN=Otra Direccion,{OC}", "o.dir", "SSM-900700", department="Dirección de Administración"),
        found(f"CN=Licencia,{HGC}", "en.licencia", "SSM-900800", enabled=False),
        replace(found(f"CN=Marcada,{HGC}", "marcada.x", "SSM-900900"), managed=True),
        replace(found(f"CN=Nuestra,OU=P,DC=salud,DC=lab", "nuestra.x", "SSM-901000"), managed=True),
    ]
    result = import_people(directory(*accounts), MAPPING, BY_GROUP, {}, NOW, GROUPS, ("OU=P,DC=salud,DC=lab",))
    problems = sorted((r.problem, r.account) for r in result.rows)
    assert problems == sorted([(SERVICE, "svc.backup"), (NO_KEY, "sin.clave"), (DUPLICATE, "dos.a"),
                               (DUPLICATE, "dos.b"), (OUTSIDE, "fuera.de"), (OUTSIDE, "o.dir"),
                               (DISABLED, "vieja.baja"), (STALE, "dormida.x"),
                               (DISABLED_RECENTLY, "en.licencia"), (MARKED, "marcada.x")])
    assert all(r.decision for r in result.rows)
    imported = {d.data["adopt"]: d for ds in result.people.values() for d in ds}
    assert set(imported) == {"vieja.baja", "dormida.x", "p.lopez", "en.licencia"}  # the department matched without case or accents
    assert imported["vieja.baja"].data["status"] == "baja" and imported["p.lopez"].unit == "OC-DGPE"


def test_written_files_validate_as_they_are_and_missing_fields_are_named(repo, tmp_path):
    repo.write()
    good = found(f"CN=Núñez O'Brien\\, José,{HGC}", "jose.nunez", "SSM-900001")
    no_title = found(f"CN=Sin Puesto,{HGC}", "sin.puesto", "SSM-900002", title=None)
    result = import_people(directory(good, no_title), MAPPING, BY_GROUP, {}, NOW)
    folder = repo.root / "desired_state"
    [path] = write_desired(result, folder, "ad-legado")
    with pytest.raises(ValidationFailed) as failed:
        load_desired_state(repo.root / "desired_state")
    [problem] = failed.value.problems
    assert problem.file.endswith("hg-cuernavaca.yaml") and problem.line and problem.field == "people[1].title"
    assert [(r.problem, r.account) for r in result.rows] == [(INCOMPLETE, "sin.puesto")]  # the same decision
    assert "José" in path.read_text(encoding="utf-8") and "O'Brien" in path.read_text(encoding="utf-8")
    path.unlink()
    result = import_people(directory(good), MAPPING, BY_GROUP, {}, NOW)
    write_desired(result, folder, "ad-legado")
    state = load_desired_state(repo.root / "desired_state")
    [person] = state.people
    assert (person.explicit_cn, person.adopt, person.explicit_sam) == ("Núñez O'Brien, José", "jose.nunez", "jose.nunez")
    with pytest.raises(ReconcilerError, match="exist"):  # never overwrites
        write_desired(result, folder, "ad-legado")


def test_report_cells_never_become_spreadsheet_formulas_and_markdown_keeps_to_one_row():
    hostile = found(f"CN=x,{HGC}", "=cmd|x", description="x")
    rows = import_people(directory(hostile), MAPPING, BY_GROUP, {}, NOW).rows
    assert "'=cmd|x" in report_csv(rows)
    assert "=cmd\\|x" in report_markdown(import_people(directory(hostile), MAPPING, BY_GROUP, {}, NOW), "ad")


@given(st.lists(st.sampled_from(["de", "la", "del", "Cruz", "Núñez", "O'Brien", "San", "Martín", "y", "López"]),
                min_size=1, max_size=6))
def test_surnames_split_keeps_every_word_in_order(words):
    first, second = split_surnames(" ".join(words))
    assert " ".join(w for w in (first, second) if w) == " ".join(words)


def test_filetime_reads_lastlogontimestamp():
    assert filetime("0") is None and filetime(None) is None
    assert filetime(str(134_091_936_000_000_000)).year == 2025


def test_extensions_an_active_persons_ipphone_names_become_their_lines():
    from reconciler.adoption.people import import_lines

    ana = found(f"CN=Ana,{HGC}", "ana.pena", "SSM-900001", ipPhone="4210")
    old = found(f"CN=Vieja,{HGC}", "vieja.x", "SSM-900002", ipPhone="4211", enabled=False)
    result = import_people(directory(ana, old), MAPPING, BY_GROUP, {}, NOW)
    lines = import_lines({"4210": "registrador", "4211": "registrador", "4299": "registrador"}, result,
                         MAPPING.solicitud, "2026-12-02")
    assert [(line["number"], line["person"], line["unit"]) for line in lines] == [("4210", "SSM-900001", "HG-CUERNAVACA")]


def test_hostile_directory_values_stay_data_in_the_yaml_and_the_report(repo):
    """Group names and values typed by hand: line breaks YAML or CommonMark honour, HTML, mentions."""
    import yaml

    from reconciler.adoption.output import unit_yaml

    evil = "Impresoras\u2028adopt: Administrator\x85- employee_key: X"
    ana = found(f"CN=Ana,{HGC}", "ana.pena", "SSM-900001", title="Jefa\u2028#x: y",
                groups=(f"CN={evil},{GROUPS}",))
    result = import_people(directory(ana), MAPPING, BY_GROUP, {}, NOW)
    document = yaml.safe_load(unit_yaml("HG-CUERNAVACA", result.people["HG-CUERNAVACA"], "ad"))
    [person] = document["people"]
    assert person["adopt"] == "ana.pena" and person["title"] == "Jefa\u2028#x: y"  # a value, kept as it is
    hostile = found(f"CN=x,{HGC}", "x.y", "\r<!-- @everyone <script>")
    markdown = report_markdown(import_people(directory(hostile), MAPPING, BY_GROUP, {}, NOW), "ad")
    assert "<!--" not in markdown and "<script>" not in markdown and "@everyone" not in markdown
    assert all(line.count("|") - line.count("\\|") in (0, 6) for line in markdown.splitlines())


def test_hand_made_firewall_rules_become_drafts_that_need_a_person_and_the_rest_are_rows():
    """tests/data/nft-hand-made.json: `nft -j list ruleset` of a firewall with a hand-made table
    (two expressible rules, one `ct state` rule) beside the reconciler's own (its base rule, a
    tagged rule, and an untagged rule someone added by hand)."""
    from pathlib import Path

    from reconciler.adoption.firewall import draft
    from reconciler.providers.nftables.ruleset import hand_made_rules
    from reconciler.desired.security import SecurityPolicy

    text = (Path(__file__).parent / "data" / "nft-hand-made.json").read_text(encoding="utf-8")
    found = hand_made_rules(text, "reconciler")
    assert [(f.where.split()[1], f.rule is not None) for f in found] == [
        ("legado", True), ("legado", True), ("legado", False), ("reconciler", True)]
    security = SecurityPolicy({"clientes-hgc": "10.10.1.0/24"}, {"expediente": "10.10.2.2"}, ())
    first = draft(found[0], "fw-lab", security, MAPPING.solicitud, "2026-12-02")
    assert {k: first[k] for k in ("source", "destination", "protocol", "ports", "action", "devices")} == {
        "source": "clientes-hgc", "destination": "expediente", "protocol": "tcp", "ports": [443],
        "action": "allow", "devices": ["fw-lab"]}
    assert not {"name", "unit", "justification"} & set(first)  # only a person can say those
    second = draft(found[1], "fw-lab", security, MAPPING.solicitud, "2026-12-02")
    assert second["source"] == "10.10.9.0/24" and second["ports"] == [53, 5353] and second["destination"] == "any"
    assert draft(found[3], "fw-lab", security, MAPPING.solicitud, "2026-12-02")["action"] == "deny"


def test_computers_become_equipment_drafts_with_their_holder_and_never_a_domain_controller():
    from reconciler.providers.found import FoundComputer
    from reconciler.adoption.people import COMPUTER_DRAFT, COMPUTER_OUTSIDE, import_computers

    ana = found(f"CN=Ana,{HGC}", "ana.pena", "SSM-900001")
    computers = (FoundComputer(f"CN=HGC-PC01,{HGC}", "HGC-PC01", "Urgencias", ana.dn, True, False, False),
                 FoundComputer("CN=DC1,OU=Domain Controllers,DC=salud,DC=lab", "DC1", None, None, True, True, False),
                 FoundComputer("CN=VARIOS-01,OU=Varios,DC=salud,DC=lab", "VARIOS-01", None, None, True, False, False))
    read = directory(ana)
    read = DirectoryRead(read.accounts, read.group_parents, read.group_names, computers)
    result = import_people(read, MAPPING, BY_GROUP, {}, NOW, GROUPS)
    [item] = import_computers(read, MAPPING, result, "2026-12-02")
    assert {k: item[k] for k in ("hostname", "unit", "person", "location", "status")} == {
        "hostname": "HGC-PC01", "unit": "HG-CUERNAVACA", "person": "SSM-900001", "location": "Urgencias",
        "status": "en_uso"}
    assert "serial" not in item and "inventory_number" not in item  # only the resguardo says
    assert sorted((r.problem, r.account) for r in result.rows) == [(COMPUTER_DRAFT, "HGC-PC01"),
                                                                   (COMPUTER_OUTSIDE, "VARIOS-01")]


def test_two_accounts_of_one_name_mapped_into_one_unit_get_distinct_names():
    a = found(f"CN=Ana Peña,{HGC}", "ana.pena", "SSM-900001")
    b = found(f"CN=Ana Peña,OU=Enfermeria,{HGC}", "ana.pena2", "SSM-900002")
    [first, second] = import_people(directory(a, b), MAPPING, BY_GROUP, {}, NOW).people["HG-CUERNAVACA"]
    assert first.data["account"]["cn"] == "Ana Peña" and second.data["account"]["cn"] == "Ana Peña (ana.pena2)"
    assert "Ana Peña (ana.pena2)" in second.notes[-1]


def test_hand_made_ios_acl_entries_become_drafts_and_the_reconcilers_own_acls_are_skipped():
    from reconciler.providers.cisco_ios.acl import hand_made_acl_entries
    from reconciler.providers.cisco_ios.acl import parse_running_config

    config = "\n".join([
        "interface GigabitEthernet0/1", " ip access-group RECONCILER-3 in",
        "ip access-list extended RECONCILER-3", " remark rule:hgc-web", " permit tcp 10.10.1.0 0.0.0.255 host 10.10.2.2 eq 443",
        "ip access-list extended VIEJA", " remark puesta por el proveedor", " permit tcp 10.10.9.0 0.0.0.255 any eq 22",
        " deny udp any any range 1000 2000", " permit icmp any any echo"])
    state = parse_running_config(config, "GigabitEthernet0/1", "in", "RECONCILER")
    found = hand_made_acl_entries(state.lists, state.own)
    assert [f.where for f in found] == ["ip access-list extended VIEJA #2", "ip access-list extended VIEJA #3",
                                        "ip access-list extended VIEJA #4"]
    assert [(f.rule.source, f.rule.protocol, f.rule.ports, f.rule.action) for f in found[:2]] == [
        ("10.10.9.0/24", "tcp", ((22, 22),), "allow"), (None, "udp", ((1000, 2000),), "deny")]
    assert found[2].rule is None  # icmp echo: not something a declared rule says


def test_import_never_writes_through_a_symlink_left_where_a_unit_file_goes(repo, tmp_path):
    repo.write()
    users = repo.root / "desired_state" / "users"
    users.mkdir(parents=True, exist_ok=True)
    victim = tmp_path / "victim"
    victim.write_text("intact", encoding="utf-8")
    (users / "hg-cuernavaca.yaml").symlink_to(victim)
    result = import_people(directory(found(f"CN=Ana,{HGC}", "ana.pena", "SSM-900001")), MAPPING, BY_GROUP, {}, NOW)
    with pytest.raises(ReconcilerError, match="exist"):
        write_desired(result, repo.root / "desired_state", "ad")
    assert victim.read_text(encoding="utf-8") == "intact"


def test_a_mailbox_or_an_extension_several_accounts_carry_is_a_row_and_declared_for_none(repo):
    """Two accounts whose mail is one hand-made mailbox, two active accounts with one ipPhone: an
    address is one mailbox's and a line has one holder, so neither is declared, the report asks
    whose it is, and what was written still validates; a blank surname is a field to fill in."""
    from reconciler.adoption.people import EXTENSION_SHARED, MAILBOX_SHARED, import_lines

    repo.write()
    ana = found(f"CN=Ana,{HGC}", "ana.pena", "SSM-900001", mail="urgencias@salud.lab", ipPhone="4210")
    luis = found(f"CN=Luis,{HGC}", "luis.mora", "SSM-900002", mail="Urgencias@salud.lab", ipPhone="4210")
    blank = found(f"CN=Sin Apellido,{HGC}", "sin.apellido", "SSM-900003", sn="   ", ipPhone=None,
                  givenName="  Inés ")
    boxes = {"urgencias@salud.lab": {"address": "urgencias@salud.lab"}}
    result = import_people(directory(ana, luis, blank), MAPPING, BY_GROUP, boxes, NOW)
    result.lines = import_lines({"4210": "registrador", "4212": "registrador"}, result, MAPPING.solicitud, "2026-12-02")
    rows = {(r.problem, r.object): r for r in result.rows}
    shared = rows[(MAILBOX_SHARED, "urgencias@salud.lab")]
    assert shared.account == "ana.pena, luis.mora" and shared.decision
    assert rows[(EXTENSION_SHARED, "4210")].key == "SSM-900001, SSM-900002"
    assert rows[(INCOMPLETE, f"CN=Sin Apellido,{HGC}")].detail == "the directory lacks: first_surname, second_surname"
    drafts = {d.data["employee_key"]: d for d in result.people["HG-CUERNAVACA"]}
    assert not any("mailbox" in d.data for d in drafts.values())
    assert drafts["SSM-900003"].data["given_names"] == "Inés"
    assert result.lines == []
    write_desired(result, repo.root / "desired_state", "ad-legado")
    with pytest.raises(ValidationFailed) as failed:
        load_desired_state(repo.root / "desired_state")
    assert [p.field for p in failed.value.problems] == ["people[2].first_surname", "people[2].second_surname"]


def test_padded_mail_and_ipphone_are_the_owners_not_orphans():
    from reconciler.adoption.people import owners_missing

    ana = found(f"CN=Ana,{HGC}", "ana.pena", "SSM-900001", mail=" ana.pena@salud.lab ", ipPhone=" 4210 ")
    result = import_people(directory(ana), MAPPING, BY_GROUP, {"ana.pena@salud.lab": {"address": "ana.pena@salud.lab"}},
                           NOW)
    assert result.people["HG-CUERNAVACA"][0].data["mailbox"] == {"address": "ana.pena@salud.lab"}
    assert owners_missing({"ana.pena@salud.lab": "registro"}, {"4210": "registrador"}, result, directory(ana)) == []
