"""Firewall rules made by hand, taken over in place: a declared rule that matches a hand-made
one exactly is an adopción (its tag written, nothing that passes changes), never an alta beside
a copy that is removed.  Pure: the nftables and IOS diffs, and what apply would load when an
adoption is not approved (the hand-made rule stays as it was).  Against real devices:
tests/test_firewall_lab.py and tests/test_cisco_ios.py."""
from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from reconciler.config.inventory import SecretSource
from reconciler.plan import Change, Movement
from reconciler.providers.cisco_ios import acl as ios
from reconciler.providers.cisco_ios.provider import CiscoProvider
from reconciler.providers.cisco_ios.target import CiscoTarget
from reconciler.providers.contract import TargetPlan
from reconciler.providers.network.device import DeviceBasis
from reconciler.providers.network.rules import DeviceRules, FirewallRule
from reconciler.providers.nftables import ruleset as nft
from reconciler.providers.nftables.provider import NftablesProvider
from reconciler.providers.nftables.target import NftablesTarget

WEB = FirewallRule("web", "10.10.1.0/24", "10.10.2.2", "tcp", ((80, 80), (443, 443)), "allow")
DB = FirewallRule("sin-bd", "10.10.1.0/24", "10.10.2.0/24", "tcp", ((5432, 5432),), "deny")
SSH = FirewallRule("ssh", "10.10.1.7", "10.10.2.2", "tcp", ((22, 22),), "allow")
COUNTER = {"counter": {"packets": 12, "bytes": 3400}}
ESTABLISHED = [*nft.BASE_EXPR[:1], COUNTER, {"accept": None}]


def chain(*rules, policy="accept") -> nft.Chain:
    return nft.Chain(True, policy, "forward", tuple(rules), ("chain input", "set admins"))


def by_kind(changes: list[Change]) -> dict:
    return {(c.kind, c.key): c for c in changes}


def nft_plan(wanted: DeviceRules, actual: nft.Chain) -> list[Change]:
    return nft.diff_device("fw", wanted, actual, "drop", "forward", "filter")


def test_a_hand_made_nft_rule_a_declaration_matches_is_adopted_not_added():
    hand = chain((None, ESTABLISHED),  # the institution's own "established" rule: serves as the base
                 ("web del expediente", [*nft.expected_expr(WEB)[:-1], COUNTER, {"accept": None}]),
                 (None, nft.expected_expr(SSH)),
                 ("telnet", [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                                        "right": 23}}, {"accept": None}]))
    changes = by_kind(nft_plan(DeviceRules((WEB, DB)), hand))
    web = changes[("firewall-rule", "web")]
    assert web.movement is Movement.ADOPCION and web.desired == WEB
    assert [(a.name, a.before, a.after) for a in web.attributes] == [
        ("tag", "web del expediente", "rule:web"), ("counter", "present", None)]
    assert changes[("firewall-rule", "sin-bd")].movement is Movement.ALTA
    [chain_change] = [c for c in changes.values() if c.kind == nft.CHAIN_KIND]
    attributes = {str(a.name): a for a in chain_change.attributes}
    # ssh is declared nowhere and telnet matches nothing: both are removed, and shown.
    assert attributes["rules made by hand"].before == ("(no comment)", "telnet")
    assert (attributes["default policy"].before, attributes["default policy"].after) == ("accept", "drop")
    assert "established connections" not in attributes
    assert not any(c.movement is Movement.ALTA and c.key == "web" for c in changes.values())


def test_a_rule_adopted_and_applied_plans_nothing():
    """What the chain holds after apply (the declared rule with its tag) reads as no change."""
    applied = chain((nft.BASE_TAG, nft.BASE_EXPR), (WEB.tag, nft.expected_expr(WEB)), policy="drop")
    assert nft_plan(DeviceRules((WEB,)), applied) == []


def test_one_hand_made_rule_is_adopted_once_and_an_order_change_is_shown():
    twin = FirewallRule("web-2", WEB.source, WEB.destination, WEB.protocol, WEB.ports, WEB.action)
    hand = chain((nft.BASE_TAG, nft.BASE_EXPR), (None, nft.expected_expr(DB)), (None, nft.expected_expr(WEB)), policy="drop")
    changes = nft_plan(DeviceRules((WEB, twin, DB)), hand)
    moves = {c.key: c.movement for c in changes if c.kind == "firewall-rule"}
    assert moves == {"web": Movement.ADOPCION, "web-2": Movement.ALTA, "sin-bd": Movement.ADOPCION}
    [order] = [c for c in changes if c.kind == "rule-order"]
    assert order.attributes[0].before == ("sin-bd", "web") and order.attributes[0].after == ("web", "sin-bd")


def nft_provider() -> NftablesProvider:
    return NftablesProvider(NftablesTarget.build("fw", {"host": "192.0.2.1", "ssh_key": "/nonexistent",
                                                        "table": "filter", "audit_dir": "/nonexistent"}))


def test_an_adoption_not_approved_leaves_the_hand_made_rule_as_it_was():
    """The chain is refilled for an approved alta; the hand-made rule whose adoption is not
    approved goes back as it was found, with its own comment and no tag."""
    hand = chain((nft.BASE_TAG, nft.BASE_EXPR), ("web del expediente", nft.expected_expr(WEB)), policy="drop")
    wanted = DeviceRules((WEB, DB))
    provider = nft_provider()
    changes = nft_plan(wanted, hand)
    planned = TargetPlan("fw", changes, basis=DeviceBasis(wanted, None, hand))
    loaded = provider.loadable(planned, [c for c in changes if c.key == "sin-bd"]).rules
    assert [r.name for r in loaded] == ["web", "sin-bd"] and loaded[0].awaiting_adoption
    text = nft.ruleset("filter", "forward", "drop", loaded)
    assert 'tcp dport { 80, 443 } accept comment "web del expediente"' in text and "rule:web" not in text
    assert 'comment "rule:sin-bd"' in text
    # Approved, it is written with its tag.
    assert 'comment "rule:web"' in nft.ruleset("filter", "forward", "drop", provider.loadable(planned, changes).rules)


def test_a_comment_nft_would_not_read_back_is_not_written_back():
    rule = nft.adopted_rule(WEB, chain(('x" ; flush ruleset ; "', nft.expected_expr(WEB))), 0)
    assert "flush" not in nft.rule_text(rule) and "comment" not in nft.rule_text(rule)


def test_the_chain_is_refilled_and_the_rest_of_the_table_left_alone():
    text = nft.ruleset("filter", "forward", "drop", (WEB,))
    assert "delete table" not in text and "flush chain inet filter forward" in text
    assert text.index("add chain") < text.index("flush chain") < text.index('comment "rule:web"')


rules = st.builds(lambda i, port, action, counted: (FirewallRule(f"r{i}", "10.10.1.0/24", f"10.10.2.{i}", "tcp",
                                                                 ((port, port),), action), counted),
                  st.integers(1, 200), st.integers(1, 65535), st.sampled_from(["allow", "deny"]), st.booleans())


@given(st.lists(rules, max_size=8, unique_by=lambda r: r[0].name), st.randoms(use_true_random=False),
       st.lists(st.integers(1, 65535), max_size=3))
def test_every_declared_rule_found_by_hand_is_adopted_and_nothing_else(found, rng, junk_ports):
    """Whatever the order, counters and extra hand-made rules: each declared rule the chain holds
    by hand is an adopción, no declared rule is an alta, and exactly the extra rules are listed
    to be removed."""
    wanted = DeviceRules(tuple(r for r, _ in found))
    held = [(None, [*nft.expected_expr(r)[:-1], COUNTER, nft.expected_expr(r)[-1]] if counted else nft.expected_expr(r))
            for r, counted in found]
    junk = [(f"j{p}", [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": p}},
                       {"drop": None}]) for p in junk_ports]
    hand = held + junk
    rng.shuffle(hand)
    changes = nft_plan(wanted, chain((nft.BASE_TAG, nft.BASE_EXPR), *copy.deepcopy(hand), policy="drop"))
    moves = {c.key: c.movement for c in changes if c.kind == "firewall-rule"}
    assert moves == {r.name: Movement.ADOPCION for r, _ in found}
    removed = [c for c in changes if c.kind == nft.CHAIN_KIND]
    assert (removed[0].attributes[0].before if removed else ()) == tuple(c for c, _ in hand if c)


# -- Cisco IOS -------------------------------------------------------------------------------

TARGET = CiscoTarget.build("rtr", {"host": "192.0.2.1", "username": "u", "password": {"env": "NOPE"},
                                   "known_hosts": "/nonexistent",
                                   "interface": "Gi0/1", "direction": "in", "acl": "RECONCILER",
                                   "audit_dir": "/nonexistent"})


def router(lines: list[str]) -> ios.RouterState:
    return ios.RouterState("LEGADO", {"LEGADO": lines}, ())


def test_hand_made_acl_entries_a_declaration_matches_are_adopted():
    hand = router(["permit tcp any any established", "remark acceso web",
                   *ios.entries(WEB), "permit tcp any any eq 23", *ios.entries(DB), "deny ip any any"])
    changes = by_kind(ios.diff_router(TARGET, DeviceRules((DB, WEB, SSH)), hand, "drop"))
    assert {k: c.movement for k, c in changes.items() if k[0] == "firewall-rule"} == {
        ("firewall-rule", "web"): Movement.ADOPCION, ("firewall-rule", "sin-bd"): Movement.ADOPCION,
        ("firewall-rule", "ssh"): Movement.ALTA}
    outside = changes[("router-acl", "Gi0/1")].attributes[0]
    assert outside.before == ("permit tcp any any established", "remark acceso web", "permit tcp any any eq 23",
                              "deny ip any any")
    assert changes[("rule-order", "Gi0/1")].attributes[0].before == ("web", "sin-bd")


def test_entries_split_by_another_are_not_one_rule():
    entries = ios.entries(WEB)
    hand = router([entries[0], "permit tcp any any eq 23", entries[1]])
    changes = by_kind(ios.diff_router(TARGET, DeviceRules((WEB,)), hand, "drop"))
    assert changes[("firewall-rule", "web")].movement is Movement.ALTA


def test_an_ios_adoption_not_approved_keeps_the_entries_without_the_rules_remark():
    hand = router([*ios.acl((), "drop")[:2], *ios.entries(WEB), *ios.acl((), "drop")[2:]])
    wanted = DeviceRules((WEB, DB))
    changes = ios.diff_router(TARGET, wanted, hand, "drop")
    planned = TargetPlan("rtr", changes, basis=DeviceBasis(wanted, None, hand))
    loaded = CiscoProvider(TARGET).loadable(planned, [c for c in changes if c.key == "sin-bd"]).rules
    lines = ios.acl(loaded, "drop")
    assert ios.AWAITING in lines and "remark rule:web" not in lines and "remark rule:sin-bd" in lines
    # Read back, the kept entries are still an adoption waiting, and nothing else is asked of them.
    again = by_kind(ios.diff_router(TARGET, wanted, ios.RouterState("RECONCILER-1", {"RECONCILER-1": lines}, ()), "drop"))
    assert again[("firewall-rule", "web")].movement is Movement.ADOPCION
    assert ("router-acl", "Gi0/1") not in again and ("firewall-rule", "sin-bd") not in again


# -- what the takeover removes is approved with the adoptions ---------------------------------

def test_removing_the_hand_made_rules_beside_an_adoption_waits_for_the_adoptions_approval():
    """A hand-made deny before a hand-made allow: adopting the allow and removing the deny opens
    what the deny shut.  So the removal carries the adopted rules' declarations (never approved
    by implication), and while the adoption is not approved nothing changes on the device."""
    from dataclasses import replace

    import pytest

    from reconciler.desired.model import Source
    from reconciler.errors import ReconcilerError

    ssh = replace(FirewallRule("ssh", None, None, "tcp", ((22, 22),), "allow"),
                  origins=(Source("desired_state/security_rules/hg.yaml", 3),))
    guests = [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                         "right": {"prefix": {"addr": "10.99.0.0", "len": 16}}}}, *nft.expected_expr(ssh)[:-1],
              {"drop": None}]
    hand = chain((nft.BASE_TAG, nft.BASE_EXPR), ("block guests", guests), ("ssh", nft.expected_expr(ssh)), policy="drop")
    wanted = DeviceRules((ssh, DB))
    changes = nft_plan(wanted, hand)
    [takeover] = [c for c in changes if c.kind == nft.CHAIN_KIND]
    # judged by every landing in the rules' folder (a deleted declaration included), then the adopted rule's
    assert takeover.origins == (Source("desired_state/security_rules/", None, ("landings",)), *ssh.origins)
    assert nft_provider().implied_approvals(changes) == {}
    planned = TargetPlan("fw", changes, basis=DeviceBasis(wanted, None, hand))
    with pytest.raises(ReconcilerError, match="await approval; nothing was changed"):
        nft_provider().loadable(planned, [c for c in changes if c.key == "sin-bd"])  # the alta alone approved
    assert [r.name for r in nft_provider().loadable(planned, changes).rules] == ["ssh", "sin-bd"]
    # Approved, but held back this run (another target out of reach): refilled as any chain change.
    from reconciler.approval.policy import Approval

    approved = TargetPlan("fw", [replace(c, approval=Approval(True, "")) for c in changes], basis=planned.basis)
    assert [r.name for r in nft_provider().loadable(approved, [approved.changes[-1]]).rules] == ["ssh"]
    # Without an adoption too: approving an alta beside it never removes a hand-made deny by
    # implication (it opens what the deny shut); removing hand-made accepts only closes, and is.
    alone = nft_plan(DeviceRules((DB,)), hand)
    [chain_change] = [c for c in alone if c.kind == nft.CHAIN_KIND]
    assert chain_change.origins == (Source("desired_state/security_rules/", None, ("landings",)),)
    assert nft_provider().implied_approvals(alone) == {}
    accepts = chain((nft.BASE_TAG, nft.BASE_EXPR), ("ssh", nft.expected_expr(ssh)), policy="drop")
    closing_only = nft_plan(DeviceRules((DB,)), accepts)
    assert {c.kind: i for i, c in enumerate(closing_only)}[nft.CHAIN_KIND] in nft_provider().implied_approvals(
        closing_only)


def test_a_router_acls_hand_made_deny_is_never_removed_by_implication():
    hand = router(["permit tcp any any established", "deny tcp 10.99.0.0 0.0.255.255 any eq 22",
                   "permit tcp any any eq 22", "deny ip any any"])
    changes = ios.diff_router(TARGET, DeviceRules((DB,)), hand, "drop")
    [acl_change] = [c for c in changes if c.kind == ios.ACL_KIND]
    assert acl_change.origins and CiscoProvider(TARGET).implied_approvals(changes) == {}
    permits = router(["permit tcp any any established", "permit tcp any any eq 22", "deny ip any any"])
    changes = ios.diff_router(TARGET, DeviceRules((DB,)), permits, "drop")
    assert CiscoProvider(TARGET).implied_approvals(changes)  # removing permits only closes


def test_a_chain_nft_cannot_refill_is_a_conflict_and_nothing_is_planned():
    provider = nft_provider()
    odd = nft.Chain(True, "accept", "forward", (), form=("filter", "forward", 10))
    regular = nft.Chain(True, None, None, ((None, nft.expected_expr(WEB)),), form=(None, None, None))
    for actual in (odd, regular):
        [conflict] = provider.blocked(actual)
        assert "nothing is planned for this firewall" in conflict.message
    assert provider.blocked(nft.Chain(True, "drop", "forward", (), form=("filter", "forward", 0))) == []
    assert provider.blocked(nft.Chain(False)) == []


def test_a_chain_tagged_as_the_reconcilers_but_not_the_inventorys_is_named_never_deleted():
    """A comment is no proof of ownership (a person may write `rule: ssh` on a rule of their
    own, and two targets may share a table): another chain holding tagged rules is said in the
    plan and left as it is."""
    import json

    listing = {"nftables": [
        {"chain": {"family": "inet", "table": "filter", "name": "input", "type": "filter", "hook": "input", "prio": 0,
                   "policy": "drop"}},
        {"rule": {"family": "inet", "table": "filter", "chain": "input", "comment": "rule:web",
                  "expr": nft.expected_expr(WEB)}},
        {"chain": {"family": "inet", "table": "filter", "name": "forward", "type": "filter", "hook": "forward",
                   "prio": 0, "policy": "drop"}},
        {"chain": {"family": "inet", "table": "filter", "name": "mine", "type": "filter", "hook": "output", "prio": 0,
                   "policy": "accept"}}]}
    actual = nft.parse_table(json.dumps(listing), "forward")
    assert actual.stale == ("input",) and actual.others == ("chain mine",)
    [change] = [c for c in nft_plan(DeviceRules(()), actual) if c.kind == nft.CHAIN_KIND]
    assert [str(a.name) for a in change.attributes] == ["established connections"]  # the base rule, nothing of input
    notes = [str(n) for n in nft_provider().notes(actual)]
    assert any("chain input" in n and "left as it is" in n for n in notes)
    assert "input" not in nft.ruleset("filter", "forward", "drop", ()) and "delete" not in nft.ruleset(
        "filter", "forward", "drop", ())


def test_the_reconcilers_own_default_entry_is_never_adopted():
    deny_all = FirewallRule("todo", None, None, "any", (), "deny")
    own = ios.RouterState("RECONCILER-1", {"RECONCILER-1": ios.acl((), "drop")}, ("RECONCILER-1",))
    changes = by_kind(ios.diff_router(TARGET, DeviceRules((deny_all,)), own, "drop"))
    assert changes[("firewall-rule", "todo")].movement is Movement.ALTA
    # A hand-made ACL's own last deny is the institution's, and is adopted.
    hand = router(["permit tcp any any established", "deny ip any any"])
    assert by_kind(ios.diff_router(TARGET, DeviceRules((deny_all,)), hand, "drop"))[
        ("firewall-rule", "todo")].movement is Movement.ADOPCION
