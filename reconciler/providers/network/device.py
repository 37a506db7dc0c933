"""What firewalls and routers share: planning a device from the declared rules that name it,
applying its whole rule set in one step that never leaves it without rules, reading back,
and proving the rules with their probes."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

from reconciler.credentials import CredentialFile
from reconciler.errors import ReconcilerError
from reconciler.i18n import N_, lazy
from reconciler.plan import Change, Conflict, Outcome
from reconciler.providers.contract import (
    Capability,
    Declared,
    PlanRequest,
    Provider,
    ReadBack,
    TargetPlan,
    named_by_inventory,
)
from reconciler.providers.found import Existing, HandMade, ImportRequest
from reconciler.providers.network.probes import ProbeResult, run_probes
from reconciler.providers.network.rules import KIND as RULE_KIND
from reconciler.providers.network.rules import (
    ORDER_KIND,
    DeviceRules,
    FirewallRule,
    device_rules,
    kept_order,
    loadable_rules,
)

# The device's whole ACL or chain: the inventory names it, and it holds only approved rules.
IMPLIED = {"firewall-chain": lazy("the table and chain the inventory names, holding only approved rules"),
           "router-acl": lazy("the ACL the inventory binds to the interface, holding only approved rules")}


@dataclass(frozen=True)
class DeviceBasis:
    wanted: DeviceRules  # the rules this device must have today
    policy: Any  # the declared SecurityPolicy (for the probes)
    actual: Any = None  # what the plan read from the device (the kind's own form)


class DeviceProvider(Provider):
    """A firewall or router: subclasses read, diff and replace the device's rule set."""

    capabilities = frozenset({Capability.IMPLIED_APPROVALS, Capability.PROBES, Capability.ADOPTION, Capability.IMPORT})
    parallel = True  # devices are planned and applied concurrently
    read_back_source = N_("the device")

    def plan(self, request: PlanRequest) -> TargetPlan:
        if not request.state.assets_loaded:  # an incremental plan: people changed, rules did not
            return TargetPlan(self.target.name)
        basis = self._basis(request)
        started = time.perf_counter()
        actual = self.read()
        conflicts = self.blocked(actual)
        changes = [] if conflicts else self.diff(basis.wanted, actual)  # nothing planned that apply cannot do
        self.timings[lazy("read and diff")] = time.perf_counter() - started
        return TargetPlan(self.target.name, changes, conflicts, self.notes(actual), replace(basis, actual=actual))

    def _basis(self, request: PlanRequest) -> DeviceBasis:
        return DeviceBasis(device_rules(request.state.security, self.target.name, request.today),
                           request.state.security)

    def apply(self, planned: TargetPlan, changes: Sequence[Change], credentials: CredentialFile,
              advance=lambda n: None) -> list[Outcome]:
        """The device's whole rule set is replaced in one step, so its changes succeed or fail
        together.  Only approved rules go in: a rule whose change is not approved keeps its
        form on the device, or stays off it (see rules.loadable_rules)."""
        started = time.perf_counter()
        try:
            error = self.replace_rules(self.loadable(planned, changes))
        except ReconcilerError as exc:  # its words as raised: a Message stays one in the outcome
            error = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
        outcomes = [Outcome(c) for c in changes]
        for o in outcomes:
            if error:
                o.fail(error)
            else:
                o.status = "applied"
        advance(len(outcomes))
        self.timings[lazy("rule set")] = time.perf_counter() - started
        return outcomes

    def loadable(self, planned: TargetPlan, approved: Sequence[Change]) -> DeviceRules:
        """The rules to load: the wanted ones, but for the rules whose change is not approved."""
        basis: DeviceBasis = planned.basis
        waiting = not_approved(planned, approved)
        takeover = [c for c in planned.changes if c.kind in IMPLIED and c.origins and (c.kind, c.key) in waiting
                    and not c.approved]  # approved but held (a target out of reach): refilled as before
        if takeover:  # its hand-made rules cannot be kept as they are: the whole device waits
            raise ReconcilerError(lazy("the rules made by hand on {what} are taken over with adoptions that await "
                                       "approval; nothing was changed on the device until they are approved",
                                       what=takeover[0].label))
        pending = frozenset(key for kind, key in waiting if kind == RULE_KIND)
        order_pending = any(kind == ORDER_KIND for kind, _ in waiting)
        if not pending and not order_pending:
            return basis.wanted
        current, order = self.current_rules(basis.actual, basis.wanted)
        unreadable = sorted(n for n in pending if n in current and current[n] is None)
        if unreadable:
            raise ReconcilerError(lazy("the device holds rule {rule} in a form the reconciler cannot keep as it is "
                                       "while its change awaits approval; nothing was changed on the device",
                                       rule=unreadable[0]))
        kept = {n: r for n, r in current.items() if r is not None}
        rules = loadable_rules(basis.wanted, kept, order, pending)
        if order_pending:
            rules = kept_order(rules, order)
        return DeviceRules(rules, basis.wanted.expired)

    def read_back(self, planned: TargetPlan) -> ReadBack:
        return ReadBack(self.diff(planned.basis.wanted, self.read()))

    def probe(self, request: PlanRequest, planned: TargetPlan | None = None,
              outcomes: Sequence[Outcome] = ()) -> list[ProbeResult]:
        """Every probe of the rules this device holds as declared, run now as real connections
        (after an apply, not those of rules whose change was not approved: they are not there)."""
        basis = planned.basis if planned is not None and planned.basis is not None else self._basis(request)
        if basis.policy is None:
            return []
        started = time.perf_counter()
        waiting = not_approved(planned, [o.change for o in outcomes]) if planned is not None else frozenset()
        wanted = {r.name for r in basis.wanted.rules} - {key for kind, key in waiting if kind == RULE_KIND}
        declared = [r for r in basis.policy.rules if r.name in wanted]
        results = run_probes(declared, basis.policy, dict(self.target.probe_points))
        self.timings[lazy("probes")] = time.perf_counter() - started
        return results

    def existing(self, request: ImportRequest) -> Existing:
        """The device's rules the reconciler did not write."""
        return Existing(rules=tuple(self.hand_made()))

    def removed_declaration(self, change: Change) -> Declared | None:
        """A rule by its name in desired_state/security_rules/; the chain or ACL is implied."""
        return Declared(change.key, "security_rules") if change.kind == RULE_KIND else None

    def implied_approvals(self, changes: Sequence[Change]) -> dict[int, str]:
        return named_by_inventory(changes, IMPLIED)

    # -- what each device kind provides ---------------------------------------------------------
    def read(self):
        """The device's current rule set (raises ReconcilerError when it cannot be read)."""
        raise NotImplementedError

    def current_rules(self, actual, wanted: DeviceRules) -> tuple[dict[str, FirewallRule | None], list[str]]:
        """The reconciler's rules in `actual` (None: one it cannot read back as a rule) and the
        hand-made ones `wanted` adopts (as they were found), and their order on the device."""
        raise NotImplementedError

    def hand_made(self) -> list[HandMade]:
        """Every rule on the device the reconciler did not write, read-only (for import)."""
        raise NotImplementedError

    def notes(self, actual) -> list:
        """What the plan should say about the device beyond its changes."""
        return []

    def blocked(self, actual) -> list[Conflict]:
        """Why nothing can be planned for the device as it is (a chain nft would never refill)."""
        return []

    def diff(self, wanted: DeviceRules, actual) -> list[Change]:
        raise NotImplementedError

    def replace_rules(self, wanted: DeviceRules) -> str | None:
        """Put the wanted rules on the device; what went wrong, or None."""
        raise NotImplementedError


def not_approved(planned: TargetPlan, approved: Sequence[Change]) -> frozenset[tuple[str, str]]:
    """(kind, key) of the planned changes that are not among the approved ones."""
    done = {(c.kind, c.key) for c in approved}
    return frozenset((c.kind, c.key) for c in planned.changes if (c.kind, c.key) not in done)
