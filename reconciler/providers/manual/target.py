"""The settings of a system with no API (`kind: manual`)."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.inventory import TargetSettings


@dataclass(frozen=True)
class Operator:
    """Who does what a work order asks, and how it reaches them."""

    name: str
    contact: str
    channel: str  # correo | mesa_de_ayuda | oficio | telefono


@dataclass(frozen=True, kw_only=True)
class ManualTarget(TargetSettings):
    """A system no program can reach: access to it is granted and removed by its operator, on
    a work order; the reconciler issues the order, keeps it, and waits for its confirmation."""

    kind = "manual"
    system: str  # the entitlements' `system:` key
    title: str  # the system's name, as people know it (the inventory's `name:`)
    operator: Operator
    sla_days: int

    @classmethod
    def build(cls, name: str, raw: dict) -> "ManualTarget":
        operator = raw["operator"]
        return cls(system=raw["system"], title=raw["name"],
                   operator=Operator(operator["name"], operator["contact"], operator["channel"]),
                   sla_days=raw["sla_days"], **cls.common(name, raw))

    def claims(self) -> dict[tuple, str]:
        """One target per system, and one per folio prefix (systems a-b and a_b would share one)."""
        return {("system",): self.folio_prefix}

    @property
    def folio_prefix(self) -> str:
        """What every work order of this system's folio starts with: OT-SIEMPRE-."""
        return "OT-" + self.system.upper().replace("_", "-") + "-"
