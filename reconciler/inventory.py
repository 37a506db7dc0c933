"""Targets: which systems to reconcile and how to reach them (inventory/*.yaml).

Kinds: `active_directory` (accounts, groups, OUs, computers), `mail` (Dovecot and Postfix
mailboxes) and `sip` (extensions on a Kamailio registrar).

An inventory names where a secret comes from (an environment variable or a file), never the
secret; the schema refuses any other key, so a password pasted into the file is an error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .desired.load import FileCheck
from .desired.model import MailRules, quota_megabytes
from .desired.yamlfile import read_yaml
from .errors import Problem, ReconcilerError, ValidationFailed

DEFAULT_MAX_BAJAS = 25
DEFAULT_CREDENTIALS_DIR = "/var/lib/reconciler/credentials"
DEFAULT_AUDIT_DIR = "/var/lib/reconciler/audit"
DEFAULT_LOCK_TTL_MINUTES = 120


@dataclass(frozen=True)
class SecretSource:
    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def read(self) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if not value:
                raise ReconcilerError(f"the secret is read from {self.describe()}, which is not set")
            return value
        try:
            return Path(self.file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ReconcilerError(f"cannot read the secret from {self.describe()}: {exc.strerror}") from None


@dataclass(frozen=True)
class ADTarget:
    kind = "active_directory"
    name: str
    host: str
    port: int
    base_dn: str
    upn_suffix: str
    people_ou: str
    groups_ou: str
    bajas_ou: str
    bind_dn: str
    bind_password: SecretSource
    ca_file: str | None
    validate_tls: bool
    max_bajas: int
    credentials_dir: str
    audit_dir: str = DEFAULT_AUDIT_DIR
    lock_ttl_minutes: int = DEFAULT_LOCK_TTL_MINUTES

    @property
    def url(self) -> str:
        return f"ldaps://{self.host}:{self.port}"


def _ad_target(name: str, raw: dict) -> ADTarget:
    tls = raw.get("tls", {})
    return ADTarget(
        name=name, host=raw["host"], port=raw.get("port", 636), base_dn=raw["base_dn"],
        upn_suffix=raw["upn_suffix"], people_ou=raw["ous"]["people"], groups_ou=raw["ous"]["groups"],
        bajas_ou=raw["ous"]["bajas"], bind_dn=raw["bind_dn"],
        bind_password=SecretSource(**raw["bind_password"]), ca_file=tls.get("ca_file"),
        validate_tls=tls.get("validate", True), max_bajas=raw.get("max_bajas", DEFAULT_MAX_BAJAS),
        credentials_dir=raw.get("credentials_dir", DEFAULT_CREDENTIALS_DIR),
        audit_dir=raw.get("audit_dir", DEFAULT_AUDIT_DIR),
        lock_ttl_minutes=raw.get("lock_ttl_minutes", DEFAULT_LOCK_TTL_MINUTES),
    )


@dataclass(frozen=True)
class MailTarget:
    """A Dovecot + Postfix mail server: its registry and maps are files the reconciler owns
    (it runs where they are), its mailboxes are reached through the doveadm HTTP API."""

    kind = "mail"
    name: str
    domains: tuple[str, ...]
    doveadm_url: str
    doveadm_key: SecretSource
    registry: str
    recipients: str
    aliases: str
    denied: str
    mail_root: str
    reload: tuple[str, ...] = ("postfix", "reload")
    default_quota: str = "1G"
    max_quota: str | None = None
    new_mail_after_baja: str = "bounce"  # or "keep"
    retention_days: int = 365
    max_bajas: int = DEFAULT_MAX_BAJAS
    credentials_dir: str = DEFAULT_CREDENTIALS_DIR
    audit_dir: str = DEFAULT_AUDIT_DIR
    lock_ttl_minutes: int = DEFAULT_LOCK_TTL_MINUTES


def _mail_target(name: str, raw: dict) -> MailTarget:
    quota, baja, maps = raw.get("quota", {}), raw.get("baja", {}), raw["maps"]
    return MailTarget(
        name=name, domains=tuple(raw["domains"]), doveadm_url=raw["doveadm"]["url"],
        doveadm_key=SecretSource(**raw["doveadm"]["api_key"]), registry=raw["registry"],
        recipients=maps["recipients"], aliases=maps["aliases"], denied=maps["denied"], mail_root=raw["mail_root"],
        reload=tuple(raw.get("reload", ("postfix", "reload"))), default_quota=quota.get("default", "1G"),
        max_quota=quota.get("max"), new_mail_after_baja=baja.get("new_mail", "bounce"),
        retention_days=baja.get("retention_days", 365), max_bajas=raw.get("max_bajas", DEFAULT_MAX_BAJAS),
        credentials_dir=raw.get("credentials_dir", DEFAULT_CREDENTIALS_DIR),
        audit_dir=raw.get("audit_dir", DEFAULT_AUDIT_DIR),
        lock_ttl_minutes=raw.get("lock_ttl_minutes", DEFAULT_LOCK_TTL_MINUTES),
    )


@dataclass(frozen=True)
class SipTarget:
    """A Kamailio registrar whose subscriber table is an SQLite database the reconciler can
    open (it runs on the PBX host), with JSON-RPC over HTTP for live registrations."""

    kind = "sip"
    name: str
    domain: str
    database: str
    rpc_url: str
    max_bajas: int = DEFAULT_MAX_BAJAS
    credentials_dir: str = DEFAULT_CREDENTIALS_DIR
    audit_dir: str = DEFAULT_AUDIT_DIR
    lock_ttl_minutes: int = DEFAULT_LOCK_TTL_MINUTES


def _sip_target(name: str, raw: dict) -> SipTarget:
    return SipTarget(name=name, domain=raw["domain"], database=raw["database"], rpc_url=raw["rpc_url"],
                     max_bajas=raw.get("max_bajas", DEFAULT_MAX_BAJAS),
                     credentials_dir=raw.get("credentials_dir", DEFAULT_CREDENTIALS_DIR),
                     audit_dir=raw.get("audit_dir", DEFAULT_AUDIT_DIR),
                     lock_ttl_minutes=raw.get("lock_ttl_minutes", DEFAULT_LOCK_TTL_MINUTES))


@dataclass(frozen=True)
class NftablesTarget:
    """A Linux firewall reached over SSH (pyinfra); the reconciler owns one inet table."""

    kind = "nftables"
    name: str
    host: str
    ssh_key: str
    port: int = 22
    user: str = "root"
    known_hosts: str | None = None
    table: str = "reconciler"
    hook: str = "forward"
    default_policy: str = "drop"
    probe_points: tuple = ()  # (network or host name, netns)
    max_bajas: int = DEFAULT_MAX_BAJAS
    credentials_dir: str = DEFAULT_CREDENTIALS_DIR
    audit_dir: str = DEFAULT_AUDIT_DIR
    lock_ttl_minutes: int = DEFAULT_LOCK_TTL_MINUTES


@dataclass(frozen=True)
class CiscoTarget:
    """A Cisco IOS router reached with netmiko; the reconciler owns the ACLs named `acl`-N."""

    kind = "cisco_ios"
    name: str
    host: str
    username: str
    password: SecretSource
    interface: str
    acl: str
    port: int = 22
    direction: str = "in"
    probe_points: tuple = ()
    max_bajas: int = DEFAULT_MAX_BAJAS
    credentials_dir: str = DEFAULT_CREDENTIALS_DIR
    audit_dir: str = DEFAULT_AUDIT_DIR
    lock_ttl_minutes: int = DEFAULT_LOCK_TTL_MINUTES


def _common(raw: dict) -> dict:
    return {"max_bajas": raw.get("max_bajas", DEFAULT_MAX_BAJAS),
            "credentials_dir": raw.get("credentials_dir", DEFAULT_CREDENTIALS_DIR),
            "audit_dir": raw.get("audit_dir", DEFAULT_AUDIT_DIR),
            "lock_ttl_minutes": raw.get("lock_ttl_minutes", DEFAULT_LOCK_TTL_MINUTES),
            "probe_points": tuple(sorted((k, v["netns"]) for k, v in (raw.get("probe_points") or {}).items()))}


def _nftables_target(name: str, raw: dict) -> NftablesTarget:
    return NftablesTarget(name=name, host=raw["host"], ssh_key=raw["ssh_key"], port=raw.get("port", 22),
                          user=raw.get("user", "root"), known_hosts=raw.get("known_hosts"),
                          table=raw.get("table", "reconciler"), hook=raw.get("hook", "forward"),
                          default_policy=raw.get("default_policy", "drop"), **_common(raw))


def _cisco_target(name: str, raw: dict) -> CiscoTarget:
    return CiscoTarget(name=name, host=raw["host"], username=raw["username"],
                       password=SecretSource(**raw["password"]), interface=raw["interface"], acl=raw["acl"],
                       port=raw.get("port", 22), direction=raw.get("direction", "in"), **_common(raw))


Target = ADTarget | MailTarget | SipTarget | NftablesTarget | CiscoTarget
NETWORK_KINDS = ("nftables", "cisco_ios")
_BUILDERS = {"active_directory": _ad_target, "mail": _mail_target, "sip": _sip_target,
             "nftables": _nftables_target, "cisco_ios": _cisco_target}


def network_devices(targets: dict[str, Target]) -> frozenset[str]:
    return frozenset(n for n, t in targets.items() if t.kind in NETWORK_KINDS)


def mail_rules(targets: dict[str, Target]) -> MailRules | None:
    """What declared mailboxes must respect, from the inventory's mail targets (None: no mail)."""
    mail = [t for t in targets.values() if isinstance(t, MailTarget)]
    if not mail:
        return None
    limits = [t.max_quota for t in mail if t.max_quota]
    return MailRules(frozenset(d for t in mail for d in t.domains),
                     min(limits, key=quota_megabytes) if limits else None)


def load_inventory(path: Path) -> dict[str, Target]:
    path = Path(path)
    if not path.is_file():
        raise ValidationFailed([Problem(str(path), None, "", "inventory file not found")])
    check = FileCheck(str(path), path.read_text(encoding="utf-8", errors="replace"))
    data, problems = read_yaml(path, str(path))
    if problems:
        raise ValidationFailed(problems)
    check.validate(data, "inventory")
    if check.problems:
        raise ValidationFailed(check.problems)
    targets = {name: _BUILDERS[raw["kind"]](name, raw) for name, raw in data["targets"].items()}
    for name, target in targets.items():
        if target.kind in ("sip",) + NETWORK_KINDS:
            continue
        if isinstance(target, MailTarget):
            if target.max_quota and quota_megabytes(target.default_quota) > quota_megabytes(target.max_quota):
                check.add(("targets", name, "quota", "default"), f"{target.default_quota} is over max {target.max_quota}")
            continue
        for ou in (target.people_ou, target.groups_ou, target.bajas_ou):
            if not ou.lower().endswith(target.base_dn.lower()):
                check.add(("targets", name, "ous"), f"{ou!r} is not under base_dn {target.base_dn!r}")
    if check.problems:
        raise ValidationFailed(check.problems)
    return targets
