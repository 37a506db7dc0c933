"""The Cisco IOS driver against an SSH TEST DOUBLE of a router (tests/ios_double.py: no
emulator with ACL support installs from PyPI).  The double models `ip access-list extended`,
`show running-config` and `show ip access-lists`, and records which ACL the interface is
bound to after every configuration command: the proof that a swap never leaves it without one."""
from __future__ import annotations

import pytest
import yaml

from ios_double import IOSDouble
from test_firewall_lab import NETWORKS
from test_firewall_lab import rule as firewall_rule

# The router is a test double, but every test also applies to the sandbox's AD target in the
# lab's Samba AD DC (the router fixture builds on `sandbox`).
pytestmark = pytest.mark.lab

INTERFACE = "GigabitEthernet0/1"


def rule(name: str, **fields) -> dict:
    return firewall_rule(name, device="rtr-test", **fields)


@pytest.fixture
def router(sandbox, monkeypatch, tmp_path):
    double = IOSDouble()
    monkeypatch.setenv("RTR_TEST_PASSWORD", double.password)
    inventory = yaml.safe_load(sandbox.inventory.read_text())
    inventory["targets"]["rtr-test"] = {
        "kind": "cisco_ios", "host": "127.0.0.1", "port": double.port, "username": double.username,
        "password": {"env": "RTR_TEST_PASSWORD"}, "known_hosts": double.known_hosts(tmp_path / "known_hosts"),
        "interface": INTERFACE, "direction": "in", "acl": "RECONCILER", "audit_dir": str(sandbox.audit_dir)}
    sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))
    sandbox.repo.networks = NETWORKS
    yield sandbox, double
    double.stop()


def changes_of(plan: dict) -> list[dict]:
    return [c for c in plan["changes"] if c["target"] == "rtr-test"]


def bound(double: IOSDouble) -> str | None:
    return double.router.interfaces[INTERFACE].get("in")


def always_bound_once_bound(double: IOSDouble) -> bool:
    """From the first binding on, after every command the interface names an ACL that exists."""
    seen = False
    for state in double.router.history:
        acl, exists = state.get(INTERFACE, (None, False))
        seen = seen or acl is not None
        if seen and not (acl is not None and exists):
            return False
    return seen


def test_rules_become_an_acl_bound_to_the_interface(router):
    sandbox, double = router
    sandbox.repo.rules = {"hg": [rule("web", service="web"),
                                 rule("sin-bd", destination="servidores", service="postgres", action="deny")]}
    plan = sandbox.plan_json()
    assert [(c["kind"], c["key"]) for c in changes_of(plan)] == [
        ("firewall-rule", "web"), ("firewall-rule", "sin-bd"), ("router-acl", INTERFACE)]
    sandbox.apply()
    assert bound(double) == "RECONCILER-1"
    assert double.router.acls["RECONCILER-1"] == [
        "remark reconciler:base", "permit tcp any any established",
        "remark rule:web", "permit tcp 10.10.1.0 0.0.0.255 host 10.10.2.2 eq 80",
        "permit tcp 10.10.1.0 0.0.0.255 host 10.10.2.2 eq 443",
        "remark rule:sin-bd", "deny tcp 10.10.1.0 0.0.0.255 10.10.2.0 0.0.0.255 eq 5432",
        "remark reconciler:default", "deny ip any any"]
    sandbox.assert_converged()


def test_a_change_swaps_in_a_new_acl_without_a_window_of_exposure(router):
    sandbox, double = router
    sandbox.repo.rules = {"hg": [rule("web", service="web")]}
    sandbox.apply()
    sandbox.repo.rules["hg"][0] = rule("web", protocol="tcp", ports=[443])
    [change] = changes_of(sandbox.plan_json())
    assert change["movement"] == "modificacion"
    sandbox.apply()
    assert bound(double) == "RECONCILER-2" and set(double.router.acls) == {"RECONCILER-2"}
    assert always_bound_once_bound(double)
    commands = double.router.commands
    bind = commands.index("ip access-group RECONCILER-2 in")
    remove = commands.index("no ip access-list extended RECONCILER-1")
    assert commands.index("ip access-list extended RECONCILER-2") < bind < remove  # new, move, then delete
    sandbox.assert_converged()


def test_an_entry_added_by_hand_is_drift_and_an_expired_exception_is_removed(router):
    sandbox, double = router
    sandbox.repo.rules = {"hg": [rule("web", service="web"),
                                 rule("nube", protocol="tcp", ports=["8080-8090"], expires="2099-12-31")]}
    sandbox.apply()
    double.router.acls["RECONCILER-1"].insert(2, "permit tcp any any eq 22")  # someone opens SSH by hand
    sandbox.repo.rules["hg"][1]["expires"] = "2026-01-31"
    changes = changes_of(sandbox.plan_json())
    [acl] = [c for c in changes if c["kind"] == "router-acl"]
    assert acl["drift"] and "permit tcp any any eq 22" in acl["attributes"][0]["before"]
    [expired] = [c for c in changes if c["key"] == "nube"]
    assert expired["movement"] == "baja" and expired["reason"] == "temporary exception expired on 2026-01-31"
    sandbox.apply()
    entries = double.router.acls[bound(double)]
    assert "permit tcp any any eq 22" not in entries and "remark rule:nube" not in entries
    assert always_bound_once_bound(double)
    sandbox.assert_converged()


def test_an_unapproved_rule_never_reaches_the_router_with_an_approved_one(router):
    """As on the firewall: a rule pushed without approval stays out of the new ACL, a rule whose
    unapproved change would narrow it keeps its entries, and the approved rule goes in."""
    sandbox, double = router
    sandbox.repo.rules = {"hg": [rule("web", service="web"),
                                 rule("sin-bd", destination="servidores", service="postgres", action="deny")]}
    sandbox.apply()
    sandbox.repo.rules["hg"] = [rule("web", protocol="tcp", ports=[443]), rule("ssh", protocol="tcp", ports=[22])]
    sandbox.repo.direct_push("Sin la regla de la base de datos, web sin 80 y SSH abierto, sin revisión")
    sandbox.repo.rules["hg"].append(rule("nube", protocol="tcp", ports=[8080]))
    code, out, err = sandbox.cli("apply")
    assert code == 3, out + err
    assert bound(double) == "RECONCILER-2" and always_bound_once_bound(double)
    assert double.router.acls["RECONCILER-2"] == [
        "remark reconciler:base", "permit tcp any any established",
        "remark rule:web", "permit tcp 10.10.1.0 0.0.0.255 host 10.10.2.2 eq 80",
        "permit tcp 10.10.1.0 0.0.0.255 host 10.10.2.2 eq 443",
        "remark rule:sin-bd", "deny tcp 10.10.1.0 0.0.0.255 10.10.2.0 0.0.0.255 eq 5432",
        "remark rule:nube", "permit tcp 10.10.1.0 0.0.0.255 host 10.10.2.2 eq 8080",
        "remark reconciler:default", "deny ip any any"]
    pending = {(c["movement"], c["key"]) for c in changes_of(sandbox.plan_json()) if c["kind"] == "firewall-rule"}
    assert pending == {("modificacion", "web"), ("alta", "ssh"), ("baja", "sin-bd")}


def test_an_acl_made_by_hand_is_taken_over_in_place(router):
    """Day one: the interface is bound to an ACL made by hand.  The declared rule whose entries
    stand in it is adopted, not added beside a copy; the new generation is bound in one step and
    the hand-made ACL is left unbound for a person to remove."""
    sandbox, double = router
    web = ["permit tcp 10.10.1.0 0.0.0.255 host 10.10.2.2 eq 80", "permit tcp 10.10.1.0 0.0.0.255 host 10.10.2.2 eq 443"]
    double.router.acls["LEGADO"] = ["permit tcp any any established", "remark web", *web, "permit tcp any any eq 23",
                                    "deny ip any any"]
    double.router.interfaces[INTERFACE]["in"] = "LEGADO"
    sandbox.repo.rules = {"hg": [rule("web", service="web")]}
    changes = {(c["kind"], c["key"]): c for c in changes_of(sandbox.plan_json())}
    assert changes[("firewall-rule", "web")]["movement"] == "adopcion"
    assert "permit tcp any any eq 23" in changes[("router-acl", INTERFACE)]["attributes"][0]["before"]
    sandbox.apply()
    assert bound(double) == "RECONCILER-1" and "LEGADO" in double.router.acls
    assert double.router.acls["RECONCILER-1"] == ["remark reconciler:base", "permit tcp any any established",
                                                  "remark rule:web", *web, "remark reconciler:default", "deny ip any any"]
    sandbox.assert_converged()
