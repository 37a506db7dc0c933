"""Shards: the targets an apply can run in jobs of their own, on runners of their own.

Targets that serve people (the directory, the mail system, the phone system, the systems with
no API) stay together in one shard: their secrets go into the same sealed envelopes (the
account's password and the line's secret of one request share one), and one run orders them
(an account before its mailbox; a mailbox closed before its account is disabled).  A kind whose
targets share nothing with any other (a firewall, a router: `Kind.alone`) makes one shard per
target.  A shard is named after its first target, in the inventory's order.

Everything else an apply writes is already per target (its lock, its audit trail file, its
applied ref, its work orders), except the git notes of the audit records, which every shard
appends to the same commit: audit/publish.py merges them when shards push at once.
"""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.inventory import TargetSettings
from reconciler.errors import ReconcilerError
from reconciler.i18n import _
from reconciler.providers import registry


@dataclass(frozen=True)
class Shard:
    name: str
    targets: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "targets": list(self.targets)}


def shards(targets: dict[str, TargetSettings]) -> list[Shard]:
    """The inventory's targets as shards, in inventory order.  Pure."""
    together = [name for name, t in targets.items() if not registry.kind(t.kind).alone]
    found = [Shard(together[0], tuple(together))] if together else []
    found += [Shard(name, (name,)) for name, t in targets.items() if registry.kind(t.kind).alone]
    first = {name: i for i, name in enumerate(targets)}
    return sorted(found, key=lambda s: first[s.name])


def shard(targets: dict[str, TargetSettings], name: str) -> Shard:
    for found in shards(targets):
        if found.name == name:
            return found
    raise ReconcilerError(_("no shard named {name}; this inventory's shards are: {names}", name=name,
                            names=", ".join(s.name for s in shards(targets)) or "-"))

