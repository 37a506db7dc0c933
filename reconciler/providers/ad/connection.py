"""Opening an LDAPS connection to an AD target, with certificates validated by default."""
from __future__ import annotations

import ssl
import time

from ldap3 import BASE, NONE, Connection, Server, Tls, set_config_parameter
from ldap3.core import exceptions as ldap_errors
from ldap3.core.exceptions import LDAPException
from ldap3.strategy.sync import SyncStrategy

from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy
from reconciler.providers.ad.target import ADTarget

# Plain dicts for attributes: ldap3's case-insensitive dict costs more than the rest of a bulk
# read.  read.py maps the names the server returns to their canonical spelling itself.
set_config_parameter("CASE_INSENSITIVE_ATTRIBUTE_NAMES", False)


# Identities are binary GUIDs (an object's, a DC's: delta.py): hex, never lossy text.
BINARY = frozenset({"objectguid", "invocationid"})


class _LeanSearchEntries(SyncStrategy):
    """ldap3's synchronous strategy, decoding search entries straight to {dn, attributes}.

    The stock decoder builds every entry twice (raw and decoded) and makes four configuration
    look-ups per value; on a 10,000-account read that is a third of the time.  Only the text
    attributes the reconciler asks for come through here; every other response is ldap3's."""

    def decode_response_fast(self, ldap_message):
        if ldap_message["protocolOp"] != 4:  # not a searchResEntry
            return super().decode_response_fast(ldap_message)
        dn, attributes = ldap_message["payload"][0][3], ldap_message["payload"][1][3]
        decoded = {}
        for a in attributes:
            name = bytes(a[3][0][3]).decode("utf-8")
            if ";range=" in name.lower():  # ldap3 asks for the other ranges itself (auto_range) from
                return super().decode_response_fast(ldap_message)  # its own raw/decoded pair
            binary = name.lower() in BINARY
            decoded[name] = [bytes(v[3]).hex() if binary else bytes(v[3]).decode("utf-8", "replace")
                             for v in a[3][1][3]]
        # ldap3's post-processing fills requested-but-absent attributes by looking at
        # raw_attributes: it must hold the same names, so it is the same dict.
        return {"type": "searchResEntry", "dn": bytes(dn).decode("utf-8", "replace"),
                "attributes": decoded, "raw_attributes": decoded}


def connect(target: ADTarget) -> Connection:
    bind_dn, secret = target.login
    password = secret.read()
    tls = Tls(
        validate=ssl.CERT_REQUIRED if target.validate_tls else ssl.CERT_NONE,
        ca_certs_file=target.ca_file,
        version=ssl.PROTOCOL_TLS_CLIENT,
    )
    # get_info=NONE: the schema is not needed and reading it costs a round trip per run.
    server = Server(target.host, port=target.port, use_ssl=True, tls=tls, get_info=NONE, connect_timeout=10)
    try:
        # check_names=False: without the schema (get_info=NONE) ldap3 would only format each
        # value to the same string, a million times on a large read.
        conn = Connection(server, user=bind_dn, password=password, auto_bind=True,
                          raise_exceptions=False, receive_timeout=120, check_names=False)
        # Swap the class, not the object: Connection keeps bound methods of its strategy.
        conn.strategy.__class__ = _LeanSearchEntries
        return conn
    except ldap_errors.LDAPBindError:
        raise ReconcilerError(_(
            "target {target}: the directory at {url} refused the bind as {bind_dn} (password from {source})",
            target=target.name, url=target.url, bind_dn=bind_dn, source=secret.describe())) from None
    except ldap_errors.LDAPSocketOpenError as exc:
        text = str(exc).strip("()\"',")
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
            if target.ca_file:
                raise ReconcilerError(_(
                    "target {target}: the certificate of {url} is not trusted (tls.ca_file is {ca_file}): {error}",
                    target=target.name, url=target.url, ca_file=target.ca_file, error=text)) from None
            raise ReconcilerError(_(
                "target {target}: the certificate of {url} is not trusted "
                "(tls.ca_file is not set: the system CAs are used): {error}",
                target=target.name, url=target.url, error=text)) from None
        raise ReconcilerError(_("target {target}: cannot reach {url}: {error}",
                                target=target.name, url=target.url, error=text)) from None
    except ldap_errors.LDAPException as exc:
        raise ReconcilerError(_("target {target}: LDAP error connecting to {url}: {error}",
                                target=target.name, url=target.url, error=exc)) from None


def answers(conn: Connection | None) -> bool:
    """Whether the connection still answers (one read of the root DSE; Samba has no WhoAmI):
    a server drops an idle connection (AD's MaxConnIdleTime, 900 s by default) without the
    client noticing."""
    if conn is None or conn.closed:
        return False
    try:
        return bool(conn.search("", "(objectClass=*)", BASE, attributes=["1.1"]))
    except (LDAPException, OSError):
        return False


def lost(exc: BaseException) -> bool:
    """Whether an LDAP error means the connection itself is gone, not a refusal."""
    return isinstance(exc, (ldap_errors.LDAPSocketOpenError, ldap_errors.LDAPSocketReceiveError,
                            ldap_errors.LDAPSocketSendError, ldap_errors.LDAPSessionTerminatedByServerError,
                            ldap_errors.LDAPSocketCloseError, OSError))


def reconnect(target: ADTarget, attempts: int = 3, pause: float = 1.0) -> Connection:
    """A new connection, tried `attempts` times with a growing pause (a DC restarting, a
    network blip); the last failure is raised as a ReconcilerError."""
    for attempt in range(1, attempts + 1):
        try:
            return connect(target)
        except ReconcilerError:
            if attempt == attempts:
                raise
            time.sleep(pause * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def unbind_quietly(conn: Connection | None) -> None:
    """Close a connection that may already be dead: an error here must never hide a run's
    result."""
    if conn is None:
        return
    try:
        conn.unbind()
    except (LDAPException, OSError):
        pass


def ldap_error(conn: Connection, what: str) -> str:
    r = conn.result
    detail = f"{r.get('description')} {r.get('message', '')}".strip()
    return lazy("{action}: {error}", action=what, error=detail)
