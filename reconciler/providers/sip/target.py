"""The settings of a SIP registrar target (`kind: sip`)."""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, replace

from reconciler.config.inventory import SecretSource, TargetSettings, is_loopback
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
    reading: bool = False  # these settings serve a run that only reads (for_reading)

    def for_reading(self) -> "SipTarget":
        """Plans, pull request jobs and import read the subscribers as the read-only role, when
        the inventory names one (their runners never hold the password that writes), and open
        the database read-only whatever the role may do."""
        return replace(self, reading=True, database=self.database.read or self.database)

    @classmethod
    def build(cls, name: str, raw: dict) -> "SipTarget":
        return cls(domain=raw["domain"], database=DatabaseSettings.build(raw["database"]), rpc_url=raw["rpc_url"],
                   **cls.common(name, raw))

    def check(self, add) -> None:
        for path, url in ((("database", "url"), self.database.url),
                          (("database", "read", "url"), self.database.read.url if self.database.read else None)):
            if url is None:
                continue
            parts = urllib.parse.urlsplit(url)
            query = urllib.parse.parse_qs(parts.query)
            if ":" in parts.netloc.rpartition("@")[0] or "password" in query:  # would be in Git
                add(path, _("the URL carries a password: give it in database.password (an environment variable or "
                            "a file) and write the URL without it"))
            host = query.get("host", [parts.hostname or ""])[0]
            if host and not host.startswith("/") and not is_loopback(host) \
                    and query.get("sslmode", [""])[0] not in ("verify-full", "verify-ca"):  # not for people
                add(path, _("the database on {host} is reached over the network: add sslmode=verify-full to the URL "
                            "(TLS, the server's certificate and name checked; its password and the ha1 values would "
                            "otherwise cross the network unprotected)", host=host))
