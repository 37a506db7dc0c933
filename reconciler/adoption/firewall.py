"""Firewall rules made by hand, imported as drafts: every rule a device holds that the reconciler
did not write (each kind finds them: Provider.existing) becomes a rule in the repository's terms
with its source, destination, service and action, and without a name, a unit or a
justification: `validate` refuses it until a person writes them, so no rule is ever declared
that nobody explained.  Rules the reconciler cannot express (other matches, jumps, NAT) are
report rows, with the rule as the device prints it."""
from __future__ import annotations

from reconciler.desired.security import SecurityPolicy
from reconciler.providers.found import HandMade


def _endpoint(address: str | None, security: SecurityPolicy | None) -> str:
    """The declared name of a network or host with that address, else the address itself (which
    `validate` then asks a person to declare)."""
    if address is None:
        return "any"
    if security is not None:
        for name, cidr in {**security.networks, **security.hosts}.items():
            if cidr.removesuffix("/32") == address.removesuffix("/32"):
                return name
    return address


def draft(found: HandMade, device: str, security: SecurityPolicy | None, solicitud: dict, today: str) -> dict:
    """The rule as it would be declared, without what only a person can say."""
    r = found.rule
    out = {"source": _endpoint(r.source, security), "destination": _endpoint(r.destination, security),
           "protocol": r.protocol}
    if r.ports:
        out["ports"] = [a if a == b else f"{a}-{b}" for a, b in r.ports]
    out.update({"action": r.action, "devices": [device],
                "solicitud": {"folio": solicitud["folio"], "date": solicitud.get("date") or today,
                              "justification": solicitud["justification"],
                              "requested_by": solicitud["requested_by"]}})
    return out
