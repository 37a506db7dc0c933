"""Hostile desired-state files (issue 13): an alias bomb, links out of the repository, values
that carry a trailing newline or a whole secret.  Each is a problem naming the file, never a
hang, a crash or a leak."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from conftest import run_cli
from test_validate import PERSON, make_repo, people

SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"


def validate(root) -> tuple[int, str]:
    code, out, err = run_cli("--repo", str(root), "validate", "--inventory", "/nonexistent.yaml")
    assert "Traceback" not in out + err and "Internal error" not in err
    return code, err


def test_an_alias_bomb_is_refused_at_once_with_its_file(tmp_path):
    """452 bytes that expand to billions of values: refused before anything is expanded.
    (Run as a separate process with a time limit, so a regression fails instead of hanging.)"""
    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))})
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[i]
        bomb.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    (root / "desired_state" / "users" / "bomba.yaml").write_text("\n".join(bomb) + "\nunit: HG-CUERNAVACA\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "reconciler.cli", "--repo", str(root), "validate", "--inventory",
                           "/nonexistent.yaml"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "desired_state/users/bomba.yaml:1: anchors and aliases (&name, *name) are not accepted" in proc.stderr
    assert time.monotonic() - started < 60  # the timeout above is the bound; this names it


def test_aliases_are_refused_with_their_line(tmp_path):
    """An anchor in one entry and an alias in another would let one line change both, outside
    the lines review blames for the second."""
    first = PERSON.format(key="SSM-1", given="Ana").replace("solicitud: {", "solicitud: &sol {")
    second = PERSON.format(key="SSM-2", given="Zoé").replace("solicitud: {{folio: F-1", "solicitud: *sol #")
    second = second.split("solicitud:")[0] + "solicitud: *sol\n"
    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", first, second)})
    code, err = validate(root)
    assert code == 1 and "desired_state/users/hg.yaml:12: anchors and aliases (&name, *name) are not accepted" in err, err


def test_a_file_that_links_out_of_the_repository_is_never_read(tmp_path):
    secret = tmp_path / "id_ed25519"
    secret.write_text(SECRET)
    root = make_repo(tmp_path / "repo", {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))})
    os.symlink(secret, root / "desired_state" / "users" / "robo.yaml")
    os.symlink(secret, root / "desired_state" / "entitlements.yaml.new")
    (root / "desired_state" / "units.yaml").rename(root / "units.real")
    os.symlink(root / "units.real", root / "desired_state" / "units.yaml")  # a link, even inside: refused
    code, err = validate(root)
    assert code == 1
    assert "desired_state/users/robo.yaml: cannot read: a symbolic link" in err
    assert "desired_state/units.yaml: cannot read: a symbolic link" in err
    assert "BEGIN OPENSSH" not in err and "b3BlbnNzaC1rZXkt" not in err


def test_a_policy_that_links_out_of_the_repository_is_never_read(tmp_path):
    secret = tmp_path / "bind.pw"
    secret.write_text("contraseña-del-directorio\n")
    root = make_repo(tmp_path / "repo", {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))})
    (root / "inventory").mkdir(exist_ok=True)
    os.symlink(secret, root / "inventory" / "approvers.yaml")
    code, err = validate(root)
    assert code == 1 and "inventory/approvers.yaml: cannot read: a symbolic link" in err
    assert "contraseña-del-directorio" not in err


def test_a_trailing_newline_never_passes_a_pattern(tmp_path):
    """"SSM-000003\\n" would count as another person than SSM-000003, and split the mail
    registry's line in two."""
    text = people("HG-CUERNAVACA", PERSON.format(key="SSM-000003", given="Ana")).replace(
        "employee_key: SSM-000003", 'employee_key: "SSM-000003\\n"')
    root = make_repo(tmp_path, {"hg.yaml": text})
    code, err = validate(root)
    assert code == 1 and "people[0].employee_key: 'SSM-000003\\n' is not valid" in err


def test_a_secret_in_a_value_is_never_echoed_whole(tmp_path):
    text = people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana")).replace(
        "status: activo", "status: " + repr(SECRET * 20).replace("'", '"'))
    root = make_repo(tmp_path, {"hg.yaml": text})
    code, err = validate(root)
    assert code == 1 and "people[0].status:" in err
    line = next(line for line in err.splitlines() if "people[0].status" in line)
    assert len(line) < 300 and SECRET.splitlines()[1] not in err


def test_shapes_that_crashed_validate_are_problems_with_file_line_and_field(tmp_path):
    """Found by mutating files: each was an "Internal error" before."""
    from test_network_rules import NETWORKS, SOL

    root = make_repo(tmp_path / "a", {"hg.yaml": "people:\n" + PERSON.format(key="SSM-1", given="Ana")})
    code, err = validate(root)
    assert code == 1 and "desired_state/users/hg.yaml:1: unit: required field is missing" in err
    rule = ("rules:\n- {name: r, source: clientes, destination: expediente, action: allow, protocol: tcp, "
            f"ports: [80.0], devices: [fw-1], unit: HG-CUERNAVACA, justification: x, solicitud: {SOL}}}\n")
    for name, networks, rules, expected in [
            ("b", "networks: [clientes, servidores]\n", "rules: []\n",
             "desired_state/security_rules/networks.yaml:1: networks: expected a mapping"),
            ("c", NETWORKS, rule, "desired_state/security_rules/hg.yaml:2: rules[0].ports: 80.0 is not a port: write "
                                  "a whole number, like 80")]:
        root = make_repo(tmp_path / name, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))})
        (root / "desired_state" / "security_rules").mkdir()
        (root / "desired_state" / "security_rules" / "networks.yaml").write_text(networks, encoding="utf-8")
        (root / "desired_state" / "security_rules" / "hg.yaml").write_text(rules, encoding="utf-8")
        code, err = validate(root)
        assert code == 1 and expected in err, err


def test_a_date_no_calendar_has_is_refused(tmp_path):
    text = people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana").replace("2026-10-05", "2026-02-30"))
    code, err = validate(make_repo(tmp_path, {"hg.yaml": text}))
    assert code == 1 and "people[0].solicitud.date: '2026-02-30' is not a date on the calendar" in err
    text = people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana").replace("2026-10-05", "2028-02-29"))
    assert validate(make_repo(tmp_path / "leap", {"hg.yaml": text}))[0] == 0


def test_networks_of_slash_zero_are_any_for_the_any_to_any_rule(tmp_path):
    from test_network_rules import SOL

    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))})
    (root / "desired_state" / "security_rules").mkdir()
    (root / "desired_state" / "security_rules" / "networks.yaml").write_text(
        "networks: {todo: {cidr: 0.0.0.0/0}, tambien: {cidr: 10.10.1.7/0}}\n", encoding="utf-8")
    (root / "desired_state" / "security_rules" / "hg.yaml").write_text(
        "rules:\n- {name: r, source: todo, destination: tambien, action: allow, devices: [fw-1], unit: HG-CUERNAVACA, "
        f"justification: x, solicitud: {SOL}}}\n", encoding="utf-8")
    code, err = validate(root)
    assert code == 1 and "rules[0].source: a rule from any to any (or a network of /0) is refused" in err


def test_probe_ports_and_rule_units_are_checked(tmp_path):
    from test_network_rules import NETWORKS, SOL

    for name, extra, expected in [
            ("p0", ", probes: [{from: clientes, to: 'expediente:0', expect: allow}]",
             "rules[0].probes[0].to: port 0 is not a port (1 to 65535)"),
            ("p9", ", probes: [{from: clientes, to: 'expediente:99999', expect: allow}]",
             "rules[0].probes[0].to: port 99999 is not a port (1 to 65535)"),
            ("unit", "", "rules[0].unit: unknown unit 'NO-EXISTE'")]:
        unit = "NO-EXISTE" if name == "unit" else "HG-CUERNAVACA"
        root = make_repo(tmp_path / name, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))})
        (root / "desired_state" / "security_rules").mkdir()
        (root / "desired_state" / "security_rules" / "networks.yaml").write_text(NETWORKS, encoding="utf-8")
        (root / "desired_state" / "security_rules" / "hg.yaml").write_text(
            "rules:\n- {name: r, source: clientes, destination: expediente, action: allow, protocol: tcp, ports: [80], "
            f"devices: [fw-1], unit: {unit}, justification: x, solicitud: {SOL}{extra}}}\n", encoding="utf-8")
        code, err = validate(root)
        assert code == 1 and expected in err, err


def test_control_characters_never_reach_a_dn_a_registry_line_or_a_log(tmp_path):
    for name, old, new, field in [
            ("ansi", "title: Médico General", 'title: "Médico \\e[31mGeneral"', "people[0].title"),
            ("newline", "given_names: Ana", 'given_names: "Ana\\nMaría"', "people[0].given_names"),
            ("cr", "phone: 777 311 2210", 'phone: "777 311 2210\\r"', "people[0].phone"),
            ("nel", "direction: Dirección de Atención Médica", 'direction: "Dirección\\N"', "people[0].direction")]:
        text = people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana").replace(old, new))
        code, err = validate(make_repo(tmp_path / name, {"hg.yaml": text}))
        assert code == 1 and f"{field}: contains a control character" in err, (name, err)


def test_a_linked_desired_state_folder_is_refused_in_the_working_tree_and_in_a_commit(tmp_path):
    import git

    elsewhere = make_repo(tmp_path / "elsewhere", {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="SSM-1",
                                                                                                  given="Ana"))})
    root = tmp_path / "repo"
    root.mkdir()
    os.symlink(elsewhere / "desired_state", root / "desired_state")
    code, err = validate(root)
    assert code == 1 and "cannot read: a symbolic link" in err
    repo = git.Repo.init(root, initial_branch="main")
    repo.index.add(["desired_state"])
    repo.index.commit("desired_state como enlace")
    code, out, err = run_cli("--repo", str(root), "validate", "--ref", "main", "--inventory", "/nonexistent.yaml")
    assert code == 1 and "desired state directory not found" in err and "Internal error" not in err


def test_line_numbers_and_costs_are_checked(tmp_path):
    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))})
    (root / "desired_state" / "assets").mkdir()
    sol = "{folio: F-1, date: '2026-03-02', justification: Linea, requested_by: TI}"
    (root / "desired_state" / "assets" / "lines.yaml").write_text(
        "lines:\n"
        f"- {{number: '123456789012345', kind: extension, unit: HG-CUERNAVACA, status: activa, solicitud: {sol}}}\n"
        f"- {{number: '7773112210', kind: carrier, carrier: Telmex, master_account: MA-1, plan: Básico, "
        f"monthly_cost: .nan, unit: HG-CUERNAVACA, status: activa, solicitud: {sol}}}\n", encoding="utf-8")
    code, err = validate(root)
    assert code == 1
    assert "lines[0].number: '123456789012345' is not an extension number (3 to 6 digits)" in err
    assert "lines[1].monthly_cost: nan is not an amount" in err


def test_a_line_break_git_does_not_count_is_refused(tmp_path):
    """YAML breaks lines at U+2028 (and a lone \\r, U+0085, U+2029), Git blame does not: a
    comment holding them would make review blame one rule's lines on another's commit."""
    for name, junk in (("ls", "\u2028"), ("cr", "\r"), ("nel", "\x85")):
        text = people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))
        root = make_repo(tmp_path / name, {"hg.yaml": f"# ok{junk}#\n" + text})
        code, err = validate(root)
        assert code == 1 and "desired_state/users/hg.yaml:1: a line break Git does not count" in err, err
    crlf = people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana")).replace("\n", "\r\n")
    root = make_repo(tmp_path / "crlf", {})
    (root / "desired_state" / "users" / "hg.yaml").write_bytes(crlf.encode("utf-8"))
    assert validate(root)[0] == 0  # Windows line ends: YAML and Git count them alike


def test_a_mapping_with_keys_of_mixed_types_is_a_problem_not_a_crash(tmp_path):
    root = make_repo(tmp_path, {"hg.yaml": "unit: HG-CUERNAVACA\n1: 1\nfoo: 2\npeople: []\n"})
    code, err = validate(root)
    assert code == 1 and "unknown field" in err


def test_a_tag_never_stands_for_the_base_branch_of_a_proposal(fakes):
    inventory = fakes.inventory_in_repo()
    git_ = fakes.repo.git
    git_.create_head("solicitud", git_.heads.main.commit).checkout()
    inventory.write_text("targets: {otro: {kind: otro}}\n", encoding="utf-8")
    git_.git.add("-A")
    git_.index.commit("Mi propio inventario")
    git_.create_tag("origin/main")  # a tag named like the base branch, on the pull request's commit
    code, out, err = run_cli("--repo", str(fakes.repo.root), "plan", "--inventory", str(inventory), "--ref", "HEAD",
                             "--proposal", "origin/main")
    assert code == 1 and "--proposal: no branch 'origin/main'" in err and "tags are not accepted" in err
    code, out, err = run_cli("--repo", str(fakes.repo.root), "plan", "--inventory", str(inventory), "--ref", "HEAD",
                             "--proposal", "main")
    assert code == 2 and "this pull request changes inventory/fakes.yaml" in out, out + err
