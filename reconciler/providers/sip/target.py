"""The settings of a SIP registrar target (`kind: sip`)."""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.config.inventory import SecretSource, TargetSettings
from reconciler.i18n import _


@dataclass(frozen=True)
class DatabaseSettings:
    """Where Kamailio keeps its subscribers: a PostgreSQL server (`url`, a libpq URL without a
    password, and the `password` from the environment or a file, like every secret), or an
    SQLite file on the reconciler's own host (`path`)."""

    path: str | None = None
    url: str | None = None
    password: SecretSource | None = None

    @classmethod
    def build(cls, raw) -> "DatabaseSettings":
        if isinstance(raw, str):
            return cls(path=raw)
        return cls(url=raw["url"], password=SecretSource(**raw["password"]))

    def describe(self) -> str:
        return self.path if self.url is None else self.url.split("?")[0]


@dataclass(frozen=True, kw_only=True)
class SipTarget(TargetSettings):
    """A Kamailio registrar: its subscriber table in its database (PostgreSQL, or SQLite on
    this host), with JSON-RPC over HTTP for live registrations."""

    kind = "sip"
    domain: str
    database: DatabaseSettings
    rpc_url: str

    @classmethod
    def build(cls, name: str, raw: dict) -> "SipTarget":
        return cls(domain=raw["domain"], database=DatabaseSettings.build(raw["database"]), rpc_url=raw["rpc_url"],
                   **cls.common(name, raw))

    def check(self, add) -> None:
        url = self.database.url or ""
        userinfo = url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
        if ":" in userinfo:  # a password written in the inventory would be in Git
            add(("database", "url"), _("the URL carries a password: give it in database.password (an environment "
                                       "variable or a file) and write the URL without it"))
