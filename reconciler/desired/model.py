"""The desired state as frozen values: what the YAML in Git says, already validated."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class Source:
    """Where a declaration was written, for messages and provenance."""

    file: str  # relative to the repository: desired_state/users/hg-cuernavaca.yaml
    line: int | None
    path: tuple = ()  # where inside the document: ("people", 3); provenance blames its lines

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class Unit:
    key: str
    name: str
    kind: str
    clues: str | None
    ou: str
    source: Source | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Entitlement:
    """What a person may use: an AD group (`group`), a system with no API whose operator gets a
    work order (`system`: the `system:` of a target of kind manual), or both."""

    key: str
    description: str
    group: str | None
    privileged: bool = False
    source: Source | None = field(default=None, compare=False)
    system: str | None = None


@dataclass(frozen=True)
class Confirmation:
    """A work order done (desired_state/work_orders.yaml): when, by whom, under which ticket of
    the operator's."""

    folio: str
    date: str
    by: str
    ticket: str
    source: Source = field(compare=False)


@dataclass(frozen=True)
class Solicitud:
    """The approved request behind a person's current state (form FO-DPE-STI-DI-04 / ISSEMYM)."""

    folio: str
    date: str
    justification: str
    requested_by: str
    deliver_to: str | None = None  # a requester who also receives the credentials (config/delivery.py)


def solicitud_of(raw: dict) -> Solicitud:
    """A validated `solicitud:` mapping as a Solicitud."""
    return Solicitud(raw["folio"], raw["date"], raw["justification"], raw["requested_by"], raw.get("deliver_to"))


@dataclass(frozen=True)
class Request:
    """A one-off request with its folio: a password reset, a mailbox purge."""

    folio: str
    date: str
    requested_by: str | None = None


@dataclass(frozen=True)
class Acuse:
    """The acknowledgement of a delivery: the signed carta responsiva of `folio`, by its scan's SHA-256."""

    folio: str
    date: str
    sha256: str


@dataclass(frozen=True)
class Mailbox:
    """A person's institutional mailbox (SESVER 002, "Generación de Cuentas de Correo")."""

    address: str  # lower case; the login and the AD `mail` attribute
    aliases: tuple[str, ...] = ()
    quota: str | None = None  # "2G", "500M"; None: the mail target's default
    purge: Request | None = None  # only for a baja: delete the kept mailbox, approved on its own


@dataclass(frozen=True)
class SharedMailbox:
    """A unit's departmental mailbox (reception, a service): no login of its own; the declared
    members reach it through their own mailbox."""

    address: str
    name: str
    unit: str
    members: tuple[str, ...]  # employee keys
    solicitud: Solicitud
    source: Source = field(compare=False)
    aliases: tuple[str, ...] = ()
    quota: str | None = None


@dataclass(frozen=True)
class Person:
    employee_key: str
    given_names: str
    first_surname: str
    second_surname: str | None
    unit: str
    title: str
    direction: str
    phone: str
    status: str
    entitlements: tuple[str, ...]
    solicitud: Solicitud
    source: Source = field(compare=False)
    curp: str | None = None
    subdirection: str | None = None
    department: str | None = None
    extension: str | None = None
    explicit_sam: str | None = None
    explicit_cn: str | None = None
    adopt: str | None = None  # sAMAccountName of a hand-made account this person's becomes (adoption)
    mailbox: Mailbox | None = None
    password_resets: tuple[Request, ...] = ()
    acuse: Acuse | None = None

    @property
    def surnames(self) -> str:
        return " ".join(s for s in (self.first_surname, self.second_surname) if s)

    @property
    def display_name(self) -> str:
        return f"{self.given_names} {self.surnames}"

    @property
    def active(self) -> bool:
        return self.status == "activo"


@dataclass(frozen=True)
class PhoneLine:
    """A line of the institution: an extension on its SIP registrar or a carrier's line."""

    number: str
    kind: str  # "extension" | "carrier"
    unit: str
    status: str  # "activa" | "baja"
    solicitud: Solicitud
    source: Source = field(compare=False)
    person: str | None = None  # employee key; None: the unit's line
    carrier: str | None = None
    master_account: str | None = None
    plan: str | None = None
    monthly_cost: float | None = None
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decommission:
    """The technical verdict (dictamen técnico) behind an equipment baja."""

    reason: str  # obsolescencia | sobrecosto_reparacion | falla_irreparable
    date: str
    dictamen: str
    detail: str | None = None
    reusable_parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Equipment:
    inventory_number: str
    serial: str
    type: str  # desktop, laptop, printer, radio, phone, network_device
    brand: str
    model: str
    unit: str
    status: str  # en_uso | en_almacen | baja
    source: Source = field(compare=False)
    person: str | None = None  # resguardo: who it is assigned to
    location: str | None = None
    hostname: str | None = None  # desktops and laptops: their AD computer name
    decommission: Decommission | None = None
    solicitud: Solicitud | None = None


@dataclass(frozen=True)
class DesiredState:
    """Everything declared under desired_state/, with derived account names."""

    units: Mapping[str, Unit]
    entitlements: Mapping[str, Entitlement]
    people: tuple[Person, ...]
    account_names: Mapping[str, str]  # employee key -> sAMAccountName
    shared_mailboxes: tuple[SharedMailbox, ...] = ()
    lines: tuple[PhoneLine, ...] = ()
    equipment: tuple[Equipment, ...] = ()
    assets_loaded: bool = True  # False in a partial (incremental) load, which never reads assets
    security: object = None  # desired.security.SecurityPolicy, when security_rules/ declares any
    confirmations: tuple[Confirmation, ...] = ()  # work orders done (desired_state/work_orders.yaml)

    @staticmethod
    def build(units: dict, entitlements: dict, people: list, account_names: dict,
              shared_mailboxes: list = (), lines: list = (), equipment: list = (),
              assets_loaded: bool = True, security=None, confirmations: list = ()) -> "DesiredState":
        return DesiredState(MappingProxyType(dict(units)), MappingProxyType(dict(entitlements)),
                            tuple(people), MappingProxyType(dict(account_names)), tuple(shared_mailboxes),
                            tuple(lines), tuple(equipment), assets_loaded, security, tuple(confirmations))

    def person(self, key: str | None) -> "Person | None":
        if key is None:
            return None
        index = self.__dict__.get("_by_key")
        if index is None:
            index = {p.employee_key: p for p in self.people}
            object.__setattr__(self, "_by_key", index)
        return index.get(key)


@dataclass(frozen=True)
class MailRules:
    """What the inventory's mail targets allow: the managed domains and the largest quota."""

    domains: frozenset[str]
    max_quota: str | None = None
