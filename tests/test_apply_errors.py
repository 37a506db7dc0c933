"""Apply's error paths, with a stand-in for the LDAP connection (the lab cannot be made to fail
this way on purpose)."""
from __future__ import annotations

import csv

from ldap3.core.exceptions import LDAPException

from reconciler.credentials import CredentialFile
from reconciler.plan import Outcome
from reconciler.providers.ad.apply import ADApplier
from reconciler.providers.ad.diff import ActualDirectory, diff

from test_diff import TARGET, account, desired_dir


class ConnectionThatEchoesTheRequest:
    """Fails every add with an error text that repeats the request, password included."""

    result = {}

    def add(self, dn, classes, attributes):
        password = attributes["unicodePwd"].decode("utf-16-le").strip('"')
        raise LDAPException(f"server refused add of {dn} with password {password}")


def test_a_failed_alta_never_puts_the_password_in_its_error(tmp_path):
    changes, _ = diff(desired_dir(account("E1", "jnunez")), ActualDirectory({}), TARGET, "2026-11-22")
    alta = next(c for c in changes if c.kind == "account")
    credentials = CredentialFile(tmp_path, "run")
    applier = ADApplier(ConnectionThatEchoesTheRequest(), TARGET, credentials, {})
    outcome = Outcome(alta)
    applier._alta(outcome)
    credentials.close()
    password = next(csv.DictReader(credentials.path.open(encoding="utf-8")))["password"]
    assert outcome.status == "failed"
    assert "with password ********" in outcome.error and password not in outcome.error
