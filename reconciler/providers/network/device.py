"""What firewalls and routers share: planning a device from the declared rules that name it,
applying its whole rule set in one step that never leaves it without rules, reading back,
and proving the rules with their probes."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from reconciler.credentials import CredentialFile
from reconciler.errors import ReconcilerError
from reconciler.plan import Change, Outcome
from reconciler.providers.contract import Capability, Declared, PlanRequest, Provider, ReadBack, TargetPlan
from reconciler.providers.network.probes import ProbeResult, run_probes
from reconciler.providers.network.rules import KIND as RULE_KIND
from reconciler.providers.network.rules import DeviceRules, device_rules

# The device's whole ACL or chain: the inventory names it, and it holds only approved rules.
IMPLIED = {"firewall-chain": "the table and chain the inventory names, holding only approved rules",
           "router-acl": "the ACL the inventory binds to the interface, holding only approved rules"}


@dataclass(frozen=True)
class DeviceBasis:
    wanted: DeviceRules  # the rules this device must have today
    policy: Any  # the declared SecurityPolicy (for the probes)


class DeviceProvider(Provider):
    """A firewall or router: subclasses read, diff and replace the device's rule set."""

    capabilities = frozenset({Capability.IMPLIED_APPROVALS, Capability.PROBES})
    parallel = True  # devices are planned and applied concurrently
    read_back_source = "the device"

    def plan(self, request: PlanRequest) -> TargetPlan:
        if not request.state.assets_loaded:  # an incremental plan: people changed, rules did not
            return TargetPlan(self.target.name)
        basis = self._basis(request)
        started = time.perf_counter()
        changes = self.diff(basis.wanted, self.read())
        self.timings["read and diff"] = time.perf_counter() - started
        return TargetPlan(self.target.name, changes, basis=basis)

    def _basis(self, request: PlanRequest) -> DeviceBasis:
        return DeviceBasis(device_rules(request.state.security, self.target.name, request.today),
                           request.state.security)

    def apply(self, planned: TargetPlan, changes: Sequence[Change], credentials: CredentialFile,
              advance=lambda n: None) -> list[Outcome]:
        """The device's whole rule set is replaced in one step, so its changes succeed or fail
        together."""
        started = time.perf_counter()
        try:
            error = self.replace_rules(planned.basis.wanted)
        except ReconcilerError as exc:
            error = str(exc)
        outcomes = [Outcome(c) for c in changes]
        for o in outcomes:
            if error:
                o.fail(error)
            else:
                o.status = "applied"
        advance(len(outcomes))
        self.timings["rule set"] = time.perf_counter() - started
        return outcomes

    def read_back(self, planned: TargetPlan) -> ReadBack:
        return ReadBack(self.diff(planned.basis.wanted, self.read()))

    def probe(self, request: PlanRequest, planned: TargetPlan | None = None) -> list[ProbeResult]:
        """Every probe of the rules this device holds, run now as real connections."""
        basis = planned.basis if planned is not None and planned.basis is not None else self._basis(request)
        if basis.policy is None:
            return []
        started = time.perf_counter()
        wanted = {r.name for r in basis.wanted.rules}
        declared = [r for r in basis.policy.rules if r.name in wanted]
        results = run_probes(declared, basis.policy, dict(self.target.probe_points))
        self.timings["probes"] = time.perf_counter() - started
        return results

    def removed_declaration(self, change: Change) -> Declared | None:
        """A rule by its name in desired_state/security_rules/; the chain or ACL is implied."""
        return Declared(change.key, "security_rules") if change.kind == RULE_KIND else None

    def implied_approvals(self, changes: Sequence[Change]) -> dict[int, str]:
        return {i: IMPLIED[c.kind] for i, c in enumerate(changes) if not c.origins and c.kind in IMPLIED}

    # -- what each device kind provides ---------------------------------------------------------
    def read(self):
        """The device's current rule set (raises ReconcilerError when it cannot be read)."""
        raise NotImplementedError

    def diff(self, wanted: DeviceRules, actual) -> list[Change]:
        raise NotImplementedError

    def replace_rules(self, wanted: DeviceRules) -> str | None:
        """Put the wanted rules on the device; what went wrong, or None."""
        raise NotImplementedError
