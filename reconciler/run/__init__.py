"""A reconcile run: planning, applying, locks and recovery."""
from __future__ import annotations

from reconciler.i18n import Message, when


class Moment(Message):
    """A moment inside a kept message (a lock's expiry, when a stopped run started): its value
    is the ISO text it was given, so records, JSON and fingerprints stay the same in every
    language and zone; shown, it is i18n.when() (the institution's zone and language)."""

    def __new__(cls, value) -> "Moment":
        return super().__new__(cls, "" if value is None else str(value))

    def __str__(self) -> str:
        return when(str.__str__(self))

    def __reduce__(self):
        return (Moment, (str.__str__(self),))
