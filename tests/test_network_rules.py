"""Security rules without devices: validation with file, line and field; the nftables and IOS
renderings (hypothesis: what the reconciler writes reads back as the same rule); the
rule-level diffs."""
from __future__ import annotations

import textwrap

from hypothesis import given
from hypothesis import strategies as st

from conftest import run_cli
from reconciler.desired.security import ANY
from reconciler.plan import Movement
from reconciler.providers.cisco_ios.acl import acl, diff_router, parse_running_config
from reconciler.providers.nftables.ruleset import BASE_EXPR, BASE_TAG, Chain, diff_device, expected_expr, rule_from_expr
from reconciler.providers.network.rules import DeviceRules, FirewallRule
from reconciler.config.inventory import SecretSource
from reconciler.providers.cisco_ios.target import CiscoTarget
from test_validate import make_repo, people, PERSON

NETWORKS = """\
networks:
  clientes: {cidr: 10.10.1.0/24}
  servidores: {cidr: 10.10.2.0/24}
hosts:
  expediente: {address: 10.10.2.2}
services:
  web: {protocol: tcp, ports: [80, 443]}
"""
SOL = "{folio: F-1, date: 2026-10-05, justification: Medida, requested_by: TI}"


def rules_file(*rules: str) -> str:
    return "rules:\n" + "".join(textwrap.indent(r, "  ").replace("  - ", "- ", 1) for r in rules)


def rule(name: str, extra: str = "", source: str = "clientes", destination: str = "expediente") -> str:
    return (f"- name: {name}\n  source: {source}\n  destination: {destination}\n  action: allow\n"
            f"  devices: [fw-1]\n  unit: HG-CUERNAVACA\n  justification: Acceso\n  solicitud: {SOL}\n{extra}")


def validate_rules(tmp_path, text: str) -> list[str]:
    root = make_repo(tmp_path, {"hg.yaml": people("HG-CUERNAVACA", PERSON.format(key="SSM-1", given="Ana"))})
    (root / "desired_state" / "security_rules").mkdir()
    (root / "desired_state" / "security_rules" / "networks.yaml").write_text(NETWORKS, encoding="utf-8")
    (root / "desired_state" / "security_rules" / "hg.yaml").write_text(text, encoding="utf-8")
    code, out, err = run_cli("--repo", str(root), "validate", "--inventory", "/nonexistent.yaml")
    assert "Traceback" not in out + err
    return [line for line in err.splitlines() if line.startswith("desired_state/")]


def test_rule_problems_name_file_line_and_field(tmp_path):
    text = ("rules:\n"
            + rule("web", "  service: web\n")
            + rule("web-443", "  protocol: tcp\n  ports: [443]\n")  # inside web: never matches
            + rule("web", "  service: web\n", destination="servidores")
            + rule("todo", "", source="any", destination="any")
            + rule("raro", "  service: ftp\n", source="internet")
            + rule("mixto", "  service: web\n  ports: [22]\n"))
    problems = validate_rules(tmp_path, text)
    assert problems == [
        "desired_state/security_rules/hg.yaml:11: rules[1].name: rule web-443 can never match on fw-1: the earlier "
        "rule web (desired_state/security_rules/hg.yaml:2) already matches all its traffic",
        "desired_state/security_rules/hg.yaml:21: rules[2].name: rule name 'web' is already used at "
        "desired_state/security_rules/hg.yaml:2",
        "desired_state/security_rules/hg.yaml:31: rules[3].source: a rule from any to any (or a network of /0) is "
        "refused unless marked deliberate: true",
        "desired_state/security_rules/hg.yaml:39: rules[4].source: unknown network or host 'internet' (declared in "
        "desired_state/security_rules/networks.yaml)",
        "desired_state/security_rules/hg.yaml:46: rules[4].service: unknown service 'ftp' (declared in "
        "desired_state/security_rules/networks.yaml)",
        "desired_state/security_rules/hg.yaml:55: rules[5].service: give a service, or protocol and ports, not both",
    ]


def test_a_deliberate_any_to_any_rule_is_accepted(tmp_path):
    assert validate_rules(tmp_path, "rules:\n" + rule("todo", "  deliberate: true\n", source="any",
                                                      destination="any")) == []


addresses = st.sampled_from([None, "10.10.1.0/24", "10.10.2.2", "192.168.0.0/16", "10.0.0.1"])
ports = st.lists(st.tuples(st.integers(1, 65535), st.integers(0, 50)).map(lambda t: (t[0], min(65535, t[0] + t[1]))),
                 max_size=3, unique=True).map(lambda p: tuple(sorted(set(p))))
rules = st.builds(lambda s, d, proto, p, action: FirewallRule("r", s, d, proto, p if proto != ANY else (), action),
                  addresses, addresses, st.sampled_from(["tcp", "udp", ANY]), ports, st.sampled_from(["allow", "deny"]))


@given(rules)
def test_the_nftables_expression_reads_back_as_the_same_rule(rule):
    assert rule_from_expr("r", expected_expr(rule)) == rule


def chain(*rules: FirewallRule) -> Chain:
    return Chain(True, "drop", "forward", ((BASE_TAG, BASE_EXPR),) + tuple((r.tag, expected_expr(r)) for r in rules))


WEB = FirewallRule("web", "10.10.1.0/24", "10.10.2.2", "tcp", ((80, 80), (443, 443)), "allow")
DB = FirewallRule("db", "10.10.1.0/24", "10.10.2.0/24", "tcp", ((5432, 5432),), "deny")


def test_nftables_diff_by_rule():
    assert diff_device("fw", DeviceRules((WEB, DB)), chain(WEB, DB), "drop", "forward") == []
    wider = FirewallRule("web", "10.10.1.0/24", "10.10.2.2", "tcp", ((80, 80), (443, 443), (8080, 8080)), "allow")
    changes = diff_device("fw", DeviceRules((wider,), {"db": ("2026-01-31", DB)}), chain(WEB, DB), "drop", "forward")
    assert [(c.movement, c.key, c.reason) for c in changes] == [
        (Movement.MODIFICACION, "web", ""), (Movement.BAJA, "db", "temporary exception expired on 2026-01-31")]
    hand = Chain(True, "drop", "forward", chain(WEB).rules + ((None, [{"accept": None}]),))
    [drift] = diff_device("fw", DeviceRules((WEB,)), hand, "drop", "forward")
    assert drift.kind == "firewall-chain" and drift.drift
    [order] = diff_device("fw", DeviceRules((DB, WEB)), chain(WEB, DB), "drop", "forward")
    assert order.kind == "rule-order" and [a.name for a in order.attributes] == ["order"]


def test_ios_acl_reads_back_with_nothing_to_do():
    target = CiscoTarget(name="rtr", host="127.0.0.1", username="u", known_hosts="/nonexistent", password=SecretSource(env="X"), interface="Gi0/1",
                         acl="RC")
    config = "\n".join(["interface Gi0/1", " ip access-group RC-3 in", "!", "ip access-list extended RC-3"]
                       + [f" {e}" for e in acl((WEB, DB), "drop")] + ["!", "end"])
    state = parse_running_config(config, "Gi0/1", "in", "RC")
    assert state.bound == "RC-3" and state.own == ("RC-3",)
    assert diff_router(target, DeviceRules((WEB, DB)), state, "drop") == []
    assert [c.key for c in diff_router(target, DeviceRules((WEB,)), state, "drop")] == ["db"]


@given(rules)
def test_an_ios_rule_reads_back_from_its_entries_as_the_same_rule(rule):
    """What keeps a rule as it is on a router, while its change awaits approval."""
    from reconciler.providers.cisco_ios.acl import entries, rule_from_entries

    assert rule_from_entries(rule.name, entries(rule)) == rule


def test_ios_entries_the_reconciler_never_writes_are_not_read_as_a_rule():
    from reconciler.providers.cisco_ios.acl import rule_from_entries

    assert rule_from_entries("r", ["permit tcp any any eq 80 log"]) is None
    assert rule_from_entries("r", ["permit tcp any any eq 80", "deny tcp any any eq 81"]) is None
    assert rule_from_entries("r", ["permit icmp any any"]) is None


# -- only approved rules reach a device ------------------------------------------------------

def fw(name: str, port: int, action: str = "allow") -> FirewallRule:
    return FirewallRule(name, "10.10.1.0/24", "10.10.2.2", "tcp", ((port, port),), action)


def test_an_unapproved_rule_never_rides_on_an_approved_one():
    from reconciler.providers.network.rules import loadable_rules

    web, db, ssh, old_deny = fw("web", 443), fw("db", 5432), fw("ssh", 22), fw("bloqueo", 23, "deny")
    on_device = {"web": fw("web", 80), "bloqueo": old_deny}  # web changes 80 -> 443; bloqueo is no longer declared
    wanted = DeviceRules((web, db, ssh))
    everything = loadable_rules(wanted, on_device, ["bloqueo", "web"], frozenset())
    assert everything == (web, db, ssh)
    # db's alta and bloqueo's baja approved; web's change and ssh's alta not: web stays on 80, ssh stays off.
    assert loadable_rules(wanted, on_device, ["bloqueo", "web"], frozenset({"web", "ssh"})) == (fw("web", 80), db)
    # bloqueo's baja not approved: the deny stays where it was, before web.
    assert loadable_rules(wanted, on_device, ["bloqueo", "web"], frozenset({"bloqueo"})) == (old_deny, web, db, ssh)


@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), unique=True),
       st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), unique=True),
       st.sets(st.sampled_from(["a", "b", "c", "d", "e"])))
def test_what_is_loaded_is_approved_or_already_there(wanted_names, device_names, pending):
    """Whatever is pending: every loaded rule is either declared with no pending change, or
    exactly what the device holds now; nothing pending is added, nothing approved is lost."""
    from reconciler.providers.network.rules import loadable_rules

    declared = {n: fw(n, 1000 + i) for i, n in enumerate(wanted_names)}
    current = {n: fw(n, 2000 + i) for i, n in enumerate(device_names)}
    loaded = loadable_rules(DeviceRules(tuple(declared.values())), current, device_names, frozenset(pending))
    names = [r.name for r in loaded]
    assert len(names) == len(set(names))
    for r in loaded:
        assert (r.name not in pending and declared.get(r.name) == r) or current.get(r.name) == r
    for n in declared:
        if n not in pending:
            assert declared[n] in loaded
    for n in pending:  # a pending change never moves a rule off the device, nor onto it
        assert (current[n] in loaded) if n in current else n not in names


def test_a_new_order_that_is_not_approved_keeps_the_devices():
    from reconciler.providers.network.rules import kept_order

    a, b, c, new = fw("a", 1), fw("b", 2), fw("c", 3), fw("nuevo", 4)
    assert kept_order((c, a, new, b), ["a", "b", "c"]) == (a, new, b, c)
    assert kept_order((new, b, a), ["a", "b"]) == (new, a, b)
