"""The settings of a Cisco IOS router target (`kind: cisco_ios`)."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.inventory import SecretSource, TargetSettings, probe_points
from reconciler.i18n import _


@dataclass(frozen=True, kw_only=True)
class CiscoTarget(TargetSettings):
    """A Cisco IOS router reached with netmiko; the reconciler owns the ACLs named `acl`-N."""

    kind = "cisco_ios"
    host: str
    username: str
    known_hosts: str  # the router's host key, pinned: netmiko's default accepts any
    interface: str
    acl: str
    password: SecretSource | None = None
    ssh_key: str | None = None
    port: int = 22
    direction: str = "in"
    probe_points: tuple = ()

    @classmethod
    def build(cls, name: str, raw: dict) -> "CiscoTarget":
        return cls(host=raw["host"], username=raw["username"], known_hosts=raw["known_hosts"],
                   password=SecretSource(**raw["password"]) if "password" in raw else None,
                   ssh_key=raw.get("ssh_key"), interface=raw["interface"], acl=raw["acl"], port=raw.get("port", 22),
                   direction=raw.get("direction", "in"), probe_points=probe_points(raw), **cls.common(name, raw))

    def check(self, add) -> None:
        if self.password is None and self.ssh_key is None:
            add(("password",), _("a password, an ssh_key or both: the router must be logged in to somehow"))
