"""Change and Plan: the movements the reconciler proposes, independent of any provider.

A Change is one movement (alta, modificación, baja) on one object of one target, with the
attributes before and after.  Values shown here are never secrets: passwords are generated
at apply time and never enter a Change.
"""
from __future__ import annotations

import enum
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from reconciler.i18n import source


class Movement(str, enum.Enum):
    # An existing object made by hand becomes the reconciler's (its marker added, its values
    # converged), never created again: first, because the others may need it.
    ADOPCION = "adopcion"
    ALTA = "alta"
    MODIFICACION = "modificacion"
    BAJA = "baja"

    @property
    def symbol(self) -> str:
        return {"adopcion": "<", "alta": "+", "modificacion": "~", "baja": "-"}[self.value]

    @property
    def plural(self) -> str:
        """Its key in JSON summaries and records (words for people: render.words)."""
        return {"adopcion": "adopciones", "alta": "altas", "modificacion": "modificaciones", "baja": "bajas"}[self.value]


@dataclass(frozen=True)
class AttributeChange:
    """One attribute's value before and after.  Set-valued attributes hold sorted tuples."""

    name: str
    before: Any
    after: Any

    @property
    def is_set(self) -> bool:
        return isinstance(self.before, tuple) or isinstance(self.after, tuple)

    def added(self) -> tuple:
        return tuple(v for v in (self.after or ()) if v not in (self.before or ()))

    def removed(self) -> tuple:
        return tuple(v for v in (self.before or ()) if v not in (self.after or ()))


@dataclass(frozen=True)
class Change:
    movement: Movement
    target: str
    kind: str  # "ou", "group", "account"
    key: str  # the object's identity on the target: employee key, group name, OU DN
    label: str  # what a person reads: "jnunezo (José Núñez O'Brien)"
    attributes: tuple[AttributeChange, ...] = ()
    reason: str = ""  # why, when not simply "the YAML says so": drift, no longer declared...
    drift: bool = False  # the object was changed outside the reconciler since it was applied
    folio: str | None = None
    unit: str | None = None  # the unit it belongs to, for the approval policy
    # Where it is declared (desired.model.Source values); empty for objects the inventory implies.
    origins: tuple = field(default=(), compare=False, repr=False)
    # Filled in from Git when the plan is made from a commit (solicitudes.Provenance, policy.Approval).
    provenance: Any = field(default=None, compare=False, repr=False)
    approval: Any = field(default=None, compare=False, repr=False)
    # Provider payload: the desired and actual records.  Not part of identity or output.
    desired: Any = field(default=None, compare=False, repr=False)
    actual: Any = field(default=None, compare=False, repr=False)

    def content(self) -> dict:
        """What the change does, and nothing about why: the part a fingerprint covers."""
        return {
            "movement": self.movement.value, "target": self.target, "kind": self.kind, "key": self.key,
            "label": self.label, "folio": self.folio, "reason": source(self.reason) or None, "drift": self.drift,
            "attributes": [{"name": a.name, "before": _jsonable(a.before), "after": _jsonable(a.after)}
                           for a in self.attributes],
        }

    def to_dict(self) -> dict:
        out = self.content()
        out["unit"] = self.unit
        out["solicitud"] = self.provenance.to_dict() if self.provenance is not None else None
        out["approval"] = self.approval.to_dict() if self.approval is not None else None
        return out

    @property
    def approved(self) -> bool:
        return self.approval is not None and self.approval.ok


@dataclass
class Outcome:
    """What became of one change when it was applied, and whether reading back confirmed it."""

    change: Change
    status: str = "pending"  # applied | failed | pending
    error: str | None = None
    verified: bool = False
    step: int = 0  # which step of a run applied it: 1 revocations, 2 everything else
    done_at: str | None = None  # when its step finished (UTC, microseconds): the order across targets
    evidence: dict | None = None  # what the provider left that shows it done (a work order's ref and commit)

    def fail(self, message: str) -> None:
        if self.status != "failed":
            self.status, self.error = "failed", message


@dataclass(frozen=True)
class Conflict:
    """An object the reconciler must not touch that stands in the way of a declared one."""

    target: str
    key: str
    label: str
    message: str

    def to_dict(self) -> dict:
        return {"target": self.target, "key": self.key, "label": self.label, "message": source(self.message)}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    conflicts: tuple[Conflict, ...] = ()
    source: str = ""  # what the desired state was read from (commit, working tree)
    warnings: tuple[str, ...] = ()
    commit: str | None = None  # the commit it was made from; None for a working-tree preview
    tree: str = ""  # identity of the desired_state/ content (Git tree id)
    scope: str = "full"  # "full", or "incremental since <commit>"
    # The targets it is for, changes or not, and out of reach or not: an unreachable target's
    # part is empty, so an apply pinned to a part that was not is refused.
    targets: tuple[str, ...] = ()

    @cached_property  # a plan never changes; computing it means serialising every change
    def fingerprint(self) -> str:
        """The desired content plus everything the plan read from the targets that matters:
        each change's before and after values.  If the live state moves after approval, the
        plan made at apply time has another fingerprint."""
        document = {"tree": self.tree, "changes": [c.content() for c in self.changes],
                    "conflicts": [c.to_dict() for c in self.conflicts]}
        text = json.dumps(document, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]

    def part(self, targets) -> "Plan":
        """The plan of some of its targets: what an apply of just those (one shard) makes, and
        so the fingerprint that pins it."""
        chosen = set(targets)
        return replace(self, changes=tuple(c for c in self.changes if c.target in chosen),
                       conflicts=tuple(c for c in self.conflicts if c.target in chosen),
                       targets=tuple(t for t in self.targets if t in chosen))

    @cached_property
    def target_fingerprints(self) -> dict[str, str]:
        """Each target's fingerprint: what a shard's apply is pinned to (run/shards.py)."""
        return {target: self.part({target}).fingerprint for target in self.targets}

    def summary(self) -> dict[str, int]:
        counts = Counter(c.movement for c in self.changes)
        return {m.plural: counts.get(m, 0) for m in Movement}

    @property
    def empty(self) -> bool:
        return not self.changes

    def summary_line(self) -> str:
        """The counts in one line, in the current language ("Plan: 1 alta, 0 modificaciones, 2 bajas.")."""
        from reconciler.render.words import summary_line

        return summary_line(Counter(c.movement for c in self.changes))

    def by_target(self) -> dict[str, list[Change]]:
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.target, []).append(change)
        return grouped

    def to_dict(self) -> dict:
        return {
            "format_version": 2, "source": self.source, "commit": self.commit, "scope": self.scope,
            "fingerprint": self.fingerprint, "target_fingerprints": self.target_fingerprints,
            "summary": {**self.summary(), "conflicts": len(self.conflicts)},
            "changes": [c.to_dict() for c in self.changes],
            "conflicts": [c.to_dict() for c in self.conflicts], "warnings": [source(w) for w in self.warnings],
        }
