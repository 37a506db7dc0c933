"""The settings of a mail server target (`kind: mail`)."""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, replace

from reconciler.config.inventory import SecretSource, TargetSettings, is_loopback
from reconciler.desired.quotas import quota_megabytes
from reconciler.i18n import _


@dataclass(frozen=True)
class MailHostSettings:
    """The mail host reached over SSH (host.py): its address, the dedicated account, that
    account's private key, and the known_hosts that pins the host's key."""

    host: str
    user: str
    key: str
    known_hosts: str
    port: int = 22


@dataclass(frozen=True, kw_only=True)
class MailTarget(TargetSettings):
    """A Dovecot + Postfix mail server: its registry and maps are files the reconciler owns, on
    this host or on the mail host over SSH (`ssh`), its mailboxes are reached through the
    doveadm HTTP API."""

    kind = "mail"
    domains: tuple[str, ...]
    doveadm_url: str
    doveadm_key: SecretSource
    doveadm_ca_file: str | None = None  # the CA of the API's certificate (https); None: the system's
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
    ssh: MailHostSettings | None = None  # None: the files are on the reconciler's own host
    # An account of the mail host that may only read the registry and the maps, for the runs
    # that only read (plans, pull request jobs, import): their runners never hold the key that writes.
    read_ssh: MailHostSettings | None = None
    reading: bool = False  # these settings serve a run that only reads (for_reading)
    mail_owner: str = "vmail"  # who owns the mailboxes' homes (a purge over SSH runs as them)

    @property
    def host_login(self) -> MailHostSettings | None:
        """How this run reaches the mail host (None: the files are here)."""
        return self.read_ssh if self.reading and self.read_ssh else self.ssh

    def for_reading(self) -> "MailTarget":
        return replace(self, reading=True)

    @classmethod
    def build(cls, name: str, raw: dict) -> "MailTarget":
        quota, baja, maps, ssh = raw.get("quota", {}), raw.get("baja", {}), raw["maps"], raw.get("ssh")
        return cls(
            domains=tuple(raw["domains"]), doveadm_url=raw["doveadm"]["url"],
            doveadm_key=SecretSource(**raw["doveadm"]["api_key"]), doveadm_ca_file=raw["doveadm"].get("ca_file"),
            registry=raw["registry"],
            recipients=maps["recipients"], aliases=maps["aliases"], denied=maps["denied"], mail_root=raw["mail_root"],
            reload=tuple(raw.get("reload", "postfix reload").split()),  # not for people
            default_quota=quota.get("default", "1G"),
            max_quota=quota.get("max"), new_mail_after_baja=baja.get("new_mail", "bounce"),
            retention_days=baja.get("retention_days", 365),
            ssh=_host(ssh), read_ssh=_host(ssh, ssh.get("read") if ssh else None),
            mail_owner=raw.get("mail_owner", "vmail"), **cls.common(name, raw))

    def check(self, add) -> None:
        host = urllib.parse.urlsplit(self.doveadm_url).hostname or ""
        if self.doveadm_url.startswith("http://") and not is_loopback(host):
            add(("doveadm", "url"), _("the doveadm API on {host} is reached over the network: use https:// (its API "
                                      "key and every answer would cross the network in clear)", host=host))
        if self.ssh is not None and self.ssh.user != "root" and self.reload == ("postfix", "reload"):  # not for people
            add(("reload",), _("on the mail host the reload runs as {user}, who cannot reload Postfix: write "
                               "`sudo -n postfix reload`, and allow that command alone in the mail host's sudoers",
                               user=self.ssh.user))
        if self.max_quota and quota_megabytes(self.default_quota) > quota_megabytes(self.max_quota):
            add(("quota", "default"), _("{quota} is over max {max}", quota=self.default_quota, max=self.max_quota))


def _host(ssh: dict | None, account: dict | None = None) -> MailHostSettings | None:
    """The mail host's settings; with `account`, another account's login (user and key) there."""
    if ssh is None or (account is None and "user" not in ssh):
        return None
    login = account or ssh
    return MailHostSettings(ssh["host"], login["user"], login["key"], ssh["known_hosts"], ssh.get("port", 22))

