"""Kamailio's SQLite database: the subscriber table (read by Kamailio on every REGISTER) and
the reconciler's own tables: `reconciler_line`, which says which subscribers it owns, who holds
each line, and a fingerprint of the secret it set (to see a secret changed by hand); and
`reconciler_unregister`, the lines whose live registrations a committed change must still
drop, written in the same transaction as the change and cleared once Kamailio dropped them."""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.i18n import _
from reconciler.providers.sip.diff import ActualLines, Subscriber

META = """CREATE TABLE IF NOT EXISTS reconciler_line (
    username VARCHAR(64) NOT NULL, domain VARCHAR(64) NOT NULL, holder VARCHAR(64), unit VARCHAR(64),
    secret_mark VARCHAR(16) NOT NULL, PRIMARY KEY (username, domain))"""  # not for people


UNREGISTER = """CREATE TABLE IF NOT EXISTS reconciler_unregister (
    username VARCHAR(64) NOT NULL, domain VARCHAR(64) NOT NULL, since VARCHAR(32) NOT NULL,
    PRIMARY KEY (username, domain))"""  # not for people


def _has(conn: sqlite3.Connection, table: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"  # not for people
    return conn.execute(query, (table,)).fetchone() is not None


def connect(database: str) -> sqlite3.Connection:
    try:
        # check_same_thread=False: a run opens its targets on a thread of its own (run/connections.py)
        # and then uses this connection from the main thread only, never from two at once.
        conn = sqlite3.connect(f"{Path(database).absolute().as_uri()}?mode=rw", uri=True, timeout=15, isolation_level=None,
                               check_same_thread=False)
        conn.execute("SELECT 1 FROM subscriber LIMIT 1")  # not for people
    except sqlite3.Error as exc:
        raise ReconcilerError(_("cannot open the registrar's database {database}: {error}",
                                database=database, error=exc)) from None
    return conn


def mark(ha1: str) -> str:
    return hashlib.sha256(ha1.encode("ascii")).hexdigest()[:16]


def read(conn: sqlite3.Connection, domain: str) -> ActualLines:
    """Every subscriber of the domain with the reconciler's record of it: one query."""
    if not _has(conn, "reconciler_line"):
        rows = conn.execute("SELECT username FROM subscriber WHERE domain = ?", (domain,)).fetchall()  # not for people
        return ActualLines({u: Subscriber(u, False) for (u,) in rows})  # a plan never writes: nothing owned yet
    rows = conn.execute(
        "SELECT s.username, s.ha1, m.holder, m.unit, m.secret_mark, m.username IS NOT NULL "  # not for people
        "FROM subscriber s LEFT JOIN reconciler_line m ON m.username = s.username AND m.domain = s.domain "
        "WHERE s.domain = ?",
        (domain,)).fetchall()
    subscribers = {}
    for username, ha1, holder, unit, secret_mark, managed in rows:
        subscribers[username] = Subscriber(username, bool(managed), holder, unit,
                                           secret_drift=bool(managed) and mark(ha1 or "") != secret_mark)
    unregister = dict(conn.execute(
        "SELECT username, since FROM reconciler_unregister WHERE domain = ?",  # not for people
        (domain,)).fetchall()) if _has(conn, "reconciler_unregister") else {}
    return ActualLines(subscribers, unregister)
