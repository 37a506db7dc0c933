"""Which kinds of target exist: kind -> its inventory settings and its provider, its place in
the apply order, and which of its removals the deletion budget counts.

A kind is one package under providers/ and one entry here.  Entries name their modules as
text: a kind's module and the libraries it needs (ldap3, pyinfra, netmiko) are imported only
when an inventory has a target of that kind, so `reconciler --help` and `validate` never load
them.  A target module (`<package>.target`) must stay light: the inventory loader imports it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconciler.providers.contract import Provider


@dataclass(frozen=True)
class Kind:
    name: str  # `kind:` in the inventory
    target: str  # "module:Class" of the target's settings (TargetSettings with build(); target.schema.json beside)
    provider: str  # "module:Class" of the Provider
    budgeted: frozenset[str] = frozenset()  # change kinds whose bajas count against max_bajas
    serves: frozenset[str] = frozenset()  # what desired state it holds, for validation: "mailboxes", "rules"
    # Each target of it shares nothing with any other target (no envelope, no apply order): an
    # apply can run it in a job of its own (run/shards.py).  Its provider is `parallel`.
    alone: bool = False

    def target_class(self) -> type:
        return _load(self.target)

    def provider_class(self) -> type["Provider"]:
        return _load(self.provider)


def _load(spec: str):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


# The apply order: an account exists before its mailbox, a mailbox before the lines and rules
# that follow.  Revocations run in the reverse order (the engine's rule).
KINDS: list[Kind] = [
    # accounts, groups, OUs and computers in Active Directory
    Kind("active_directory", "reconciler.providers.ad.target:ADTarget", "reconciler.providers.ad.provider:ADProvider",
         budgeted=frozenset({"account"})),
    # mailboxes on Dovecot and Postfix
    Kind("mail", "reconciler.providers.mail.target:MailTarget", "reconciler.providers.mail.provider:MailProvider",
         budgeted=frozenset({"mailbox", "shared-mailbox"}), serves=frozenset({"mailboxes"})),
    # extensions on a Kamailio registrar
    Kind("sip", "reconciler.providers.sip.target:SipTarget", "reconciler.providers.sip.provider:SipProvider",
         budgeted=frozenset({"sip-line"})),
    # security rules on an nftables firewall over SSH
    Kind("nftables", "reconciler.providers.nftables.target:NftablesTarget",
         "reconciler.providers.nftables.provider:NftablesProvider", serves=frozenset({"rules"}), alone=True),
    # security rules as an ACL on a Cisco IOS router
    Kind("cisco_ios", "reconciler.providers.cisco_ios.target:CiscoTarget",
         "reconciler.providers.cisco_ios.provider:CiscoProvider", serves=frozenset({"rules"}), alone=True),
    # systems with no API: work orders for their operators, pending until confirmed
    Kind("manual", "reconciler.providers.manual.target:ManualTarget",
         "reconciler.providers.manual.provider:ManualProvider", budgeted=frozenset({"work-order"})),
]


def register(kind: Kind, before: str | None = None) -> None:
    """Add a kind (tests register the fake kinds this way); `before` places it in the order."""
    unregister(kind.name)
    at = next((i for i, k in enumerate(KINDS) if k.name == before), len(KINDS)) if before else len(KINDS)
    KINDS.insert(at, kind)


def unregister(name: str) -> None:
    KINDS[:] = [k for k in KINDS if k.name != name]


def names() -> tuple[str, ...]:
    return tuple(k.name for k in KINDS)


def kind(name: str) -> Kind:
    for k in KINDS:
        if k.name == name:
            return k
    raise KeyError(name)


def order(name: str) -> int:
    return names().index(name)
