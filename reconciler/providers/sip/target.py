"""The settings of a SIP registrar target (`kind: sip`)."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.inventory import TargetSettings


@dataclass(frozen=True, kw_only=True)
class SipTarget(TargetSettings):
    """A Kamailio registrar whose subscriber table is an SQLite database the reconciler can
    open (it runs on the PBX host), with JSON-RPC over HTTP for live registrations."""

    kind = "sip"
    domain: str
    database: str
    rpc_url: str

    @classmethod
    def build(cls, name: str, raw: dict) -> "SipTarget":
        return cls(domain=raw["domain"], database=raw["database"], rpc_url=raw["rpc_url"], **cls.common(name, raw))
