"""The settings of an nftables firewall target (`kind: nftables`)."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.inventory import TargetSettings, probe_points


@dataclass(frozen=True, kw_only=True)
class NftablesTarget(TargetSettings):
    """A Linux firewall reached over SSH (pyinfra); the reconciler owns one inet table."""

    kind = "nftables"
    host: str
    ssh_key: str
    port: int = 22
    user: str = "root"
    known_hosts: str | None = None
    table: str = "reconciler"
    hook: str = "forward"
    default_policy: str = "drop"
    probe_points: tuple = ()  # (network or host name, netns)

    @classmethod
    def build(cls, name: str, raw: dict) -> "NftablesTarget":
        return cls(host=raw["host"], ssh_key=raw["ssh_key"], port=raw.get("port", 22), user=raw.get("user", "root"),
                   known_hosts=raw.get("known_hosts"), table=raw.get("table", "reconciler"),
                   hook=raw.get("hook", "forward"), default_policy=raw.get("default_policy", "drop"),
                   probe_points=probe_points(raw), **cls.common(name, raw))
