"""The settings of a SIP registrar target (`kind: sip`)."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from reconciler.config.inventory import SecretSource, TargetSettings, is_loopback
from reconciler.i18n import _


@dataclass(frozen=True)
class DatabaseSettings:
    """Where Kamailio keeps its subscribers: a PostgreSQL, MySQL or MariaDB server (`url`,
    without a password, and the `password` from the environment or a file, like every secret),
    or an SQLite file on the reconciler's own host (`path`)."""

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

    @property
    def engine(self) -> str:
        """sqlite, postgresql or mysql (MariaDB speaks MySQL's protocol)."""
        if self.url is None:
            return "sqlite"  # not for people
        return "mysql" if self.url.startswith(("mysql://", "mariadb://")) else "postgresql"  # not for people


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
            for problem in mysql_url_problems(url) if url.startswith(("mysql://", "mariadb://")) else url_problems(url):
                add(path, problem)


# The plain shape inventories write: one user, one host (a name, an IPv4 or a bracketed IPv6
# address), an optional port, a database, and some TLS and timeout keys once each, nothing
# percent-encoded.  libpq reads that shape one way, so it is read here without importing
# psycopg: 0.09 s on every command whose inventory names a PostgreSQL registrar, also of
# commands that never reach it.  Anything else is read by libpq itself.
_PLAIN_URL = re.compile(r"postgres(?:ql)?://([A-Za-z0-9_.-]+)@([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
                        r"/([A-Za-z0-9_.-]+)(?:\?([a-z_]+=[A-Za-z0-9_./-]*(?:&[a-z_]+=[A-Za-z0-9_./-]*)*))?")
_PLAIN_KEYS = frozenset({"sslmode", "sslrootcert", "connect_timeout", "application_name"})


def _plain_url(url: str) -> dict | None:
    """read_url's answer for a URL of the plain shape, or None (libpq must read it)."""
    match = _PLAIN_URL.fullmatch(url)
    if match is None:
        return None
    user, host, port, dbname, query = match.groups()
    info = {"user": user, "dbname": dbname, "host": host.strip("[]")}
    if port:
        info["port"] = port
    for pair in query.split("&") if query else ():
        key, _eq, value = pair.partition("=")
        if key not in _PLAIN_KEYS or key in info:
            return None  # a key libpq reads otherwise, or one given twice (libpq takes the last)
        info[key] = value
    return info


def read_url(url: str) -> dict:
    """The URL's parameters as libpq reads them (the last of a key given twice, every host of a
    multi-host URL): what is checked must be what connects.  Raises ValueError."""
    if (plain := _plain_url(url)) is not None:
        return plain
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        return conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise ValueError((str(exc).strip().splitlines() or [type(exc).__name__])[0]) from None


def remote_hosts(info: dict) -> list[str]:
    """The hosts and addresses a connection may reach over the network (not loopback, not a
    Unix socket's folder)."""
    named = [h.strip() for key in ("host", "hostaddr") for h in (info.get(key) or "").split(",")]
    return [h for h in named if h and not h.startswith("/") and not is_loopback(h)]


def url_problems(url: str) -> list[str]:
    try:
        info = read_url(url)
    except ValueError as exc:
        return [_("libpq cannot read this URL: {error}", error=str(exc))]
    problems = []
    if "password" in info:  # in the userinfo or the query: in Git either way
        problems.append(_("the URL carries a password: give it in database.password (an environment variable or "
                          "a file) and write the URL without it"))
    hosts = [h.strip() for h in (info.get("host") or "").split(",")] if info.get("host") else []
    if "service" in info or "#" in url or not (hosts or info.get("hostaddr")) or "" in hosts:
        problems.append(_("write the database server in the URL itself, as libpq reads it: no service, no '#', no "
                          "empty host (the environment would choose the server)"))
    remote = remote_hosts(info)
    if remote and info.get("sslmode") != "verify-full":  # not for people
        problems.append(_("the database on {host} is reached over the network: add sslmode=verify-full to the URL "
                          "(TLS, the server's certificate and name checked; its password and the ha1 values would "
                          "otherwise cross the network unprotected)", host=remote[0]))
    return problems


@dataclass(frozen=True)
class MysqlAddress:
    """A mysql:// URL read: where the server is and how TLS is asked for (the same query keys
    as libpq's, so one convention serves both engines)."""

    host: str
    port: int
    user: str
    database: str
    sslmode: str | None
    sslrootcert: str | None

    @property
    def remote(self) -> bool:
        return not self.host.startswith("/") and not is_loopback(self.host)


MYSQL_KEYS = ("sslmode", "sslrootcert")  # not for people


def read_mysql_url(url: str) -> MysqlAddress:
    """Raises ValueError (what is wrong, for people) for anything but one host, a user, a
    database and the two TLS keys, each once: what is checked is all that connects."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    userinfo, _at, hostport = parts.netloc.rpartition("@")
    if parts.fragment or "," in hostport or not userinfo or not parts.path.strip("/") or "/" in parts.path.strip("/"):
        raise ValueError(_("write one server, a user and a database: mysql://user@host:port/database"))
    unknown = sorted(set(query) - set(MYSQL_KEYS)) + sorted(k for k, v in query.items() if len(v) > 1)
    if unknown:
        raise ValueError(_("the URL says {key}, which only sslmode and sslrootcert may be, once each", key=unknown[0]))
    try:
        host, port = parts.hostname or "", parts.port or 3306
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return MysqlAddress(urllib.parse.unquote(host), port, urllib.parse.unquote(userinfo),
                        urllib.parse.unquote(parts.path.strip("/")), (query.get("sslmode") or [None])[0],
                        (query.get("sslrootcert") or [None])[0])


def mysql_url_problems(url: str) -> list[str]:
    import urllib.parse

    userinfo = urllib.parse.urlsplit(url).netloc.rpartition("@")[0]
    if ":" in userinfo or "password" in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query):
        return [_("the URL carries a password: give it in database.password (an environment variable or a file) "
                  "and write the URL without it")]
    try:
        address = read_mysql_url(url)
    except ValueError as exc:
        return [str(exc)]
    if not address.host:
        return [_("write the database server in the URL itself, as libpq reads it: no service, no '#', no empty host "
                  "(the environment would choose the server)")]
    if address.remote and address.sslmode != "verify-full":
        return [_("the database on {host} is reached over the network: add sslmode=verify-full to the URL (TLS, the "
                  "server's certificate and name checked; its password and the ha1 values would otherwise cross the "
                  "network unprotected)", host=address.host)]
    return []
