"""nftables firewalls: the reconciler owns one `inet` table per device.

The table has one base chain on the inventory's hook (forward, by default) whose policy is the
inventory's `default_policy`; its first rule lets established connections through, then come
the declared rules in order.  Every rule carries its tag as a comment (`rule:<name>`).  The
chain may be one that exists already (an institution's own `inet filter forward`): its other
chains and sets are left as they are, and a hand-made rule a declaration matches exactly is
adopted in place (its tag written) instead of being removed and added again.

Read back with `nft -j list table`: each rule's JSON expression is compared with the one the
declaration implies (`expected_expr`), so a rule edited by hand is seen even when its comment
is kept, and a rule without a tag is drift.  Apply writes the chain's commands to a file,
checks them with `nft -c -f` (a refused ruleset changes nothing), then loads them with `nft -f`:
the chain is flushed and refilled in one transaction, so there is never a moment without rules.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

from reconciler.i18n import lazy
from reconciler.plan import AttributeChange, Change, Movement
from reconciler.providers.found import HandMade
from reconciler.providers.network.rules import (
    TAG,
    DeviceRules,
    FirewallRule,
    adoption_change,
    awaiting_adoption,
    order_change,
    rule_attributes,
    rule_change,
    takeover_origins,
)

BASE_TAG = "reconciler:base"
CHAIN_KIND = "firewall-chain"


@dataclass(frozen=True)
class Chain:
    """What the device's table holds, as read."""

    exists: bool
    policy: str | None = None
    hook: str | None = None
    rules: tuple[tuple[str | None, list], ...] = ()  # (comment, expr) in order, the base rule included
    others: tuple[str, ...] = ()  # the table's other chains and sets ("chain input"), left alone
    # Other base chains holding rules tagged as the reconciler's (left by an earlier hook, or
    # another target's chain in the same table): named in the plan, never deleted, since a
    # comment is no proof of ownership.
    stale: tuple[str, ...] = ()
    form: tuple | None = None  # the chain's (type, hook, priority) when it exists; None: no such chain

    def unusable(self, hook: str) -> bool:
        """A chain of that name that cannot be refilled as the reconciler's base chain (another
        type, hook or priority, or a regular chain): nft would refuse every apply."""
        return self.form is not None and self.form != ("filter", hook, 0)

    def tagged(self) -> dict[str, list]:
        return {c[len(TAG):]: e for c, e in self.rules if c and c.startswith(TAG)}

    def order(self) -> list[str]:
        return [c[len(TAG):] for c, _ in self.rules if c and c.startswith(TAG)]


# -- rendering ----------------------------------------------------------------------------

def _address_text(address: str) -> str:
    net = ipaddress.ip_network(address, strict=False)
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def rule_text(rule: FirewallRule) -> str:
    parts = []
    if rule.source:
        parts.append(f"ip saddr {_address_text(rule.source)}")  # not for people: nft syntax
    if rule.destination:
        parts.append(f"ip daddr {_address_text(rule.destination)}")  # not for people
    if rule.protocol != "any":
        parts.append(f"{rule.protocol} dport {rule.ports_text()}" if rule.ports else f"meta l4proto {rule.protocol}")  # not for people
    parts.append("accept" if rule.action == "allow" else "drop")
    comment = _kept_comment(rule.found_comment) if rule.awaiting_adoption else rule.tag
    if comment:
        parts.append(f'comment "{comment}"')
    return " ".join(parts)


def _kept_comment(comment: str | None) -> str | None:
    """A hand-made rule's comment, written back only when nft reads it back unchanged (plain
    printable text, no quote or backslash, within nft's 128 bytes); otherwise none."""
    if comment and len(comment.encode("utf-8")) <= 128 and comment.isprintable() and not set(comment) & set('"\\'):
        return comment
    return None


def ruleset(table: str, hook: str, policy: str, rules: tuple[FirewallRule, ...]) -> str:
    """The chain refilled in one transaction: declared (with its policy) if it does not exist,
    flushed, given the base rule and the declared ones.  The table's other chains and sets are
    never touched, so the reconciler can own one chain of a table that holds others."""
    head = f"inet {table} {hook}"
    lines = [f"add table inet {table}",  # not for people: the nft ruleset
             f"add chain {head} {{ type filter hook {hook} priority filter; policy {policy}; }}",  # not for people
             f"flush chain {head}",  # not for people
             f'add rule {head} ct state established,related accept comment "{BASE_TAG}"']  # not for people
    lines += [f"add rule {head} {rule_text(r)}" for r in rules]  # not for people
    return "\n".join(lines) + "\n"


def _address_expr(address: str):
    net = ipaddress.ip_network(address, strict=False)
    return str(net.network_address) if net.prefixlen == 32 else {"prefix": {"addr": str(net.network_address),
                                                                           "len": net.prefixlen}}


def _ports_expr(ports: tuple[tuple[int, int], ...]):
    items = [a if a == b else {"range": [a, b]} for a, b in ports]
    return items[0] if len(items) == 1 else {"set": items}


def expected_expr(rule: FirewallRule) -> list:
    """The JSON expression `nft -j` prints for the rule."""
    expr = []
    for field_name, value in (("saddr", rule.source), ("daddr", rule.destination)):
        if value:
            expr.append({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": field_name}},
                                   "right": _address_expr(value)}})
    if rule.protocol != "any":
        if rule.ports:
            expr.append({"match": {"op": "==", "left": {"payload": {"protocol": rule.protocol, "field": "dport"}},
                                   "right": _ports_expr(rule.ports)}})
        else:
            expr.append({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": rule.protocol}})
    expr.append({"accept": None} if rule.action == "allow" else {"drop": None})
    return expr


BASE_EXPR = [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
             {"accept": None}]


# -- reading ------------------------------------------------------------------------------

def parse_table(text: str, hook: str) -> Chain:
    """`nft -j list table` output -> the base chain's policy and rules."""
    items = json.loads(text).get("nftables", [])
    ours = {i["rule"].get("chain") for i in items if "rule" in i
            and str(i["rule"].get("comment") or "").startswith((TAG, BASE_TAG))}
    stale = tuple(sorted(i["chain"].get("name") for i in items if "chain" in i and i["chain"].get("name") != hook
                         and i["chain"].get("hook") and i["chain"].get("name") in ours))
    others = tuple(sorted(f"{kind} {i[kind].get('name')}" for i in items for kind in ("chain", "set", "map", "flowtable")  # not for people
                          if kind in i and not (kind == "chain" and i[kind].get("name") in (hook, *stale))))
    chain = next((i["chain"] for i in items if "chain" in i and i["chain"].get("name") == hook), None)
    if chain is None:
        return Chain(True, others=others, stale=stale)
    rules = tuple((i["rule"].get("comment"), i["rule"].get("expr", [])) for i in items
                  if "rule" in i and i["rule"].get("chain") == hook)
    form = (chain.get("type"), chain.get("hook"), chain.get("prio"))
    return Chain(True, chain.get("policy"), chain.get("hook"), rules, others, stale, form)


def _address_from(right) -> str | None:
    if isinstance(right, str):
        return f"{right}/32"
    if isinstance(right, dict) and "prefix" in right:
        return f"{right['prefix']['addr']}/{right['prefix']['len']}"
    return None


def _ports_from(right) -> tuple[tuple[int, int], ...] | None:
    items = right["set"] if isinstance(right, dict) and "set" in right else [right]
    out = []
    for item in items:
        if isinstance(item, int):
            out.append((item, item))
        elif isinstance(item, dict) and "range" in item:
            out.append(tuple(item["range"]))
        else:
            return None
    return tuple(sorted(out))


def rule_from_expr(name: str, expr: list) -> FirewallRule | None:
    """A rule read back, in the reconciler's terms; None for anything it never writes."""
    fields = {"source": None, "destination": None, "protocol": "any", "ports": (), "action": None}
    for item in expr:
        if "accept" in item or "drop" in item:
            fields["action"] = "allow" if "accept" in item else "deny"
            continue
        match = item.get("match", {})
        left, right = match.get("left", {}), match.get("right")
        payload = left.get("payload", {}) if isinstance(left, dict) else {}
        if match.get("op") != "==":
            return None
        if payload.get("protocol") == "ip" and payload.get("field") in ("saddr", "daddr"):
            key = "source" if payload["field"] == "saddr" else "destination"
            fields[key] = _address_from(right)
            if fields[key] is None:
                return None
        elif payload.get("field") == "dport" and payload.get("protocol") in ("tcp", "udp"):
            fields["protocol"], fields["ports"] = payload["protocol"], _ports_from(right)
            if fields["ports"] is None:
                return None
        elif isinstance(left, dict) and left.get("meta", {}).get("key") == "l4proto" and right in ("tcp", "udp"):
            fields["protocol"] = right
        else:
            return None
    if fields["action"] is None:
        return None
    for key in ("source", "destination"):  # as declarations hold them: /32 for a host
        if fields[key] and fields[key].endswith("/32"):
            fields[key] = fields[key][:-3]
    return FirewallRule(name, **fields)


# -- the diff -----------------------------------------------------------------------------

def plain(expr: list) -> list:
    """A rule's expression without its counters: they count packets, they decide nothing."""
    return [e for e in expr if not (isinstance(e, dict) and "counter" in e)]


def _hand_made(actual: Chain) -> list[int]:
    """Positions of the chain's rules the reconciler did not write (neither tag nor base)."""
    return [i for i, (c, _) in enumerate(actual.rules) if c != BASE_TAG and not (c or "").startswith(TAG)]


def adoptions(wanted: DeviceRules, actual: Chain) -> dict[str, int]:
    """Declared rule name -> position of the hand-made rule of the chain it matches exactly
    (counters aside), for declared rules the chain does not hold by their tag.  Each hand-made
    rule is adopted once, by the first declaration that matches it.  Pure."""
    have = actual.tagged()
    free = [i for i in _hand_made(actual) if i != _adopted_base(actual)]
    out: dict[str, int] = {}
    for rule in wanted.rules:
        if rule.name in have:
            continue
        expected = expected_expr(rule)
        match = next((i for i in free if plain(actual.rules[i][1]) == expected), None)
        if match is not None:
            out[rule.name] = match
            free.remove(match)
    return out


def _accepts_only(expr: list) -> bool:
    """A hand-made rule whose removal only closes: one the reconciler can read, that accepts."""
    rule = rule_from_expr("", plain(expr))
    return rule is not None and rule.action == "allow"


def _adopted_base(actual: Chain) -> int | None:
    """The chain's first rule, when it is a hand-made one that lets established connections
    through as the base rule does (and no base rule is there): it serves as the base."""
    if any(c == BASE_TAG for c, _ in actual.rules) or not actual.rules:
        return None
    comment, expr = actual.rules[0]
    return 0 if not (comment or "").startswith(TAG) and plain(expr) == BASE_EXPR else None


def adopted_rule(rule: FirewallRule, actual: Chain, position: int) -> FirewallRule:
    """`rule` as the hand-made rule at `position` was found, kept so until its adoption is approved."""
    return awaiting_adoption(rule, actual.rules[position][0])


def device_order(actual: Chain, adopted: dict[str, int]) -> list[str]:
    """The declared rules on the device in the device's order: tagged ones and adopted ones."""
    at = {i: name for name, i in adopted.items()}
    return [c[len(TAG):] if (c or "").startswith(TAG) else at[i] for i, (c, _) in enumerate(actual.rules)
            if (c or "").startswith(TAG) or i in at]


def diff_device(target: str, wanted: DeviceRules, actual: Chain, policy: str, hook: str,
                table: str = "reconciler") -> list[Change]:
    """Rule-level adopciones, altas, modificaciones and bajas, drift, and the chain's policy and order."""
    have = actual.tagged()
    adopted = adoptions(wanted, actual)
    changes: list[Change] = []
    for rule in wanted.rules:
        expr = have.get(rule.name)
        if expr is None and rule.name in adopted:
            comment, found = actual.rules[adopted[rule.name]]
            counted = (AttributeChange(lazy("counter"), lazy("present"), None),) if plain(found) != found else ()
            changes.append(adoption_change(target, rule, comment, counted))
        elif expr is None:
            changes.append(rule_change(Movement.ALTA, target, rule, rule_attributes(None, rule)))
        elif expr != expected_expr(rule):
            found = rule_from_expr(rule.name, expr)
            attributes = rule_attributes(found, rule) if found is not None else (
                AttributeChange("rule", lazy("not one the reconciler writes (edited by hand)"), rule_text(rule)),)
            changes.append(rule_change(Movement.MODIFICACION, target, rule, attributes))
    wanted_names = {r.name for r in wanted.rules}
    for name in [n for n in actual.order() if n not in wanted_names]:
        if name in wanted.expired:
            expiry, rule = wanted.expired[name]
            changes.append(rule_change(Movement.BAJA, target, rule, rule_attributes(rule, None),
                                   reason=lazy("temporary exception expired on {date}", date=expiry)))
        else:
            found = rule_from_expr(name, have[name])
            gone = wanted.gone(name, f"{name} ({found.describe()})" if found else name)
            attributes = rule_attributes(found, None) if found else (AttributeChange("rule", lazy("present"), None),)
            changes.append(rule_change(Movement.BAJA, target, gone, attributes,
                                       reason=lazy("no longer declared in desired_state")))
    changes += _chain_changes(target, wanted, actual, policy, hook, table, adopted)
    return changes


def _chain_changes(target: str, wanted: DeviceRules, actual: Chain, policy: str, hook: str,
                   table: str, adopted: dict[str, int]) -> list[Change]:
    attributes = []
    if not actual.exists:
        attributes.append(AttributeChange("table", None, lazy("created")))
    elif actual.policy != policy or actual.hook != hook:
        attributes.append(AttributeChange(lazy("default policy"), actual.policy, policy))
    base_adopted = _adopted_base(actual)
    base = [e for c, e in actual.rules if c == BASE_TAG] or ([BASE_EXPR] if base_adopted is not None else [])
    if actual.exists and base != [BASE_EXPR]:
        attributes.append(AttributeChange(lazy("established connections"), lazy("not as declared"), lazy("accepted")))
    kept = set(adopted.values()) | {base_adopted}
    removed = [i for i in _hand_made(actual) if i not in kept]
    hand_made = [actual.rules[i][0] or lazy("(no comment)") for i in removed]
    opens = any(not _accepts_only(actual.rules[i][1]) for i in removed)
    if hand_made:
        attributes.append(AttributeChange(lazy("rules made by hand"), tuple(hand_made), ()))
    names = {r.name for r in wanted.rules}
    common = [n for n in device_order(actual, adopted) if n in names]
    declared = [r.name for r in wanted.rules if r.name in set(common)]
    order = order_change(target, hook, lazy("chain {hook}", hook=hook), common, declared, wanted)
    if not attributes:
        return order
    drift = bool(hand_made) or (actual.exists and (actual.policy != policy or base != [BASE_EXPR]))
    return [Change(Movement.ALTA if not actual.exists else Movement.MODIFICACION, target, CHAIN_KIND, hook,
                   lazy("table inet {table}, chain {hook}", table=table, hook=hook), tuple(attributes), drift=drift,
                   reason=lazy("changed outside the reconciler (drift)") if drift else "",
                   origins=takeover_origins(wanted, adopted, opens) if hand_made else ())] + order


# -- import -------------------------------------------------------------------------------

def hand_made_rules(ruleset: str, own_table: str) -> list[HandMade]:
    """Every rule of the device's ruleset the reconciler did not write (a pure function)."""
    found = []
    for item in json.loads(ruleset).get("nftables", []):
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        ours = rule.get("table") == own_table and str(rule.get("comment") or "").startswith(("reconciler:", TAG))
        if ours:
            continue
        where = f"{rule.get('family')} {rule.get('table')} {rule.get('chain')} #{rule.get('handle')}"
        expr = rule.get("expr") or []
        expr = plain(expr) if isinstance(expr, list) else expr
        found.append(HandMade(where, rule_from_expr("", expr) if isinstance(expr, list) else None,
                              json.dumps(expr, ensure_ascii=False)[:300]))
    return found
