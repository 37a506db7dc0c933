"""Fake targets for the engine's tests: two fake kinds registered exactly as a real kind is
(one registry entry each), an inventory naming a target of each, and helpers to read what the
"systems" hold, what the engine did to them, and what it recorded.  The fixtures that use them
(`kinds`, `fakes`) are in conftest.py."""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import person

from reconciler.audit import trail
from reconciler.desired.source import at_ref
from reconciler.providers import registry
from reconciler.providers.fake.provider import KIND, FakeObject, read_state
from reconciler.providers.registry import Kind
from reconciler.run.engine import APPLIED_REF, Run

FIRST, SECOND = "fake_first", "fake_second"
TARGET_CLASS = "reconciler.providers.fake.target:FakeTarget"
PROVIDER_CLASS = "reconciler.providers.fake.provider:FakeProvider"
UNIT = "HG-CUERNAVACA"
# Distinct people (a CURP is unique; only the first keeps the default one).
PEOPLE = {
    "SSM-000001": {},
    "SSM-000002": {"curp": None, "given_names": "Zoé", "first_surname": "Güemes"},
    "SSM-000003": {"curp": None, "given_names": "Iñaki", "first_surname": "Muñoz"},
    "SSM-000004": {"curp": None, "given_names": "Begoña", "first_surname": "Ruíz"},
}


def register_kinds():
    """Two fake kinds, placed with `before`: fake_first, then fake_second, then the real kinds."""
    registry.register(Kind(SECOND, TARGET_CLASS, PROVIDER_CLASS, budgeted=frozenset({KIND})), before="active_directory")
    registry.register(Kind(FIRST, TARGET_CLASS, PROVIDER_CLASS, budgeted=frozenset({KIND})), before=SECOND)
    yield
    registry.unregister(FIRST)
    registry.unregister(SECOND)


class Fakes:
    """Two fake targets (a-first of kind fake_first, b-second of kind fake_second) sharing one
    journal, an inventory naming them, and the desired-state repository."""

    def __init__(self, repo, tmp: Path):
        self.repo, self.tmp = repo, tmp
        self.journal = tmp / "journal.log"
        self.audit_dir = tmp / "audit"
        self.inventory = tmp / "inventory.yaml"
        self.write_inventory()

    def write_inventory(self, first: dict | None = None, second: dict | None = None) -> None:
        common = {"journal": str(self.journal), "audit_dir": str(self.audit_dir),
                  "credentials_dir": str(self.tmp / "credentials")}
        # Listed in the opposite order on purpose: the registry, not the file, orders targets.
        targets = {"b-second": {"kind": SECOND, "state_file": str(self.tmp / "b-second.json"), **common,
                                **(second or {})},
                   "a-first": {"kind": FIRST, "state_file": str(self.tmp / "a-first.json"), **common,
                               **(first or {})}}
        self.inventory.write_text(yaml.safe_dump({"delivery": {"mode": "clear-text-file-lab-only"}, "targets": targets},
                                                 sort_keys=False), encoding="utf-8")

    def inventory_in_repo(self) -> Path:
        """This inventory kept in the repository (inventory/fakes.yaml), landed with SSM-000001's
        alta and two approvals (an inventory's change takes the privileged number)."""
        inventory = self.repo.root / "inventory" / "fakes.yaml"
        inventory.parent.mkdir(parents=True, exist_ok=True)
        inventory.write_text(self.inventory.read_text(encoding="utf-8"), encoding="utf-8")
        self.add("SSM-000001")
        self.repo.squash_merge("Inventario y un alta")  # the default approvers: Marta and Raúl
        return inventory

    def baja_applied(self) -> str:
        """Two altas applied, then the baja of SSM-000002 applied; the commit of the altas,
        which replaying would bring the person back."""
        self.add("SSM-000001", "SSM-000002")
        before = self.repo.squash_merge("Altas")
        self.apply()
        self.repo.remove("SSM-000002")
        self.repo.squash_merge("Baja de SSM-000002")
        self.apply()
        return before

    def add(self, *keys: str) -> None:
        self.repo.add(UNIT, *(person(k, **PEOPLE[k]) for k in keys))

    def state(self, target: str) -> dict[str, FakeObject]:
        return read_state(self.tmp / f"{target}.json")

    def ops(self, clear: bool = True, lifetime: bool = False) -> list[str]:
        """The journal since the last call; the targets' opening and closing only if asked."""
        lines = self.journal.read_text(encoding="utf-8").splitlines() if self.journal.exists() else []
        if clear:
            self.journal.unlink(missing_ok=True)
        return [line for line in lines if lifetime or line.split()[1] not in ("open", "opened", "close")]

    def run(self, **kwargs) -> Run:
        return Run(at_ref(self.repo.root), self.inventory, **kwargs)

    def apply(self, **kwargs):
        with self.run(lock=True) as run:
            plan = run.plan()
            return plan, run.apply(plan, **kwargs)

    def plan(self, **kwargs):
        with self.run(**kwargs) as run:
            return run.plan()

    def records(self, target: str) -> list[dict]:
        path = self.audit_dir / f"{target}{trail.SUFFIX}"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []

    def applied(self, target: str) -> str | None:
        """The commit the target's applied ref names (a tag the apply key signed)."""
        return self.repo.git.git.rev_parse("--verify", "-q", APPLIED_REF.format(target=target) + "^{commit}",
                                           with_exceptions=False) or None

    def mark_applied(self, target: str, commit: str) -> None:
        """Record `commit` as applied to `target`, signed as apply signs it."""
        from reconciler.audit.seal import ApplyKey, applied_tag

        tag = applied_tag(self.repo.git, ApplyKey.from_env(), target, commit)
        self.repo.git.git.update_ref(APPLIED_REF.format(target=target), tag)

    def head(self) -> str:
        return self.repo.git.head.commit.hexsha


def converged(fakes: Fakes) -> None:
    plan = fakes.plan()
    assert plan.empty, [f"{c.target} {c.movement.value} {c.key}" for c in plan.changes]
