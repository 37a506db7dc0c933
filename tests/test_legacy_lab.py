"""Day one on a directory made by hand: ci/lab/legacy-up plants in the lab's Samba AD DC what
years of hand work leave (OUs out of any layout, keys missing or doubled, stale and disabled
accounts, nested groups, service accounts, hand-made mailboxes and extensions); then
`reconciler import` -> validate -> an approved pull request -> apply adopts every account
(no account created, no password set, each keeps its objectGUID and pwdLastSet) -> the next
plan is empty; and ordinary modificaciones and bajas work on the adopted accounts."""
from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest
import yaml
from ldap3 import SUBTREE

from pathlib import Path

from conftest import BASE_DN, LAB_DIR, LAB_SCRIPTS, SERVICE_ACCOUNTS, DesiredRepo, run_cli

pytestmark = pytest.mark.lab

REPO_ROOT = Path(__file__).resolve().parent.parent

LEGACY = f"OU=Heredado,{BASE_DN}"
MANAGED = f"OU=Reconciler,{LEGACY}"
PROBLEMS = ("no_employee_key", "duplicate_key", "disabled", "disabled_recently", "stale", "outside_managed_ous", "service", "incomplete",
            "mailbox_without_owner", "extension_without_owner", "unmapped_group", "computer",
            "computer_outside_managed_ous")


@pytest.fixture(scope="module")
def legacy(lab_up):
    """The legacy directory, planted once for this module; its manifest of planted problems."""
    # 400 accounts: every planted problem, and enough sound ones (ci/lab/legado-up plants 2,000 by default)
    proc = subprocess.run([str(LAB_SCRIPTS / "legado-up"), "--people", "400"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    yield json.loads((LAB_DIR / "legacy" / "manifest.json").read_text(encoding="utf-8"))
    # the lab is left as the demo expects it
    subprocess.run([str(LAB_SCRIPTS / "legado-up"), "--remove"], capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def bed(legacy, tmp_path_factory):
    """A desired-state repository with the example units, the legacy lab's entitlements and no people, an
    inventory whose AD target manages OUs of its own under OU=Heredado and uses the legacy
    groups OU, and the import mapping of the legacy lab."""
    root = tmp_path_factory.mktemp("legado")
    repo = DesiredRepo(root / "repo")
    repo.units = yaml.safe_load((REPO_ROOT / "desired_state" / "units.yaml").read_text(encoding="utf-8"))["units"]
    repo.entitlements = yaml.safe_load((LAB_DIR / "legacy" / "entitlements.yaml")  # legado-up's: its own groups
                                       .read_text(encoding="utf-8"))["entitlements"]
    repo.write()
    inventory = root / "inventory.yaml"
    lab = str(LAB_DIR)
    inventory.write_text(yaml.safe_dump({"delivery": {"mode": "clear-text-file-lab-only"}, "targets": {
        "ad-legado": {
            "kind": "active_directory", "host": "127.0.0.1", "port": 636, "base_dn": BASE_DN,
            "upn_suffix": "salud.lab",
            "ous": {"people": f"OU=Personal,{MANAGED}", "groups": f"OU=Grupos,{LEGACY}", "bajas": f"OU=Bajas,{MANAGED}"},
            **SERVICE_ACCOUNTS,  # delegated on OU=Heredado by ci/lab/legado-up
            "tls": {"ca_file": f"{lab}/ca.pem"}, "max_bajas": 25, "adopt_from": [f"OU=Usuarios,{LEGACY}"],
            "credentials_dir": str(root / "credentials"), "audit_dir": str(root / "audit")},
        "mail-legado": {
            "kind": "mail", "domains": ["salud.lab"],
            "doveadm": {"url": "https://127.0.0.1:8080/doveadm/v1", "ca_file": f"{lab}/ca.pem",
                        "api_key": {"file": f"{lab}/mail/doveadm.key"}},
            "registry": f"{lab}/legacy/mail/users", "maps": {n: str(root / f"maps-{n}") for n in
                                                             ("recipients", "aliases", "denied")},
            "mail_root": str(root / "vmail"), "audit_dir": str(root / "audit"),
            "credentials_dir": str(root / "credentials")},
        "fw-legado": {
            "kind": "nftables", "host": "192.168.250.2", "user": "root", "ssh_key": f"{lab}/net/id_ed25519",
            "known_hosts": f"{lab}/net/known_hosts", "table": "reconciler", "hook": "forward",
            "default_policy": "drop", "audit_dir": str(root / "audit"), "credentials_dir": str(root / "credentials")},
        "phone-legado": {
            "kind": "sip", "domain": "salud.lab", "database": f"{lab}/legacy/phone/kamailio.db",
            "rpc_url": "http://127.0.0.1:5071/RPC", "audit_dir": str(root / "audit"),
            "credentials_dir": str(root / "credentials")},
    }}, allow_unicode=True), encoding="utf-8")
    mapping = REPO_ROOT / "inventory" / "legado-import.yaml"
    return repo, inventory, mapping


def _import(bed, *args: str):
    repo, inventory, mapping = bed
    return run_cli("--repo", str(repo.root), "import", "--inventory", str(inventory), "--mapping", str(mapping), *args)


def _run(bed, command: str, *args: str):
    """plan or apply on the legacy AD target and registrar (the mail target is only read by import)."""
    repo, inventory, _ = bed
    return run_cli("--repo", str(repo.root), command, "--inventory", str(inventory), "--target", "ad-legado",
                   "--target", "phone-legado", *args)


def _planted(legacy: dict, problem: str) -> set[str]:
    return {item.get("dn") or item.get("address") or item.get("extension") or item.get("group")
            for item in legacy["problems"][problem]}


def test_the_report_lists_every_planted_problem_and_nothing_else(legacy, bed):
    code, out, err = _import(bed, "--report-only", "--output", "json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    for problem in PROBLEMS:
        found = {r["object"] for r in rows if r["problem"] == problem}
        assert found == _planted(legacy, problem), problem
    for problem in ("firewall_rule", "firewall_rule_unreadable"):  # only the hand-made table's rules
        found = [r["object"] for r in rows if r["problem"] == problem]
        assert len(found) == len(legacy["problems"][problem]) and all("inet legado reglas-viejas" in f for f in found)
    assert all(r["decision"] for r in rows)


def _secrets() -> dict[str, str]:
    with sqlite3.connect(LAB_DIR / "legacy" / "phone" / "kamailio.db") as db:
        return dict(db.execute("SELECT username, ha1 FROM subscriber"))


def _account(conn, sam: str) -> dict:
    conn.search(BASE_DN, f"(sAMAccountName={sam})", SUBTREE, attributes=["objectGUID", "pwdLastSet", "title",
                                                                          "userAccountControl", "adminDescription"])
    [entry] = [e for e in conn.response if e.get("type") == "searchResEntry"]
    single = {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in entry["attributes"].items()}
    return {**single, "dn": entry["dn"]}


def test_import_validate_approve_apply_adopts_everything_and_converges(legacy, bed, lab_conn):
    repo, inventory, mapping = bed
    folder = repo.root / "desired_state" / "users"
    code, out, err = _import(bed, "--output", "json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    incomplete = {r["account"] for r in rows if r["problem"] == "incomplete"}
    # validate names exactly the decisions the report left (fields the directory lacks)
    code, vout, verr = run_cli("--repo", str(repo.root), "validate", "--inventory", str(inventory))
    named = vout + verr
    assert code != 0  # the incomplete people, and the firewall drafts nobody has explained yet
    drafts = repo.root / "desired_state" / "security_rules" / "importado-fw-legado.yaml"
    assert "importado-fw-legado.yaml" in named and "name" in named and "justification" in named
    assert len(yaml.safe_load(drafts.read_text(encoding="utf-8"))["rules"]) == 2
    # the person fills them in, as the report asks; the files are the import's own otherwise
    for path in folder.glob("*.yaml"):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for p in document["people"]:
            for field, value in (("title", "Por definir"), ("direction", "Por definir"), ("phone", "777 000 0000")):
                if not p.get(field) or (field == "phone" and not str(p[field])[:1].isdigit()):
                    p[field] = value
        repo.users[document["unit"]] = document["people"]
    assert incomplete <= {p["adopt"] for people in repo.users.values() for p in people}
    repo.lines = yaml.safe_load((repo.root / "desired_state" / "assets" / "lines.yaml").read_text(encoding="utf-8"))["lines"]
    secrets = _secrets()
    assert repo.lines and {line["number"] for line in repo.lines} <= set(secrets)
    assert named  # validate said something either way
    people = [p for ps in repo.users.values() for p in ps]
    before = {p["adopt"]: _account(lab_conn, p["adopt"]) for p in people}
    repo.squash_merge("Adopción del directorio existente")
    code, out, err = _run(bed, "plan", "--output", "json")
    plan = json.loads(out)
    accounts = [c for c in plan["changes"] if c["kind"] == "account"]
    assert {c["movement"] for c in accounts} == {"adopcion"} and len(accounts) == len(people)
    lines = [c for c in plan["changes"] if c["kind"] == "sip-line"]
    assert {c["movement"] for c in lines} == {"adopcion"} and len(lines) == len(repo.lines)
    assert plan["conflicts"] == []
    code, out, err = _run(bed, "apply", "--auto-approve")
    assert code == 1 and "--allow-mass-adoption" in err  # many adoptions at once are a mass change
    code, out, err = _run(bed, "apply", "--auto-approve",
                             "--allow-mass-adoption")
    assert code == 0, out + err
    credentials = repo.root.parent / "credentials"
    assert not credentials.exists() or not any(credentials.iterdir())  # not one password was made
    for sam, was in before.items():
        now = _account(lab_conn, sam)
        assert now["objectGUID"] == was["objectGUID"] and now["pwdLastSet"] == was["pwdLastSet"], sam
        assert now["adminDescription"].startswith("reconciler applied=")
    assert _secrets() == secrets  # every extension kept its secret
    code, out, err = _run(bed, "plan")
    assert code == 0 and "No changes" in out, out + err
    # an ordinary modificación and a baja on adopted accounts
    active = [p for p in people if p["status"] == "activo"]
    changed, leaving = active[0], active[1]
    changed["title"] = "Jefa de Enfermeras"
    repo.baja(leaving["employee_key"])
    repo.squash_merge("Modificación y baja")
    code, out, err = _run(bed, "apply", "--auto-approve")
    assert code == 0, out + err
    assert _account(lab_conn, changed["adopt"])["title"] == "Jefa de Enfermeras"
    gone = _account(lab_conn, leaving["adopt"])
    assert int(gone["userAccountControl"]) & 2 and f"OU=Bajas,{MANAGED}".lower() in gone["dn"].lower()
    code, out, err = _run(bed, "plan")
    assert code == 0 and "No changes" in out, out + err
