"""The settings of a SIP registrar target (`kind: sip`)."""
from __future__ import annotations

from dataclasses import dataclass, replace

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
    read: "DatabaseSettings | None" = None  # a role that may only read, for the runs that only read

    @classmethod
    def build(cls, raw) -> "DatabaseSettings":
        if isinstance(raw, str):
            return cls(path=raw)
        read = raw.get("read")
        return cls(url=raw["url"], password=SecretSource(**raw["password"]),
                   read=cls(url=read["url"], password=SecretSource(**read["password"])) if read else None)

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

    def for_reading(self) -> "SipTarget":
        """Plans, pull request jobs and import read the subscribers as the read-only role, when
        the inventory names one: their runners never hold the password that writes."""
        return replace(self, database=self.database.read) if self.database.read else self

    @classmethod
    def build(cls, name: str, raw: dict) -> "SipTarget":
        return cls(domain=raw["domain"], database=DatabaseSettings.build(raw["database"]), rpc_url=raw["rpc_url"],
                   **cls.common(name, raw))

    def check(self, add) -> None:
        for path, url in ((("database", "url"), self.database.url),
                          (("database", "read", "url"), self.database.read.url if self.database.read else None)):
            userinfo = (url or "").split("://", 1)[-1].split("/", 1)[0].rpartition("@")[0]
            if ":" in userinfo:  # a password written in the inventory would be in Git
                add(path, _("the URL carries a password: give it in database.password (an environment variable or "
                            "a file) and write the URL without it"))
