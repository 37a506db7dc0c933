"""What a target already holds that the reconciler did not make, as `reconciler import` reads it
(Capability.IMPORT, Provider.existing): records each kind fills in its own way, which import
turns into declarations and report rows without knowing any kind.  Read-only, in bulk."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from reconciler.providers.network.rules import FirewallRule


@dataclass(frozen=True)
class ImportRequest:
    """What import asks of a target."""

    people: bool = False  # read the people and computers (the one directory import draws people from)
    search_bases: tuple[str, ...] = ()  # where to read them (none: the whole directory)


@dataclass(frozen=True)
class Found:
    """One user account as the directory holds it."""

    dn: str
    attributes: dict  # PERSON_ATTRIBUTES (AD's names) -> text or None
    enabled: bool
    groups: tuple[str, ...] = ()  # DNs of the groups it is a direct member of
    last_logon: dt.datetime | None = None
    changed: dt.datetime | None = None
    created: dt.datetime | None = None
    protected: bool = False  # built-in or privileged
    managed: bool = False  # already carries the reconciler's marker

    @property
    def sam(self) -> str:
        return self.attributes.get("sAMAccountName") or ""

    @property
    def key(self) -> str | None:
        return self.attributes.get("employeeID")


@dataclass(frozen=True)
class FoundComputer:
    dn: str
    hostname: str
    location: str | None
    managed_by: str | None  # DN of the account it is assigned to
    enabled: bool
    critical: bool  # a domain controller or another object the system depends on
    managed: bool


@dataclass(frozen=True)
class DirectoryRead:
    accounts: tuple[Found, ...]
    group_parents: dict = field(default_factory=dict)  # dn.key(group) -> DNs of the groups it is in
    group_names: dict = field(default_factory=dict)  # dn.key(group) -> its name (CN)
    computers: tuple[FoundComputer, ...] = ()
    groups_ou: str = ""  # where the groups entitlements grant live: only those count as entitlements
    managed_ous: tuple[str, ...] = ()  # where the reconciler keeps its own accounts (people, bajas)


@dataclass(frozen=True)
class HandMadeMailbox:
    address: str
    aliases: tuple[str, ...]
    where: str  # "registry of mail-lab"


@dataclass(frozen=True)
class Extension:
    """A subscriber of a registrar, made by hand or not: import matches it to people's ipPhone."""

    number: str
    where: str


@dataclass(frozen=True)
class HandMade:
    """A firewall or router rule the reconciler did not write."""

    where: str  # "inet filter forward #7"
    rule: FirewallRule | None  # None: not expressible as a declared rule
    expr: str  # the rule as the device prints it (nft JSON, an ACL entry)


@dataclass(frozen=True)
class Existing:
    """What one target holds: each kind fills its part."""

    directory: DirectoryRead | None = None
    mailboxes: tuple[HandMadeMailbox, ...] = ()
    extensions: tuple[Extension, ...] = ()
    rules: tuple[HandMade, ...] = ()
