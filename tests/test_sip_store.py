"""The registrar's database as the SIP provider opens it, on SQLite (no server needed; the
PostgreSQL side runs against the lab's server in test_phone_lab.py): a run that only reads opens
it read-only whatever the file allows, and the reconciler's own tables are made once, when
missing, so the right to create them can be taken back afterwards."""
from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.providers.sip import store
from reconciler.providers.sip.target import DatabaseSettings, SipTarget
from reconciler.config.inventory import SecretSource

SUBSCRIBER = "CREATE TABLE subscriber (id INTEGER PRIMARY KEY, username TEXT, domain TEXT, ha1 TEXT)"


def _database(tmp_path) -> DatabaseSettings:
    path = tmp_path / "kamailio.db"
    with sqlite3.connect(path) as conn:
        conn.execute(SUBSCRIBER)
        conn.execute("INSERT INTO subscriber (username, domain, ha1) VALUES ('4401', 'salud.lab', 'x')")
    path.chmod(0o600)
    return DatabaseSettings(path=str(path))


def test_a_run_that_only_reads_opens_the_database_read_only(tmp_path):
    db = store.connect(_database(tmp_path), read_only=True)
    try:
        assert db.execute("SELECT username FROM subscriber") == [("4401",)]
        with pytest.raises(store.DatabaseError, match="readonly"):
            db.execute("DELETE FROM subscriber")
        with pytest.raises(store.DatabaseError):
            store.ensure_tables(db)
    finally:
        db.close()


def test_the_reconcilers_tables_are_made_once_and_only_when_missing(tmp_path):
    settings = _database(tmp_path)
    db = store.connect(settings)
    try:
        assert not db.has("reconciler_line")
        store.ensure_tables(db)
        assert db.has("reconciler_line") and db.has("reconciler_unregister")
        statements = []
        db._conn.set_trace_callback(statements.append)
        store.ensure_tables(db)  # present: no CREATE is even sent (a role without CREATE still applies)
        assert not [s for s in statements if s.lstrip().upper().startswith("CREATE")]
    finally:
        db.close()


def test_plans_read_as_the_read_only_role_and_read_only(tmp_path):
    writer = DatabaseSettings(url="postgresql://reconciler@pbx.salud.lab/kamailio?sslmode=verify-full",
                              password=SecretSource(env="W"),
                              read=DatabaseSettings(url="postgresql://lectura@pbx.salud.lab/kamailio?sslmode=verify-full",
                                                    password=SecretSource(env="R")))
    target = SipTarget(name="phone", domain="salud.lab", database=writer, rpc_url="https://pbx.salud.lab:5071/RPC",
                       audit_dir=str(tmp_path), credentials_dir=str(tmp_path))
    reading = target.for_reading()
    assert reading.reading and reading.database.url.startswith("postgresql://lectura@")
    assert not target.reading and target.database is writer
    alone = SipTarget(name="phone", domain="salud.lab", database=_database(tmp_path), rpc_url="http://127.0.0.1:5071",
                      audit_dir=str(tmp_path), credentials_dir=str(tmp_path))
    assert alone.for_reading().reading and alone.for_reading().database == alone.database  # no read role: same, read-only


class _Connection:
    """What psycopg.connect hands back, as far as Database looks at it (no server needed)."""

    def __init__(self, host: str, ssl: bool):
        self.pgconn = type("PGconn", (), {"ssl_in_use": ssl})()
        self.info = type("Info", (), {"host": host, "hostaddr": ""})()
        self.closed = False

    def execute(self, sql, params=()):
        return type("Cursor", (), {"description": None, "fetchall": lambda self: []})()

    def close(self):
        self.closed = True


def _connecting(monkeypatch, host: str, ssl: bool) -> list[dict]:
    import psycopg

    calls = []

    def connect(url, **kwargs):
        calls.append({"url": url, **kwargs})
        calls.append(_Connection(host, ssl))
        return calls[-1]
    monkeypatch.setattr(psycopg, "connect", connect)
    monkeypatch.setenv("PBX_DB", "s3cret")
    return calls


def test_a_session_keeps_the_urls_options_and_adds_its_limits_and_read_only(monkeypatch):
    calls = _connecting(monkeypatch, "pbx.salud.lab", ssl=True)
    url = "postgresql://lectura@pbx.salud.lab/kamailio?sslmode=verify-full&options=-c%20search_path%3Dkamailio"
    db = store.connect(DatabaseSettings(url=url, password=SecretSource(env="PBX_DB")), read_only=True)
    db.close()
    kwargs = calls[0]
    assert kwargs["password"] == "s3cret" and kwargs["url"] == url
    options = kwargs["options"]
    assert options.startswith("-c search_path=kamailio ")  # the URL's own, kept
    assert "statement_timeout=60000" in options and "lock_timeout=15000" in options
    assert options.endswith("-c default_transaction_read_only=on")
    assert kwargs["keepalives"] == 1 and kwargs["connect_timeout"] == 10


def test_a_remote_server_reached_without_tls_is_refused_before_any_query(monkeypatch):
    calls = _connecting(monkeypatch, "pbx.salud.lab", ssl=False)
    with pytest.raises(Exception, match="was reached without TLS"):
        store.connect(DatabaseSettings(url="postgresql://r@pbx.salud.lab/kamailio?sslmode=verify-full",
                                       password=SecretSource(env="PBX_DB")))
    assert calls[1].closed
    calls = _connecting(monkeypatch, "127.0.0.1", ssl=False)  # on the runner itself: no network crossed
    store.connect(DatabaseSettings(url="postgresql://r@127.0.0.1/kamailio", password=SecretSource(env="PBX_DB"))).close()


def test_a_mysql_url_is_read_whole_and_accepted_with_tls_off_the_runner():
    from reconciler.providers.sip.target import mysql_url_problems, read_mysql_url

    url = "mysql://reconciler@pbx.salud.lab:3306/kamailio?sslmode=verify-full&sslrootcert=/etc/reconciler/ca.pem"
    assert mysql_url_problems(url) == [] and mysql_url_problems("mariadb://r@127.0.0.1/kamailio") == []
    address = read_mysql_url(url)
    assert (address.host, address.port, address.user, address.database, address.sslrootcert, address.remote) == (
        "pbx.salud.lab", 3306, "reconciler", "kamailio", "/etc/reconciler/ca.pem", True)
    assert DatabaseSettings(url=url).engine == "mysql" and DatabaseSettings(path="/x.db").engine == "sqlite"


def test_mysql_is_spoken_to_in_its_own_words():
    assert store.mysql_dialect("INSERT INTO t (a) VALUES (?) ON CONFLICT DO NOTHING") == "INSERT IGNORE INTO t (a) VALUES (?)"
    upsert = "INSERT INTO t (k, a) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET a = excluded.a"
    assert store.mysql_dialect(upsert) == "INSERT INTO t (k, a) VALUES (?, ?) ON DUPLICATE KEY UPDATE a = VALUES(a)"
    assert store.mysql_dialect("SELECT excluded FROM t") == "SELECT excluded FROM t"  # only what an upsert says


_NAME = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", min_size=1, max_size=12)
_HOST = _NAME | st.ip_addresses(v=4).map(str) | st.ip_addresses(v=6).map(lambda a: f"[{a}]")
_VALUE = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-", max_size=12)
_KEYS = st.lists(st.sampled_from(["sslmode", "sslrootcert", "connect_timeout", "application_name", "password",
                                  "service", "host", "options"]), max_size=3)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["postgresql", "postgres"]), _NAME, _HOST, st.none() | st.integers(0, 99999), _NAME, _KEYS,
       st.lists(_VALUE, min_size=3, max_size=3))
def test_a_plain_url_is_read_as_libpq_reads_it_without_psycopg(scheme, user, host, port, dbname, keys, values):
    """The registrar's URL is checked as libpq reads it; the plain shape inventories write is
    read without importing psycopg (on every command), and must read exactly as libpq does.
    Any other (a password, a key twice, a key libpq reads otherwise) is left to libpq."""
    from psycopg.conninfo import conninfo_to_dict

    from reconciler.providers.sip.target import _plain_url

    query = "&".join(f"{k}={v}" for k, v in zip(keys, values))
    url = f"{scheme}://{user}@{host}{'' if port is None else f':{port}'}/{dbname}{'?' + query if query else ''}"
    plain = _plain_url(url)
    if plain is not None:
        assert plain == conninfo_to_dict(url)
    plain_keys = {"sslmode", "sslrootcert", "connect_timeout", "application_name"}
    assert (plain is not None) == (len(set(keys)) == len(keys) and set(keys) <= plain_keys)


def test_the_labs_and_the_examples_urls_are_read_without_psycopg():
    from reconciler.providers.sip.target import _plain_url

    for url in ("postgresql://reconciler@127.0.0.1:5432/kamailio",
                "postgresql://reconciler_lectura@pbx.salud.lab/kamailio?sslmode=verify-full"):
        assert _plain_url(url) is not None
