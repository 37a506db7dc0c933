"""The settings of a mail server target (`kind: mail`)."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.inventory import SecretSource, TargetSettings
from reconciler.desired.model import quota_megabytes
from reconciler.i18n import _


@dataclass(frozen=True, kw_only=True)
class MailTarget(TargetSettings):
    """A Dovecot + Postfix mail server: its registry and maps are files the reconciler owns
    (it runs where they are), its mailboxes are reached through the doveadm HTTP API."""

    kind = "mail"
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

    @classmethod
    def build(cls, name: str, raw: dict) -> "MailTarget":
        quota, baja, maps = raw.get("quota", {}), raw.get("baja", {}), raw["maps"]
        return cls(
            domains=tuple(raw["domains"]), doveadm_url=raw["doveadm"]["url"],
            doveadm_key=SecretSource(**raw["doveadm"]["api_key"]), registry=raw["registry"],
            recipients=maps["recipients"], aliases=maps["aliases"], denied=maps["denied"], mail_root=raw["mail_root"],
            reload=tuple(raw.get("reload", "postfix reload").split()),  # not for people
            default_quota=quota.get("default", "1G"),
            max_quota=quota.get("max"), new_mail_after_baja=baja.get("new_mail", "bounce"),
            retention_days=baja.get("retention_days", 365), **cls.common(name, raw))

    def check(self, add) -> None:
        if self.max_quota and quota_megabytes(self.default_quota) > quota_megabytes(self.max_quota):
            add(("quota", "default"), _("{quota} is over max {max}", quota=self.default_quota, max=self.max_quota))
