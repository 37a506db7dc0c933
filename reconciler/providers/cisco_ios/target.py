"""The settings of a Cisco IOS router target (`kind: cisco_ios`)."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.inventory import SecretSource, TargetSettings, probe_points


@dataclass(frozen=True, kw_only=True)
class CiscoTarget(TargetSettings):
    """A Cisco IOS router reached with netmiko; the reconciler owns the ACLs named `acl`-N."""

    kind = "cisco_ios"
    host: str
    username: str
    password: SecretSource
    interface: str
    acl: str
    port: int = 22
    direction: str = "in"
    probe_points: tuple = ()

    @classmethod
    def build(cls, name: str, raw: dict) -> "CiscoTarget":
        return cls(host=raw["host"], username=raw["username"], password=SecretSource(**raw["password"]),
                   interface=raw["interface"], acl=raw["acl"], port=raw.get("port", 22),
                   direction=raw.get("direction", "in"), probe_points=probe_points(raw), **cls.common(name, raw))
