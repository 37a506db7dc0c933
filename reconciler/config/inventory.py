"""Targets: which systems to reconcile and how to reach them (inventory/*.yaml).

Each kind of target declares its own settings beside its provider
(`providers/<kind>/target.py` and `target.schema.json`, named in `providers/registry.py`); this
module reads the file, checks it against the common schema composed with every kind's, and
builds the targets.  It imports no provider and no target library.

An inventory names where a secret comes from (an environment variable or a file), never the
secret; the schema refuses any other key, so a password pasted into the file is an error.
"""
from __future__ import annotations

import copy
import ipaddress
import json
import os
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from reconciler.config.delivery import Delivery
from reconciler.config.institution import Institution
from reconciler.desired.checks import FileCheck, define_schema
from reconciler.desired.quotas import quota_megabytes
from reconciler.desired.yamlfile import read_yaml
from reconciler.errors import Problem, ReconcilerError, ValidationFailed
from reconciler.i18n import _
from reconciler.providers import registry

if TYPE_CHECKING:
    from reconciler.desired.model import MailRules

DEFAULT_MAX_BAJAS = 25
DEFAULT_CREDENTIALS_DIR = "/var/lib/reconciler/credentials"
DEFAULT_AUDIT_DIR = "/var/lib/reconciler/audit"
DEFAULT_LOCK_TTL_MINUTES = 120
DEFAULT_RETENTION_YEARS = 5  # the longest the procedures ask (the Secretaría's keys); Morelos asks 3


@dataclass(frozen=True)
class SecretSource:
    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        return _("environment variable {name}", name=self.env) if self.env else _("file {path}", path=self.file)

    def read(self) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if not value:
                raise ReconcilerError(_("the secret is read from {source}, which is not set", source=self.describe()))
            return value
        try:
            return Path(self.file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ReconcilerError(_("cannot read the secret from {source}: {error}", source=self.describe(),
                                    error=exc.strerror)) from None


@dataclass(frozen=True, kw_only=True)
class TargetSettings:
    """What every target has, whatever its kind.  A kind's settings class adds its own fields
    and `build(name, raw)`; it may add `check(add)` for problems a schema cannot see."""

    kind = ""  # the registry's name for it; a class attribute of each kind
    name: str
    max_bajas: int = DEFAULT_MAX_BAJAS  # the deletion budget of one run
    credentials_dir: str = DEFAULT_CREDENTIALS_DIR
    audit_dir: str = DEFAULT_AUDIT_DIR
    lock_ttl_minutes: int = DEFAULT_LOCK_TTL_MINUTES
    audit_retention_years: int = DEFAULT_RETENTION_YEARS  # how long its records are kept (audit export's keep_until)
    delivery: Delivery | None = None  # the inventory's delivery: block, the same for every target
    # Staged rollout, for the kinds whose schema has it (AD, mail, SIP): only these units' objects
    # are adopted, created, changed or given baja here (None: every unit).
    managed_units: frozenset[str] | None = None

    @staticmethod
    def common(name: str, raw: dict) -> dict:
        """The common fields of a validated inventory entry, as keyword arguments."""
        return {"name": name, "max_bajas": raw.get("max_bajas", DEFAULT_MAX_BAJAS),
                "credentials_dir": raw.get("credentials_dir", DEFAULT_CREDENTIALS_DIR),
                "audit_dir": raw.get("audit_dir", DEFAULT_AUDIT_DIR),
                "lock_ttl_minutes": raw.get("lock_ttl_minutes", DEFAULT_LOCK_TTL_MINUTES),
                "audit_retention_years": raw.get("audit_retention_years", DEFAULT_RETENTION_YEARS),
                "managed_units": frozenset(raw["managed_units"]) if "managed_units" in raw else None}

    def manages(self, unit: str | None) -> bool:
        """Whether the objects of `unit` are managed on this target (staged rollout)."""
        return self.managed_units is None or unit in self.managed_units

    def scope(self, declared: Iterable[str]) -> Callable[[str | None], bool]:
        """Whether an object recorded with a unit is managed here: left alone only when
        managed_units leaves out a unit units.yaml declares.  An object whose recorded unit is
        declared nowhere any more is no other unit's, and its baja is not skipped."""
        declared = frozenset(declared)
        return lambda unit: self.manages(unit) or unit not in declared

    def check_managed_units(self, declared: Iterable[str]) -> None:
        """managed_units must name declared units: a misspelt one would manage nothing, silently."""
        unknown = sorted((self.managed_units or frozenset()) - set(declared))
        if unknown:
            raise ReconcilerError(_("target {target}: managed_units names {units}, which desired_state/units.yaml "
                                    "does not declare", target=self.name, units=", ".join(unknown)))

    def for_reading(self) -> "TargetSettings":
        """The settings of a run that only reads (a plan, a pull request job, import): a kind
        with an account that may only read binds as it.  By default the same settings."""
        return self

    def check(self, add: Callable[[tuple, str], None]) -> None:
        """Problems of this target's settings beyond the schema: add(path, message)."""

    def claims(self) -> dict[tuple, str]:
        """What no other target of the inventory may claim too: {path of the setting: a value
        compared across targets}.  None by default."""
        return {}


def is_loopback(host: str) -> bool:
    """A server on the runner itself: what travels to it never crosses a network."""
    if host == "localhost":  # not for people
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def probe_points(raw: dict) -> tuple:
    """(network or host name, netns) pairs, sorted: where a device's probes run from."""
    return tuple(sorted((k, v["netns"]) for k, v in (raw.get("probe_points") or {}).items()))


@cache
def _base_schema() -> dict:
    return json.loads(resources.files("reconciler.config").joinpath("inventory.schema.json").read_text("utf-8"))


@cache
def _kind_schema(spec: str) -> dict:
    module = spec.split(":")[0]
    return json.loads(resources.files(module.rsplit(".", 1)[0]).joinpath("target.schema.json").read_text("utf-8"))


def inventory_schema(kinds: tuple[registry.Kind, ...]) -> str:
    """The inventory's schema for these kinds, registered under a name of its own: the common
    fields and each kind's settings, chosen by `kind:`."""
    name = "inventory:" + ",".join(k.name for k in kinds)
    document = copy.deepcopy(_base_schema())
    entry = document["properties"]["targets"]["additionalProperties"]
    entry["properties"]["kind"]["enum"] = [k.name for k in kinds]
    common = document["definitions"]["common"]
    branches = []
    for k in kinds:
        own = copy.deepcopy(_kind_schema(k.target))
        own.pop("description", None)
        own["properties"] = {"kind": {"enum": [k.name]}, **common, **own["properties"]}
        own["additionalProperties"] = False  # whatever a kind's file says: a pasted secret is an error
        document["definitions"][k.name] = own
        # `enum` of one, not `const`: fastjsonschema 2.22 compiles `const` only with detailed messages
        branches.append({"if": {"required": ["kind"], "properties": {"kind": {"enum": [k.name]}}},
                         "then": {"$ref": f"#/definitions/{k.name}"}})
    entry["allOf"] = branches
    define_schema(name, document)
    return name


def load_inventory(path: Path, data: bytes | None = None) -> dict[str, TargetSettings]:
    """The targets of the inventory at `path`; from `data` when given, the bytes the caller
    read from it (so that what it remembers of the file is exactly what was loaded)."""
    path = Path(path)
    if not path.is_file():
        raise ValidationFailed([Problem(str(path), None, "", _("inventory file not found"))])
    if path.is_symlink() and not path.resolve().is_relative_to(path.parent.resolve()):
        # A pull request's inventory linked to a key outside would otherwise be echoed.
        raise ValidationFailed([Problem(str(path), None, "", _("cannot read: a symbolic link out of its directory"))])
    try:
        raw = path.read_bytes() if data is None else data
    except OSError:
        raw = None  # read_yaml tries again and says why
    check = FileCheck(str(path), (raw or b"").decode("utf-8", errors="replace"))  # as read_yaml reads it
    data, problems = read_yaml(path, str(path), raw)
    if problems:
        raise ValidationFailed(problems)
    check.validate(data, inventory_schema(tuple(registry.KINDS)))
    if check.problems:
        raise ValidationFailed(check.problems)
    institution = Institution.from_inventory(data)
    institution.check(check.add)
    institution.speak()
    delivery = Delivery.from_inventory(data)
    if delivery is not None:
        delivery.check(check.add)
    targets, claimed = {}, {}
    for name, raw in data["targets"].items():
        target = replace(registry.kind(raw["kind"]).target_class().build(name, raw), delivery=delivery)
        target.check(lambda where, message, name=name: check.add(("targets", name) + tuple(where), message))
        for where, value in target.claims().items():
            if value in claimed:
                check.add(("targets", name) + where, _("{value} is target {other}'s already: two targets cannot "
                                                       "share it", value=value, other=claimed[value]))
            claimed.setdefault(value, name)
        targets[name] = target
    if check.problems:
        raise ValidationFailed(check.problems)
    return targets


def serving(targets: dict[str, TargetSettings], what: str) -> list[TargetSettings]:
    """The targets whose kind holds `what` ("mailboxes", "rules")."""
    return [t for t in targets.values() if what in registry.kind(t.kind).serves]


def network_devices(targets: dict[str, TargetSettings]) -> frozenset[str]:
    """The firewalls and routers a security rule may name."""
    return frozenset(t.name for t in serving(targets, "rules"))


def mail_rules(targets: dict[str, TargetSettings]) -> MailRules | None:
    """What declared mailboxes must respect, from the inventory's mail targets (None: no mail)."""
    mail = serving(targets, "mailboxes")
    if not mail:
        return None
    from reconciler.desired.model import MailRules  # the desired state's: a settled plan loads none

    limits = [t.max_quota for t in mail if t.max_quota]
    return MailRules(frozenset(d for t in mail for d in t.domains),
                     min(limits, key=quota_megabytes) if limits else None)
