"""Security rules on the lab network: an nftables firewall in the rc-fw namespace, reached over
SSH with pyinfra, between a client namespace and a server namespace with real routing.  Every
claim is checked with real TCP connections from rc-client to rc-server."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from conftest import LAB_DIR
from reconciler.config.inventory import load_inventory
from reconciler.plan import Change, Movement
from reconciler.providers.contract import TargetPlan
from reconciler.providers.network.device import DeviceBasis
from reconciler.providers.nftables.provider import NftablesProvider
from reconciler.providers.network.rules import DeviceRules, FirewallRule

pytestmark = pytest.mark.lab  # every test: nftables in rc-fw over SSH, probes from rc-client, a sandbox

NET = LAB_DIR / "net"
SERVER = "10.10.2.2"
SOLICITUD = {"folio": "SSM/STI/2026/00601", "date": "2026-02-10", "justification": "Medida de seguridad",
             "requested_by": "Departamento de Tecnologías de la Información"}
NETWORKS = {
    "networks": {"clientes-hgc": {"cidr": "10.10.1.0/24"}, "servidores": {"cidr": "10.10.2.0/24"}},
    "hosts": {"expediente": {"address": SERVER}},
    "services": {"web": {"protocol": "tcp", "ports": [80, 443]}, "postgres": {"protocol": "tcp", "ports": [5432]}},
}


def nft(*args: str) -> str:
    return subprocess.run(["ip", "netns", "exec", "rc-fw", "nft", *args], check=True, capture_output=True,
                          text=True).stdout


def reaches(port: int) -> bool:
    """A real TCP connection from the client network to the server, through the firewall."""
    code = ("import socket,sys\ntry:\n socket.create_connection(('%s', %d), timeout=1.5).close()\n"
            "except ConnectionRefusedError: pass\nexcept OSError: sys.exit(3)") % (SERVER, port)
    return subprocess.run(["ip", "netns", "exec", "rc-client", sys.executable, "-c", code]).returncode == 0


def rule(name: str, device: str = "fw-test", **fields) -> dict:
    base = {"name": name, "source": "clientes-hgc", "destination": "expediente", "action": "allow",
            "devices": [device], "unit": "HG-CUERNAVACA", "justification": "Acceso al expediente",
            "solicitud": SOLICITUD}
    base.update(fields)
    return base


@pytest.fixture
def fw(sandbox):
    if "rctest" in nft("list", "tables"):
        nft("delete", "table", "inet", "rctest")
    inventory = yaml.safe_load(sandbox.inventory.read_text())
    inventory["targets"]["fw-test"] = {
        "kind": "nftables", "host": "192.168.250.2", "user": "root", "ssh_key": str(NET / "id_ed25519"),
        "known_hosts": str(NET / "known_hosts"), "table": "rctest", "hook": "forward", "default_policy": "drop",
        "probe_points": {"clientes-hgc": {"netns": "rc-client"}}, "audit_dir": str(sandbox.audit_dir)}
    sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    sandbox.repo.networks = NETWORKS
    yield sandbox
    if "rctest" in nft("list", "tables"):
        nft("delete", "table", "inet", "rctest")


def firewall_changes(plan: dict) -> list[dict]:
    return [c for c in plan["changes"] if c["target"] == "fw-test"]


def probe_records(sandbox) -> list[dict]:
    path = sandbox.audit_dir / "fw-test.audit.jsonl"
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == "probe"]


def test_an_allow_rule_lets_traffic_through_a_deny_rule_blocks_it_and_probes_prove_it(fw):
    fw.repo.rules = {"hg": [
        rule("web", service="web", probes=[{"from": "clientes-hgc", "to": "expediente:443", "expect": "allow"},
                                           {"from": "clientes-hgc", "to": "expediente:5432", "expect": "deny"}]),
        rule("sin-base-de-datos", destination="servidores", service="postgres", action="deny")]}
    plan = fw.plan_json()
    assert [(c["kind"], c["movement"], c["key"]) for c in firewall_changes(plan)] == [
        ("firewall-rule", "alta", "web"), ("firewall-rule", "alta", "sin-base-de-datos"),
        ("firewall-chain", "alta", "forward")]
    out = fw.apply()
    assert "✓ probe fw-test web: clientes-hgc -> expediente:443 expect allow: allow" in out
    assert reaches(443) and reaches(80) and not reaches(5432) and not reaches(22)  # 22: the default drop
    assert [(p["probe"], p["passed"]) for p in probe_records(fw)] == [
        ("clientes-hgc -> expediente:443 expect allow", True), ("clientes-hgc -> expediente:5432 expect deny", True)]
    assert 'comment "rule:web"' in nft("list", "table", "inet", "rctest")
    fw.assert_converged()


def test_modifying_a_rule_changes_what_gets_through(fw):
    fw.repo.rules = {"hg": [rule("web", service="web")]}
    fw.apply()
    assert reaches(443) and not reaches(8080)
    fw.repo.rules["hg"][0] = rule("web", protocol="tcp", ports=[8080])
    [change] = firewall_changes(fw.plan_json())
    assert change["movement"] == "modificacion"
    assert {"name": "ports", "before": "{ 80, 443 }", "after": "8080"} in change["attributes"]
    fw.apply()
    assert reaches(8080) and not reaches(443)
    fw.assert_converged()


def test_a_hand_made_change_is_drift_and_is_corrected(fw):
    fw.repo.rules = {"hg": [rule("web", service="web")]}
    fw.apply()
    nft("add", "rule", "inet", "rctest", "forward", "tcp", "dport", "22", "accept")  # someone opens SSH by hand
    handle = next(line.rsplit("# handle ", 1)[1] for line in nft("-a", "list", "table", "inet", "rctest").splitlines()
                  if 'comment "rule:web"' in line)
    nft("replace", "rule", "inet", "rctest", "forward", "handle", handle, "ip", "saddr", "10.10.1.0/24", "tcp", "dport",
        "{ 80, 443, 5432 }", "accept", "comment", '"rule:web"')  # and widens the declared rule, keeping its tag
    assert reaches(22) and reaches(5432)
    changes = firewall_changes(fw.plan_json())
    [chain] = [c for c in changes if c["kind"] == "firewall-chain"]
    assert chain["drift"] and chain["attributes"][0]["name"] == "rules made by hand"
    [web] = [c for c in changes if c["key"] == "web"]
    assert {"name": "destination", "before": "any", "after": SERVER} in web["attributes"]
    fw.apply()
    assert not reaches(22) and not reaches(5432) and reaches(443)
    fw.assert_converged()


def test_a_ruleset_nft_refuses_never_replaces_the_working_one(fw):
    fw.repo.rules = {"hg": [rule("web", service="web")]}
    fw.apply()
    before = nft("list", "table", "inet", "rctest")
    target = load_inventory(fw.inventory)["fw-test"]
    # Validation never lets a port over 65535 through; the provider is handed one directly, to
    # show what nft's own check (nft -c -f) does with a ruleset it refuses.
    broken = FirewallRule("roto", "10.10.1.0/24", SERVER, "tcp", ((70000, 70000),), "allow")
    planned = TargetPlan("fw-test", basis=DeviceBasis(DeviceRules((broken,)), None))
    with NftablesProvider(target) as provider:
        [outcome] = provider.apply(planned, [Change(Movement.ALTA, "fw-test", "firewall-rule", "roto", "roto")], None)
    assert outcome.status == "failed" and "nft refused the ruleset, the old rules stay" in outcome.error
    assert nft("list", "table", "inet", "rctest") == before
    assert reaches(443)


def test_an_expired_exception_is_removed(fw):
    fw.repo.rules = {"hg": [rule("web", service="web"),
                            rule("nube", protocol="tcp", ports=["8080-8090"], expires="2099-12-31")]}
    fw.apply()
    assert reaches(8080)
    fw.repo.rules["hg"][1]["expires"] = "2026-01-31"
    [change] = firewall_changes(fw.plan_json())
    assert change["movement"] == "baja" and change["reason"] == "temporary exception expired on 2026-01-31"
    fw.apply()
    assert not reaches(8080) and reaches(443)
    fw.assert_converged()


def test_a_failed_probe_fails_the_run_and_is_recorded(fw):
    fw.repo.rules = {"hg": [rule("web", service="web", probes=[
        {"from": "clientes-hgc", "to": "expediente:5432", "expect": "allow"}])]}  # the rule does not allow 5432
    code, out, err = fw.cli("apply")
    assert code == 1 and "1 probe failed" in out
    [record] = probe_records(fw)
    assert record["observed"] == "deny" and record["passed"] is False


def test_probe_proves_the_rules_again_without_changing_anything(fw):
    fw.repo.rules = {"hg": [rule("web", service="web", probes=[
        {"from": "clientes-hgc", "to": "expediente:443", "expect": "allow"}])]}
    fw.apply()
    before = nft("list", "table", "inet", "rctest")
    code, out, _ = fw.cli("probe", land=False)
    assert code == 0 and "✓ probe fw-test web: clientes-hgc -> expediente:443 expect allow: allow" in out
    nft("flush", "chain", "inet", "rctest", "forward")  # someone empties the firewall's rules
    code, out, _ = fw.cli("probe", land=False)
    assert code == 1 and "1 probe, 1 failed." in out  # the policy drops everything now
    assert nft("list", "table", "inet", "rctest") != before  # probe changed nothing back: apply does


def test_an_unapproved_rule_never_reaches_the_firewall_with_an_approved_one(fw):
    """A direct push opens the database and narrows web; an approved pull request then opens
    8080.  The apply loads the approved rule only: the database stays closed, web keeps its
    approved form, the pushed changes are skipped in the trail and still planned afterwards,
    and no probe is run for a rule that is not on the device."""
    fw.repo.rules = {"hg": [rule("web", service="web")]}
    fw.apply()
    fw.repo.rules["hg"][0] = rule("web", protocol="tcp", ports=[443])
    fw.repo.rules["hg"].append(rule("db", service="postgres",
                                    probes=[{"from": "clientes-hgc", "to": "expediente:5432", "expect": "allow"}]))
    fw.repo.direct_push("Base de datos abierta y web sin 80, sin revisión")
    fw.repo.rules["hg"].append(rule("nube", protocol="tcp", ports=[8080]))
    code, out, err = fw.cli("apply")  # lands the pull request that adds nube, then applies
    assert code == 3, out + err
    assert reaches(8080) and reaches(443) and reaches(80) and not reaches(5432)
    assert "probe fw-test db" not in out
    records = [json.loads(line) for line in (fw.audit_dir / "fw-test.audit.jsonl").read_text().splitlines()]
    skipped = {r["key"] for r in records if r["kind"] == "change" and r.get("status") == "skipped"}
    assert skipped == {"db", "web"}
    pending = {(c["movement"], c["key"]) for c in firewall_changes(fw.plan_json()) if c["kind"] == "firewall-rule"}
    assert pending == {("alta", "db"), ("modificacion", "web")}


def test_an_approved_removal_takes_the_rule_off_and_an_unapproved_one_does_not(fw):
    """A removed rule has no declaration left: its baja is judged by the commit that removed
    it, as a change to the file it was removed from."""
    fw.repo.rules = {"hg": [rule("web", service="web"), rule("db", service="postgres")]}
    fw.apply()
    assert reaches(5432)
    fw.repo.rules["hg"] = [rule("web", service="web")]
    fw.repo.direct_push("Quito la regla de la base de datos, sin revisión")
    code, out, err = fw.cli("apply", land=False)
    assert code == 3 and reaches(5432), out + err
    fw.repo.rules["hg"] = [rule("web", service="web"), rule("db", service="postgres")]
    fw.repo.squash_merge("Restituyo la regla")  # nothing to do: it never left the firewall
    fw.repo.rules["hg"] = [rule("web", service="web")]
    fw.repo.squash_merge("Quito la regla de la base de datos")
    code, out, err = fw.cli("apply", land=False)
    assert code == 0 and not reaches(5432) and reaches(443), out + err
    fw.assert_converged()


def test_an_unapproved_reorder_never_reaches_the_firewall(fw):
    """Moving an allow before a deny opens what the deny shut: the new order is a change of
    its own, and without approval the firewall keeps its order."""
    fw.repo.rules = {"hg": [rule("bloqueo", protocol="tcp", ports=[22, 5432], action="deny"),
                            rule("red", destination="servidores", service="postgres")]}
    fw.apply()
    assert not reaches(5432)
    fw.repo.rules["hg"].reverse()
    fw.repo.direct_push("Reordeno, sin revisión")
    fw.repo.rules["hg"].append(rule("nube", protocol="tcp", ports=[8080]))
    code, out, err = fw.cli("apply")
    assert code == 3 and reaches(8080) and not reaches(5432), out + err
    assert "order of the rules on chain forward" in out


HAND_MADE_TABLE = """\
table inet rctest {
  set admins { type ipv4_addr; elements = { 10.10.1.9 } }
  chain input { type filter hook input priority filter; policy accept; }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ip saddr 10.10.1.0/24 ip daddr 10.10.2.2 tcp dport { 80, 443 } counter accept comment "web del expediente"
    tcp dport 22 accept comment "ssh de emergencia"
  }
}
"""


def load_by_hand(text: str) -> None:
    subprocess.run(["ip", "netns", "exec", "rc-fw", "nft", "-f", "-"], input=text, text=True, check=True)


def test_a_firewall_made_by_hand_is_taken_over_in_place(fw):
    """Day one: the firewall's own table, its chain made by hand.  The declared rule that matches
    a hand-made one is adopted (no alta, no moment without it: a connection keeps passing), the
    rule nobody declared is removed as the plan shows, and the table's other chain and set stay."""
    load_by_hand(HAND_MADE_TABLE)
    assert reaches(443) and reaches(22)
    fw.repo.rules = {"hg": [rule("web", service="web")]}
    plan = fw.plan_json()
    changes = {(c["kind"], c["key"]): c for c in firewall_changes(plan)}
    assert changes[("firewall-rule", "web")]["movement"] == "adopcion"
    assert {"name": "tag", "before": "web del expediente", "after": "rule:web"} in changes[("firewall-rule", "web")]["attributes"]
    assert changes[("firewall-chain", "forward")]["attributes"] == [
        {"name": "rules made by hand", "before": ["ssh de emergencia"], "after": []}]
    assert not [c for c in firewall_changes(plan) if c["movement"] == "alta"]
    assert any("also holds chain input, set admins" in w for w in plan["warnings"])
    fw.apply()
    table = nft("list", "table", "inet", "rctest")
    assert 'comment "rule:web"' in table and "chain input" in table and "10.10.1.9" in table
    assert reaches(443) and not reaches(22)
    fw.assert_converged()


def test_an_adoption_not_approved_keeps_the_hand_made_rule(fw):
    """Pushed without review, the adoption waits: an approved rule is added, and the hand-made
    rule goes back as it was, with its own comment and no tag."""
    fw.repo.rules = {"hg": [rule("nube", protocol="tcp", ports=[8080])]}
    fw.apply()
    nft("add", "rule", "inet", "rctest", "forward", "ip", "saddr", "10.10.1.0/24", "ip", "daddr", SERVER, "tcp", "dport",
        "{ 80, 443 }", "counter", "accept", "comment", '"web del expediente"')  # made by hand after the first apply
    fw.repo.rules["hg"].insert(0, rule("web", service="web"))
    fw.repo.direct_push("Adopto la regla web, sin revisión")
    fw.repo.rules["hg"].append(rule("otra", protocol="tcp", ports=[8081]))
    code, out, err = fw.cli("apply")
    assert code == 3, out + err
    table = nft("list", "table", "inet", "rctest")
    assert 'comment "web del expediente"' in table and "rule:web" not in table and 'comment "rule:otra"' in table
    assert reaches(443) and reaches(8080) and reaches(8081)
    pending = {(c["movement"], c["key"]) for c in firewall_changes(fw.plan_json()) if c["kind"] == "firewall-rule"}
    assert pending == {("adopcion", "web")}
