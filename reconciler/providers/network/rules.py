"""Security rules as one device sees them: what each rule matches, in the device's order,
and whether it is still wanted (expired exceptions are not).  Pure."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from reconciler.desired.model import Source
from reconciler.desired.security import ANY, SecurityPolicy, SecurityRule
from reconciler.i18n import lazy
from reconciler.plan import AttributeChange, Change, Movement

TAG = "rule:"
KIND = "firewall-rule"
ORDER_KIND = "rule-order"
RULES_FOLDER = "desired_state/security_rules"  # the order of a device's rules: decides what a packet meets first


@dataclass(frozen=True)
class FirewallRule:
    name: str
    source: str | None  # CIDR or address; None: any
    destination: str | None
    protocol: str  # tcp | udp | any
    ports: tuple[tuple[int, int], ...]
    action: str  # allow | deny
    unit: str | None = field(default=None, compare=False)
    folio: str | None = field(default=None, compare=False)
    origins: tuple = field(default=(), compare=False)
    label: str = field(default="", compare=False)
    # A hand-made rule a declaration matches, whose adoption awaits approval: it goes back on
    # the device as it was found (its own comment, no tag), never owned before it is approved.
    awaiting_adoption: bool = field(default=False, compare=False)
    found_comment: str | None = field(default=None, compare=False)

    @property
    def tag(self) -> str:
        return TAG + self.name

    def ports_text(self) -> str:
        parts = [str(a) if a == b else f"{a}-{b}" for a, b in self.ports]
        return parts[0] if len(parts) == 1 else "{ " + ", ".join(parts) + " }"

    def describe(self) -> str:
        what = self.protocol if not self.ports else f"{self.protocol}/{self.ports_text().strip('{} ')}"
        return f"{self.source or 'any'} → {self.destination or 'any'} {what} {self.action}"

    def attributes(self) -> dict:
        """What the plan shows of a rule."""
        return {"source": self.source or ANY, "destination": self.destination or ANY, "protocol": self.protocol,
                "ports": self.ports_text() if self.ports else ANY, "action": self.action}


@dataclass(frozen=True)
class DeviceRules:
    """The rules one device must have, in order, and the declared ones it must not (expired)."""

    rules: tuple[FirewallRule, ...]
    expired: dict = field(default_factory=dict)  # name -> (expiry date, FirewallRule)
    elsewhere: dict = field(default_factory=dict)  # name -> FirewallRule declared, but not for this device

    def gone(self, name: str, label: str) -> FirewallRule:
        """The rule a baja removes from this device.  Still declared for other devices, it
        keeps its unit and its declaration, so the baja is judged by whoever last wrote that
        declaration (its `devices:` line); declared nowhere, by the commit that removed it."""
        declared = self.elsewhere.get(name)
        return FirewallRule(name, None, None, "any", (), "allow", unit=declared.unit if declared else None,
                            folio=declared.folio if declared else None,
                            origins=declared.origins if declared else (), label=label)


def catalog_origins(rule: SecurityRule, policy: SecurityPolicy) -> tuple[Source, ...]:
    """Where the networks, hosts and service a rule names are declared (networks.yaml): what
    the rule lets through depends on those lines as much as on its own, so its approval must
    cover them too."""
    folder = rule.origin.file.rsplit("/", 1)[0]
    catalog = f"{folder}/networks.yaml"
    found = []
    for end in (rule.source, rule.destination):
        for section, names in (("networks", policy.networks), ("hosts", policy.hosts)):
            if end in names:
                found.append(Source(catalog, None, (section, end)))
    if rule.service:
        found.append(Source(catalog, None, ("services", rule.service)))
    return tuple(found)


def compile_rule(rule: SecurityRule, policy: SecurityPolicy) -> FirewallRule:
    fw = FirewallRule(rule.name, policy.address(rule.source), policy.address(rule.destination), rule.protocol,
                      rule.ports, rule.action, rule.unit, rule.solicitud.folio,
                      (rule.origin, *catalog_origins(rule, policy)))
    return FirewallRule(**{**fw.__dict__, "label": f"{rule.name} ({fw.describe()})"})


def device_rules(policy: SecurityPolicy | None, device: str, today: str) -> DeviceRules:
    if policy is None:
        return DeviceRules(())
    wanted, expired, elsewhere = [], {}, {}
    for rule in policy.rules:
        if device not in rule.devices:
            elsewhere[rule.name] = compile_rule(rule, policy)
            continue
        if rule.expired(today):
            expired[rule.name] = (rule.expires, compile_rule(rule, policy))
        else:
            wanted.append(compile_rule(rule, policy))
    return DeviceRules(tuple(wanted), expired, elsewhere)


def rule_attributes(before: FirewallRule | None, after: FirewallRule | None) -> tuple[AttributeChange, ...]:
    old = before.attributes() if before else {}
    new = after.attributes() if after else {}
    return tuple(AttributeChange(k, old.get(k), new.get(k)) for k in ("source", "destination", "protocol", "ports", "action")
                 if old.get(k) != new.get(k))


def awaiting_adoption(rule: FirewallRule, comment: str | None) -> FirewallRule:
    """`rule` as the hand-made rule it matches was found, to be kept so until its adoption is
    approved."""
    return replace(rule, awaiting_adoption=True, found_comment=comment)


def adoption_change(target: str, rule: FirewallRule, found: str | None, extra: tuple = ()) -> Change:
    """A hand-made rule on the device that a declaration matches exactly: the reconciler takes
    it over (its tag written over `found`, the comment it had), and what passes does not change."""
    return rule_change(Movement.ADOPCION, target, rule, (AttributeChange("tag", found, rule.tag), *extra),
                       reason=lazy("made by hand, matches the declaration"))


def takeover_origins(wanted: DeviceRules, adopted, opens: bool = False) -> tuple:
    """What removing the hand-made rules beside adopted ones is judged by: it is part of the
    takeover (a deny removed before an adopted allow opens what the deny shut), never approved
    by implication.  Every landing that changed the rules' folder must be approved, the first
    origin (the folder itself, "desired_state/security_rules/") is what approvers' paths must
    cover, and the adopted rules' declarations follow.  A deleted or edited declaration of a
    rule that matched a hand-made one is a landing in the folder: unapproved, it holds the
    takeover back.  `opens`: the removal takes away a hand-made rule that is not a plain accept
    (a deny, a jump, what cannot be read): that opens traffic, so it is judged the same way even
    without an adoption.  Empty otherwise: removing hand-made accepts only closes, and the
    inventory's chain holding only approved rules is approved by implication."""
    if not adopted and not opens:
        return ()
    folders = sorted({o.file.rsplit("/", 1)[0] for r in wanted.rules for o in r.origins if "/" in o.file}) \
        or [RULES_FOLDER]  # no rule declared for the device: the folder all of them would be in
    return tuple(Source(f"{folder}/", None, ("landings",)) for folder in folders) + \
        tuple(o for r in wanted.rules if r.name in adopted for o in r.origins)


def rule_change(movement: Movement, target: str, rule: FirewallRule, attributes, reason: str = "") -> Change:
    """One rule's alta, modificación or baja on one device, whatever the device's kind."""
    return Change(movement, target, KIND, rule.name, rule.label or rule.name, tuple(attributes), reason=reason,
                  folio=rule.folio, unit=rule.unit, origins=rule.origins, desired=rule)


def order_change(target: str, key: str, device: str, before: list[str], after: list[str],
                 wanted: DeviceRules) -> list[Change]:
    """The order of the rules already on a device, when the declarations now put them in
    another.  It is a change of its own, judged by who last wrote the rules' declarations
    (never approved by implication): moving an allow before a deny opens what the deny shut."""
    if before == after:
        return []
    moved = {n for n in before if before.index(n) != after.index(n)}
    origins = tuple(o for r in wanted.rules if r.name in moved for o in r.origins)
    # Rules are evaluated in file-name order: renaming, adding or removing a rules file moves
    # them too, so those landings are part of the new order (approval.solicitudes: ("files",)).
    folders = sorted({o.file.rsplit("/", 1)[0] for o in origins if "/" in o.file})
    origins += tuple(Source(folder, None, ("files",)) for folder in folders)
    return [Change(Movement.MODIFICACION, target, ORDER_KIND, key,
                   lazy("order of the rules on {device}", device=device),
                   (AttributeChange("order", tuple(before), tuple(after)),), origins=origins)]


def kept_order(loaded: tuple[FirewallRule, ...], device_order: list[str]) -> tuple[FirewallRule, ...]:
    """`loaded` with the rules already on the device in the device's order (a new order that
    is not approved); a new rule keeps its place after the rule declared before it.  Pure."""
    on_device = [r for r in loaded if r.name in device_order]
    on_device.sort(key=lambda r: device_order.index(r.name))
    out = list(on_device)
    for index, rule in enumerate(loaded):
        if rule.name in device_order:
            continue
        before = loaded[index - 1].name if index else None
        at = next((i for i, r in enumerate(out) if r.name == before), -1)
        out.insert(at + 1, rule)
    return tuple(out)


def loadable_rules(wanted: DeviceRules, current: dict[str, FirewallRule], order: list[str],
                   pending: frozenset[str]) -> tuple[FirewallRule, ...]:
    """The rule set a device may be given when some rules' changes are not approved (`pending`:
    their names).  A declared rule goes in as declared when its change is approved or it has
    none; as it is on the device (`current`) when its modificación is not approved; not at all
    when its alta is not approved.  A rule whose baja is not approved stays, after the rule
    that precedes it on the device (`order`).  An unapproved rule never reaches a device, and
    an approved one never waits for it.  Pure."""
    out: list[FirewallRule] = []
    for rule in wanted.rules:
        if rule.name not in pending:
            out.append(rule)
        elif rule.name in current:
            out.append(current[rule.name])
    declared = {r.name for r in wanted.rules}
    for index, name in enumerate(order):
        if name not in pending or name in declared or name not in current:
            continue
        before = next((i for prev in reversed(order[:index]) for i, r in enumerate(out) if r.name == prev), -1)
        out.insert(before + 1, current[name])
    return tuple(out)
