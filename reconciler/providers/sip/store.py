"""Kamailio's database: the subscriber table (read by Kamailio on every REGISTER) and the
reconciler's own tables: `reconciler_line`, which says which subscribers it owns, who holds
each line, and a fingerprint of the secret it set (to see a secret changed by hand); and
`reconciler_unregister`, the lines whose live registrations a committed change must still
drop, written in the same transaction as the change and cleared once Kamailio dropped them.

Three engines, the ones Kamailio's own db modules serve: PostgreSQL on a server (db_postgres,
through psycopg), MySQL or MariaDB on a server (db_mysql, through PyMySQL; each driver imported
only when a target uses it) and SQLite for a small site (db_sqlite, a file on the reconciler's
own host).  The SQL is written once, in the syntax all accept (`?` placeholders are turned into
the drivers' `%s`; MySQL's INSERT IGNORE stands for ON CONFLICT DO NOTHING); what differs is in
`Database`.
"""
from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from reconciler.errors import ReconcilerError
from reconciler.i18n import _
from reconciler.providers.sip.diff import ActualLines, Subscriber
from reconciler.providers.sip.target import DatabaseSettings, read_mysql_url, remote_hosts

META = """CREATE TABLE IF NOT EXISTS reconciler_line (
    username VARCHAR(64) NOT NULL, domain VARCHAR(64) NOT NULL, holder VARCHAR(64), unit VARCHAR(64),
    secret_mark VARCHAR(16) NOT NULL, PRIMARY KEY (username, domain))"""  # not for people


UNREGISTER = """CREATE TABLE IF NOT EXISTS reconciler_unregister (
    username VARCHAR(64) NOT NULL, domain VARCHAR(64) NOT NULL, since VARCHAR(32) NOT NULL,
    PRIMARY KEY (username, domain))"""  # not for people


# What a run's session may wait (PostgreSQL's settings, in milliseconds).
LIMITS = "-c statement_timeout=60000 -c lock_timeout=15000 -c idle_in_transaction_session_timeout=300000"
READ_ONLY = "-c default_transaction_read_only=on"  # not for people


# What MySQL writes instead of PostgreSQL's and SQLite's ON CONFLICT: SQL, not for people.
_DO_NOTHING = re.compile(r"^INSERT INTO (.*) ON CONFLICT DO NOTHING$", re.S)  # not for people
_DO_UPDATE = re.compile(r" ON CONFLICT \([^)]*\) DO UPDATE SET ")  # not for people
_EXCLUDED = re.compile(r"\bexcluded\.(\w+)")  # not for people


def mysql_dialect(sql: str) -> str:
    """The statement in MySQL's words: INSERT IGNORE for ON CONFLICT DO NOTHING, ON DUPLICATE
    KEY UPDATE (the row proposed as VALUES(...)) for ON CONFLICT ... DO UPDATE."""
    sql = _DO_NOTHING.sub(r"INSERT IGNORE INTO \1", sql)  # not for people
    if _DO_UPDATE.search(sql):
        sql = _EXCLUDED.sub(r"VALUES(\1)", _DO_UPDATE.sub(" ON DUPLICATE KEY UPDATE ", sql))  # not for people
    return sql


class DatabaseError(Exception):
    """The database refused a statement or went away (the driver's own error, as text)."""


class Database:
    """One connection, in autocommit mode: `begin()` opens the one transaction of an apply."""

    def __init__(self, settings: DatabaseSettings, read_only: bool = False):
        self.settings = settings
        self.in_transaction = False
        self.engine = settings.engine
        self._postgres = self.engine == "postgresql"  # not for people
        opening = {"postgresql": self._open_postgres, "mysql": self._open_mysql}.get(self.engine, self._open_sqlite)
        try:
            self._conn = opening(read_only)
            self.execute("SELECT 1 FROM subscriber LIMIT 1")  # not for people
        except DatabaseError as exc:
            raise ReconcilerError(_("cannot open the registrar's database {database}: {error}",
                                    database=settings.describe(), error=str(exc))) from None

    def _open_sqlite(self, read_only: bool):
        mode = "ro" if read_only else "rw"  # not for people
        try:
            # check_same_thread=False: a run opens its targets on a thread of its own
            # (run/connections.py) and then uses this connection from the main thread only.
            return sqlite3.connect(f"{Path(self.settings.path).absolute().as_uri()}?mode={mode}", uri=True,
                                   timeout=15, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from None

    def _open_postgres(self, read_only: bool):
        import psycopg  # only for a target on PostgreSQL
        from psycopg.conninfo import conninfo_to_dict

        try:
            # The URL's own options are kept; a run's limits are added: a statement or a lock that
            # waits longer is an error, not a run that hangs with its transaction open.
            options = " ".join(filter(None, (conninfo_to_dict(self.settings.url).get("options"), LIMITS,
                                             READ_ONLY if read_only else "")))
            conn = psycopg.connect(self.settings.url, password=self.settings.password.read(), autocommit=True,
                                   connect_timeout=10, options=options, application_name="reconciler",
                                   # a server that vanished is noticed within about a minute
                                   keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
                                   tcp_user_timeout=60000)
        except psycopg.Error as exc:
            raise DatabaseError(_one_line(exc)) from None
        if not conn.pgconn.ssl_in_use and remote_hosts({"host": conn.info.host, "hostaddr": conn.info.hostaddr}):
            conn.close()  # validate refuses such a URL; whatever slipped past it, nothing is read in clear
            raise DatabaseError(_("the server {host} was reached without TLS: refused", host=conn.info.host))
        return conn

    def _open_mysql(self, read_only: bool):
        import pymysql  # only for a target on MySQL or MariaDB

        try:
            address = read_mysql_url(self.settings.url)
        except ValueError as exc:
            raise DatabaseError(str(exc)) from None
        tls = None
        if address.sslmode == "verify-full":  # not for people
            import ssl

            tls = ssl.create_default_context(cafile=address.sslrootcert)  # the name and the chain checked
        # A session's limits: a lock that waits longer than 15 s, an answer slower than a
        # minute, is an error, not a run that hangs with its transaction open.
        init = "SET SESSION innodb_lock_wait_timeout = 15"  # not for people
        try:
            conn = pymysql.connect(host=address.host, port=address.port, user=address.user,
                                   password=self.settings.password.read(), database=address.database, ssl=tls,
                                   connect_timeout=10, read_timeout=60, write_timeout=60, autocommit=True,
                                   charset="utf8mb4", init_command=init,
                                   unix_socket=address.host if address.host.startswith("/") else None)
            if read_only:
                conn.cursor().execute("SET SESSION TRANSACTION READ ONLY")  # not for people
            if address.remote:
                with conn.cursor() as cursor:
                    cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")  # not for people
                    row = cursor.fetchone()
                if not row or not row[1]:
                    conn.close()  # validate refuses such a URL; whatever slipped past it, nothing is read in clear
                    raise DatabaseError(_("the server {host} was reached without TLS: refused", host=address.host))
            return conn
        except pymysql.Error as exc:
            raise DatabaseError(_one_line(exc)) from None

    # -- statements -------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement; its rows (none for a statement that returns none)."""
        if self.engine == "mysql":  # not for people
            import pymysql

            sql = mysql_dialect(sql)
            try:
                with self._conn.cursor() as cursor:
                    cursor.execute(sql.replace("?", "%s"), tuple(params) or None)
                    return list(cursor.fetchall()) if cursor.description else []
            except pymysql.Error as exc:
                raise DatabaseError(_one_line(exc)) from None
        if self._postgres:
            import psycopg

            try:
                cursor = self._conn.execute(sql.replace("?", "%s"), params)
                return cursor.fetchall() if cursor.description else []
            except psycopg.Error as exc:
                raise DatabaseError(_one_line(exc)) from None
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from None

    def has(self, table: str) -> bool:
        if self.engine == "mysql":  # not for people
            query = ("SELECT COUNT(*) FROM information_schema.tables "  # not for people
                     "WHERE table_schema = DATABASE() AND table_name = ?")
            return self.execute(query, (table,))[0][0] > 0
        if self._postgres:
            return self.execute("SELECT to_regclass(?) IS NOT NULL", (table,))[0][0]  # not for people
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"  # not for people
        return bool(self.execute(query, (table,)))

    def begin(self) -> None:
        # SQLite: take the write lock now, not at the first write (another writer cannot slip in).
        self.execute("BEGIN IMMEDIATE" if self.engine == "sqlite" else "BEGIN")  # not for people
        self.in_transaction = True

    def commit(self) -> None:
        self.execute("COMMIT")  # not for people
        self.in_transaction = False

    def rollback(self) -> None:
        self.in_transaction = False
        self.execute("ROLLBACK")  # not for people

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - a connection that died already has nothing to close
            pass


def _one_line(exc: Exception) -> str:
    """A driver's error without the SQL it quotes or the lines of context it adds."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def connect(settings: DatabaseSettings, read_only: bool = False) -> Database:
    return Database(settings, read_only)


def ensure_tables(db: Database) -> None:
    """The reconciler's tables, made by its first apply: only when missing, so that the
    role's right to create tables may be revoked once they exist."""
    for table, statement in (("reconciler_line", META), ("reconciler_unregister", UNREGISTER)):
        if not db.has(table):
            db.execute(statement)


def mark(ha1: str) -> str:
    return hashlib.sha256(ha1.encode("ascii")).hexdigest()[:16]


def read(db: Database, domain: str) -> ActualLines:
    """Every subscriber of the domain with the reconciler's record of it: one query."""
    if not db.has("reconciler_line"):
        rows = db.execute("SELECT username FROM subscriber WHERE domain = ?", (domain,))  # not for people
        return ActualLines({u: Subscriber(u, False) for (u,) in rows})  # a plan never writes: nothing owned yet
    rows = db.execute(
        "SELECT s.username, s.ha1, m.holder, m.unit, m.secret_mark, m.username IS NOT NULL "  # not for people
        "FROM subscriber s LEFT JOIN reconciler_line m ON m.username = s.username AND m.domain = s.domain "
        "WHERE s.domain = ?",
        (domain,))
    subscribers = {}
    for username, ha1, holder, unit, secret_mark, managed in rows:
        subscribers[username] = Subscriber(username, bool(managed), holder, unit,
                                           secret_drift=bool(managed) and mark(ha1 or "") != secret_mark)
    unregister = dict(db.execute(
        "SELECT username, since FROM reconciler_unregister WHERE domain = ?",  # not for people
        (domain,))) if db.has("reconciler_unregister") else {}
    return ActualLines(subscribers, unregister)
