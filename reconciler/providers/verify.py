"""Verification, the same for every kind: after apply, read back, diff again, and mark each
applied change verified or not (with what is wrong)."""
from __future__ import annotations

import time

from reconciler.errors import ReconcilerError
from reconciler.i18n import lazy
from reconciler.plan import Outcome
from reconciler.providers.contract import Provider, TargetPlan


def verify(provider: Provider, planned: TargetPlan, outcomes: list[Outcome]) -> None:
    """An applied change is verified when the fresh read leaves nothing to do for its object
    and the provider's own checks (confirm) pass.  A target that cannot be read back leaves
    every applied change unverified, saying why."""
    applied = [o for o in outcomes if o.status == "applied"]
    if not applied:
        return
    started = time.perf_counter()
    try:
        back = provider.read_back(planned)
    except ReconcilerError as exc:
        for o in applied:
            o.verified, o.error = False, lazy("could not read back to verify: {error}", error=str(exc))
        return
    pending = {(c.kind, c.key) for c in back.remaining}
    shown = [o for o in applied if (o.change.kind, o.change.key) not in pending]
    problems = provider.confirm(planned, back, shown) if shown else {}
    for o in applied:
        if (o.change.kind, o.change.key) in pending:
            problem = lazy("read back: {source} does not show the change", source=lazy(provider.read_back_source))
        else:
            problem = problems.get(id(o))
        o.verified, o.error = problem is None, problem
    phase = lazy("verification")
    provider.timings[phase] = provider.timings.get(phase, 0.0) + time.perf_counter() - started
