"""Initial passwords: generated at apply time, handed over through a root-only file.

A password never enters a Change, a plan, a log line or the audit trail.  Until credential
delivery (the carta responsiva) has its own channel, each apply run writes the passwords it
set to one CSV file, mode 0600 in a 0700 directory, and reports only the file's path.  The
line is written *before* the account is created, so a crash between the two never leaves an
account whose password nobody knows.
"""
from __future__ import annotations

import csv
import os
import secrets
import string
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.i18n import _
from reconciler.spreadsheet import csv_row

_LOWER, _UPPER, _DIGITS, _SYMBOLS = string.ascii_lowercase, string.ascii_uppercase, string.digits, "-_.!#%+=?"
_ALL = _LOWER + _UPPER + _DIGITS + _SYMBOLS


def generate_password(avoid: tuple[str, ...] = (), length: int = 20) -> str:
    """A random password meeting AD complexity: every character class, no part of the names.

    AD refuses a password that contains the account name or any 3+ character token of the
    display name, so those are avoided rather than left to fail at apply time."""
    tokens = [t.casefold() for text in avoid for t in text.replace(",", " ").split() if len(t) >= 3]
    while True:
        chars = [secrets.choice(cls) for cls in (_LOWER, _UPPER, _DIGITS, _SYMBOLS)]
        chars += [secrets.choice(_ALL) for _ in range(length - len(chars))]
        secrets.SystemRandom().shuffle(chars)
        password = "".join(chars)
        # Not one a spreadsheet would read as a formula (the lab's CSV neutralises such a cell,
        # which would change the password a person copies out of it).
        if not any(t in password.casefold() for t in tokens) and password[0] not in "-+=":
            return password


class CredentialFile:
    """One run's initial passwords; created on first use."""

    HEADER = ("account", "upn", "employee_key", "folio", "password")

    def __init__(self, directory: str | Path, run_id: str):
        self.path = Path(directory) / f"{run_id}.csv"
        self._fd: int | None = None
        self.count = 0

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.path.parent, 0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ReconcilerError(_("cannot create the credentials file {path}: {error}",
                                     path=self.path, error=exc.strerror)) from None
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, self._row(self.HEADER))
        return fd

    @staticmethod
    def _row(values) -> bytes:
        return csv_row(values).encode("utf-8")

    def record(self, account: str, upn: str, employee_key: str, folio: str | None, password: str) -> None:
        if self._fd is None:
            self._fd = self._open()
        os.write(self._fd, self._row((account, upn, employee_key, folio or "", password)))
        self.count += 1

    @classmethod
    def rows(cls, path: str | Path) -> list[dict]:
        """The rows of a run's file, by HEADER's names; none when it cannot be read."""
        try:
            with Path(path).open(newline="", encoding="utf-8") as f:
                return [r for r in csv.DictReader(f) if list(r) == list(cls.HEADER)]
        except (OSError, UnicodeDecodeError, csv.Error):
            return []

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
