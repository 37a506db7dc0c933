"""Firewall rules made by hand, imported as drafts: from `nft -j list ruleset` (nftables) or the
running configuration's extended ACLs (Cisco IOS), every rule the reconciler did not write
(outside its own table or ACLs, or in its table without its tag) becomes a rule in
the repository's terms with its source, destination, service and action, and without a name,
a unit or a justification: `validate` refuses it until a person writes them, so no rule is
ever declared that nobody explained.  Rules the reconciler cannot express (other matches,
jumps, NAT) are report rows, with the rule as nft prints it."""
from __future__ import annotations

import json
from dataclasses import dataclass

from reconciler.desired.security import SecurityPolicy
from reconciler.providers.cisco_ios.acl import rule_from_entries
from reconciler.providers.network.rules import TAG, FirewallRule
from reconciler.providers.nftables.ruleset import rule_from_expr


@dataclass(frozen=True)
class HandMade:
    where: str  # "inet filter forward #7"
    rule: FirewallRule | None  # None: not expressible as a declared rule
    expr: str  # the rule's expression, as nft prints it in JSON


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
        expr = [e for e in rule.get("expr") or [] if not (isinstance(e, dict) and "counter" in e)]  # counts only
        found.append(HandMade(where, rule_from_expr("", expr) if isinstance(expr, list) else None,
                              json.dumps(expr, ensure_ascii=False)[:300]))
    return found


def hand_made_acl_entries(lists: dict[str, list[str]], own: tuple[str, ...]) -> list[HandMade]:
    """Every entry of the router's extended ACLs the reconciler did not write (its own are the
    generations `<acl>-N`), one draft each (a pure function)."""
    found = []
    for name, lines in sorted(lists.items()):
        if name in own:
            continue
        for i, line in enumerate(lines, 1):
            if line.startswith("remark "):
                continue
            where = f"ip access-list extended {name} #{i}"  # not for people: the IOS configuration's words
            found.append(HandMade(where, rule_from_entries("", [line]), line[:300]))
    return found


def _endpoint(address: str | None, security: SecurityPolicy | None) -> str:
    """The declared name of a network or host with that address, else the address itself (which
    `validate` then asks a person to declare)."""
    if address is None:
        return "any"
    if security is not None:
        for name, cidr in {**security.networks, **security.hosts}.items():
            if cidr.removesuffix("/32") == address.removesuffix("/32"):
                return name
    return address


def draft(found: HandMade, device: str, security: SecurityPolicy | None, solicitud: dict, today: str) -> dict:
    """The rule as it would be declared, without what only a person can say."""
    r = found.rule
    out = {"source": _endpoint(r.source, security), "destination": _endpoint(r.destination, security),
           "protocol": r.protocol}
    if r.ports:
        out["ports"] = [a if a == b else f"{a}-{b}" for a, b in r.ports]
    out.update({"action": r.action, "devices": [device],
                "solicitud": {"folio": solicitud["folio"], "date": solicitud.get("date") or today,
                              "justification": solicitud["justification"],
                              "requested_by": solicitud["requested_by"]}})
    return out
