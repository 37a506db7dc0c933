"""Cisco IOS routers: the declared rules as an extended ACL bound to one interface.

The ACL is named `<acl>-<generation>`; each rule's entries follow a `remark rule:<name>`
(one entry per port or range).  It starts by letting established TCP sessions through and
ends with the inventory's default (deny or permit everything else).  A change never edits the
live ACL: a new generation is written beside it, the interface is moved to it with one
`ip access-group` command, and only then is the old one removed, so the interface is bound
to a complete ACL at every step.  Read back from `show running-config`.

On day one the interface may be bound to an ACL made by hand: a declared rule whose entries
stand in it exactly, one after another, is adopted (the new generation gives them their
remark) instead of being added beside a copy that is removed.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from reconciler.i18n import lazy
from reconciler.plan import AttributeChange, Change, Movement
from reconciler.providers.cisco_ios.target import CiscoTarget
from reconciler.providers.found import HandMade
from reconciler.providers.network.rules import (
    TAG,
    DeviceRules,
    FirewallRule,
    adoption_change,
    order_change,
    rule_change,
    takeover_origins,
)

BASE = ["remark reconciler:base", "permit tcp any any established"]  # not for people: IOS configuration
AWAITING = "remark reconciler:awaiting-adoption"  # not for people: a hand-made rule kept while its adoption waits
DEFAULT_POLICY = "drop"  # an IOS ACL ends in deny; the reconciler writes it out
ACL_KIND = "router-acl"


def _address(address: str | None) -> str:
    if address is None:
        return "any"
    net = ipaddress.ip_network(address, strict=False)
    return f"host {net.network_address}" if net.prefixlen == 32 else f"{net.network_address} {net.hostmask}"


def entries(rule: FirewallRule) -> list[str]:
    verb = "permit" if rule.action == "allow" else "deny"
    head = f"{verb} {'ip' if rule.protocol == 'any' else rule.protocol} {_address(rule.source)} {_address(rule.destination)}"
    if not rule.ports:
        return [head]
    return [f"{head} eq {a}" if a == b else f"{head} range {a} {b}" for a, b in rule.ports]


def _address_from(tokens: list[str]) -> tuple[str | None, list[str]]:
    """An address as entries() writes it, read back: (the declaration's form, what follows)."""
    if tokens[0] == "any":
        return None, tokens[1:]
    if tokens[0] == "host":
        return str(ipaddress.ip_address(tokens[1])), tokens[2:]
    return str(ipaddress.ip_network(f"{tokens[0]}/{tokens[1]}")), tokens[2:]


def rule_from_entries(name: str, lines: list[str]) -> FirewallRule | None:
    """A rule's entries read back as the rule entries() made them from; None for entries the
    reconciler never writes (edited by hand, or another shape)."""
    heads, ports = set(), []
    try:
        for line in lines:
            tokens = line.split()
            source, rest = _address_from(tokens[2:])
            destination, rest = _address_from(rest)
            heads.add((tokens[0], tokens[1], source, destination))
            if not rest:
                ports.append(None)
            elif rest[0] == "eq" and len(rest) == 2:
                ports.append((int(rest[1]), int(rest[1])))
            elif rest[0] == "range" and len(rest) == 3:
                ports.append((int(rest[1]), int(rest[2])))
            else:
                return None
    except (IndexError, ValueError):
        return None
    if len(heads) != 1 or (None in ports and len(ports) > 1):
        return None
    verb, protocol, source, destination = heads.pop()
    if verb not in ("permit", "deny") or protocol not in ("ip", "tcp", "udp"):
        return None
    return FirewallRule(name, source, destination, "any" if protocol == "ip" else protocol,
                        tuple(p for p in ports if p is not None), "allow" if verb == "permit" else "deny")


def acl(rules: tuple[FirewallRule, ...], default_policy: str) -> list[str]:
    out = list(BASE)
    for rule in rules:
        out.append(AWAITING if rule.awaiting_adoption else f"remark {rule.tag}")
        out += entries(rule)
    out += ["remark reconciler:default", "deny ip any any" if default_policy == "drop" else "permit ip any any"]  # not for people
    return out


@dataclass(frozen=True)
class RouterState:
    bound: str | None  # the ACL bound to the interface in the direction
    lists: dict  # name -> entries
    own: tuple[str, ...]  # every ACL named <acl>-N

    @property
    def entries(self) -> list[str]:
        return self.lists.get(self.bound, []) if self.bound else []

    def tagged(self) -> dict[str, list[str]]:
        out, current = {}, None
        for line in self.entries:
            if line.startswith("remark "):
                text = line[len("remark "):]
                current = text[len(TAG):] if text.startswith(TAG) else None
                if current is not None:
                    out[current] = []
            elif current is not None:
                out[current].append(line)
        return out


def parse_running_config(text: str, interface: str, direction: str, prefix: str) -> RouterState:
    lists: dict[str, list[str]] = {}
    bound, block, name = None, None, None
    for raw in text.splitlines():
        line = raw.rstrip()
        if m := re.match(r"^ip access-list extended (\S+)$", line):  # not for people
            block, name = "acl", m.group(1)
            lists[name] = []
        elif m := re.match(r"^interface (\S+)$", line):  # not for people
            block, name = "if", m.group(1)
        elif not line.startswith(" "):
            block = None
        elif block == "acl":
            lists[name].append(line.strip())
        elif block == "if" and name == interface and (m := re.match(rf"^ ip access-group (\S+) {direction}$", line)):  # not for people
            bound = m.group(1)
    own = tuple(sorted(n for n in lists if re.fullmatch(rf"{re.escape(prefix)}-\d+", n)))
    return RouterState(bound, lists, own)


def untagged(lines: list[str]) -> list[int]:
    """Positions of the entries outside every rule's block (see frame)."""
    out, inside = [], False
    for i, line in enumerate(lines):
        if line.startswith("remark "):
            inside = line[len("remark "):].startswith(TAG)
        if not inside:
            out.append(i)
    return out


def _framed(lines: list[str], i: int) -> bool:
    """Whether entry `i` is one the reconciler writes itself (the established entry after its base
    remark, the last entry after its default remark): never adopted as a declared rule's."""
    before = lines[i - 1] if i else ""
    return (before == BASE[0] and lines[i] == BASE[1]) or \
        (before == "remark reconciler:default" and lines[i] in ("deny ip any any", "permit ip any any"))  # not for people


def adoptions(wanted: DeviceRules, actual: RouterState) -> dict[str, list[int]]:
    """Declared rule name -> positions in the bound ACL of the hand-made entries it matches:
    its entries, exactly and one after another, outside every rule's block; for declared rules
    the ACL does not hold by their remark.  Each entry is adopted once.  Pure."""
    lines, have = actual.entries, actual.tagged()
    free = [i for i in untagged(lines) if not lines[i].startswith("remark ") and not _framed(lines, i)]
    out: dict[str, list[int]] = {}
    for rule in wanted.rules:
        want = entries(rule)
        if rule.name in have:
            continue
        for k in range(len(free) - len(want) + 1):
            run = free[k:k + len(want)]
            if run == list(range(run[0], run[0] + len(want))) and [lines[i] for i in run] == want:
                out[rule.name] = run
                del free[k:k + len(want)]
                break
    return out


def _opens(actual: RouterState, adopted: dict[str, list[int]], default_policy: str) -> bool:
    """Whether the entries outside the rules that the new ACL drops include one that is not a
    plain permit (a deny the hand-made ACL had): removing it opens traffic."""
    if actual.bound is None:
        return False
    taken = {i for run in adopted.values() for i in run}
    ours = set(frame(acl((), default_policy)))
    return any(not line.startswith(("permit ", "remark ")) for i in untagged(actual.entries)
               if i not in taken and (line := actual.entries[i]) not in ours)


def device_order(actual: RouterState, adopted: dict[str, list[int]]) -> list[str]:
    """The declared rules in the bound ACL in its order: tagged ones and adopted ones."""
    at = {run[0]: name for name, run in adopted.items()}
    out = []
    for i, line in enumerate(actual.entries):
        if line.startswith("remark " + TAG):
            out.append(line[len("remark " + TAG):])
        elif i in at:
            out.append(at[i])
    return out


def diff_router(target: CiscoTarget, wanted: DeviceRules, actual: RouterState, default_policy: str) -> list[Change]:
    have = actual.tagged()
    adopted = adoptions(wanted, actual)
    changes = []
    for rule in wanted.rules:
        lines = have.get(rule.name)
        if lines is None and rule.name in adopted:
            changes.append(adoption_change(target.name, rule, None))
        elif lines is None:
            changes.append(rule_change(Movement.ALTA, target.name, rule, (AttributeChange("entries", (), tuple(entries(rule))),)))
        elif lines != entries(rule):
            changes.append(rule_change(Movement.MODIFICACION, target.name, rule,
                                   (AttributeChange("entries", tuple(lines), tuple(entries(rule))),)))
    names = {r.name for r in wanted.rules}
    for name, lines in have.items():
        if name in names:
            continue
        expiry = wanted.expired.get(name)
        rule = expiry[1] if expiry else wanted.gone(name, name)
        reason = (lazy("temporary exception expired on {date}", date=expiry[0]) if expiry
                  else lazy("no longer declared in desired_state"))
        changes.append(rule_change(Movement.BAJA, target.name, rule, (AttributeChange("entries", tuple(lines), ()),), reason))
    attributes = []
    if actual.bound is None:
        attributes.append(AttributeChange("access-group", None, f"{target.interface} {target.direction}"))
    else:
        taken = {i for run in adopted.values() for i in run}
        found = [actual.entries[i] for i in untagged(actual.entries) if i not in taken and actual.entries[i] != AWAITING]
        expected = frame(acl((), default_policy))
        if found != expected:
            attributes.append(AttributeChange(lazy("entries outside the rules"), tuple(found), tuple(expected)))
        common = [n for n in device_order(actual, adopted) if n in names]
        changes += order_change(target.name, target.interface, target.interface, common,
                                [r.name for r in wanted.rules if r.name in set(common)], wanted)
    if attributes:
        changes.append(Change(Movement.ALTA if actual.bound is None else Movement.MODIFICACION, target.name, ACL_KIND,
                              target.interface, lazy("ACL on {interface} {direction}", interface=target.interface,
                                                     direction=target.direction), tuple(attributes),
                              drift=actual.bound is not None,
                              reason=lazy("changed outside the reconciler (drift)") if actual.bound else "",
                              origins=takeover_origins(wanted, adopted, _opens(actual, adopted, default_policy))))
    return changes


def frame(lines: list[str]) -> list[str]:
    """The ACL without its rules' blocks (a rule's remark and the entries up to the next
    remark): the base and default entries, and anything added by hand."""
    out, inside = [], False
    for line in lines:
        if line.startswith("remark "):
            inside = line[len("remark "):].startswith(TAG)
        if not inside:
            out.append(line)
    return out


def swap_commands(target: CiscoTarget, actual: RouterState, entries_: list[str]) -> tuple[str, list[str]]:
    """The configuration that replaces the bound ACL without a window of exposure."""
    generation = max([int(n.rsplit("-", 1)[1]) for n in actual.own] or [0]) + 1
    new = f"{target.acl}-{generation}"
    commands = [f"ip access-list extended {new}", *entries_, "exit",  # not for people: IOS commands
                f"interface {target.interface}", f"ip access-group {new} {target.direction}", "exit"]  # not for people
    commands += [f"no ip access-list extended {old}" for old in actual.own if old != new]  # not for people
    return new, commands


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
