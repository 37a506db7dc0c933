"""How the secrets an apply makes reach their owners (the inventory's `delivery:` block).

Every alta and password reset makes a secret: an account's initial password, an extension's
SIP secret.  With `mode: sealed` (the default) each one is encrypted with age, the moment it is
made, to the recipients declared for the person's unit (or `"*"`, for every unit), and leaves
the runner only as a sealed envelope (reconciler/delivery/).  Recipients are age X25519 keys
(`age1…`) or SSH public keys (`ssh-ed25519 …`, `ssh-rsa …`), readable by the standard `age`.

`mode: clear-text-file-lab-only` writes them in clear to a root-only CSV per run instead, as
labs may: the name says what it is, and every apply that uses it says so.

The block is part of the inventory, so a run uses its newest approved version and any change
to it needs the privileged number of approvals (approval/inventory_review.py): who receives a
secret is decided like where a password is sent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from reconciler.i18n import _

SEALED = "sealed"
CLEAR_TEXT = "clear-text-file-lab-only"
EVERY_UNIT = "*"
DEFAULT_ENVELOPE_DAYS = 30


@dataclass(frozen=True)
class Recipient:
    name: str
    key: str = ""  # an age recipient or an SSH public key line
    key_file: str = ""  # a lab's: the key read from this file when a secret is sealed

    def text(self) -> str:
        if self.key or not self.key_file:
            return self.key
        try:
            return Path(self.key_file).read_text(encoding="utf-8").strip().splitlines()[0]
        except (OSError, UnicodeDecodeError, IndexError) as exc:
            raise ValueError(_("cannot read {path}: {error}", path=self.key_file,
                               error=getattr(exc, "strerror", None) or _("empty"))) from None

    def fingerprint(self) -> str:
        """What the audit record keeps of the key a secret was sealed to: which key, not the key."""
        import hashlib

        return "sha256:" + hashlib.sha256(self.text().encode("utf-8")).hexdigest()[:16]

    def sealer(self):
        """pyrage's recipient for this key; raises ValueError when the key is not one."""
        import pyrage

        key = self.text()
        try:
            if key.startswith("age1"):
                return pyrage.x25519.Recipient.from_str(key)
            return pyrage.ssh.Recipient.from_str(key)
        except pyrage.RecipientError as exc:
            raise ValueError(_("not an age recipient (age1…) or an SSH public key: {error}", error=exc)) from None


@dataclass(frozen=True)
class Delivery:
    mode: str = SEALED
    envelope_days: int = DEFAULT_ENVELOPE_DAYS
    recipients: dict[str, tuple[Recipient, ...]] = field(default_factory=dict)  # unit key or "*" -> who
    institution: str = ""  # the institution's name, for the carta
    requesters: dict[str, tuple[Recipient, tuple[str, ...]]] = field(default_factory=dict)  # email -> (who, units)

    @classmethod
    def from_inventory(cls, data: object) -> Delivery | None:
        """The block as declared (already checked by the schema), or None without one."""
        block = data.get("delivery") if isinstance(data, dict) else None
        if not isinstance(block, dict):
            return None
        recipients = {unit: tuple(Recipient(r["name"], r.get("key", "").strip(), r.get("key_file", "")) for r in people)
                      for unit, people in (block.get("recipients") or {}).items()}
        named = data.get("institution") if isinstance(data.get("institution"), dict) else {}
        requesters = {email.casefold(): (Recipient(r["name"], r["key"].strip()), tuple(r["units"]))
                      for email, r in (block.get("requesters") or {}).items()}
        return cls(block.get("mode", SEALED), block.get("envelope_days", DEFAULT_ENVELOPE_DAYS), recipients,
                   str(named.get("name") or ""), requesters)

    @property
    def sealed(self) -> bool:
        return self.mode == SEALED

    def for_unit(self, unit: str | None) -> tuple[Recipient, ...]:
        return self.recipients.get(unit or "", ()) or self.recipients.get(EVERY_UNIT, ())

    def requester(self, email: str | None, unit: str | None) -> Recipient | None:
        """The requester a solicitud's deliver_to names, when the approved inventory declares them
        for that unit; None otherwise (the secret then goes to the unit's recipients alone)."""
        found = self.requesters.get((email or "").casefold())
        if found is None or not unit or not ("*" in found[1] or unit in found[1]):
            return None
        return found[0]

    def check(self, add: Callable[[tuple, str], None]) -> None:
        """Keys that are not keys; a sealed delivery with nobody to deliver to."""
        for unit, people in self.recipients.items():
            for i, recipient in enumerate(people):
                if recipient.key_file:
                    continue  # read when an apply seals (it checks them all before it starts)
                try:
                    recipient.sealer()
                except ValueError as exc:
                    add(("delivery", "recipients", unit, i, "key"), str(exc))
        for email, (recipient, _units) in self.requesters.items():
            try:
                recipient.sealer()
            except ValueError as exc:
                add(("delivery", "requesters", email, "key"), str(exc))
        if self.sealed and not any(self.recipients.values()):
            add(("delivery", "recipients"), _("a sealed delivery needs at least one recipient (for a unit, or \"*\" "
                                              "for every unit)"))

    def missing_units(self, units) -> list[str]:
        """The units whose secrets would have nobody to be sealed to."""
        return [] if not self.sealed else sorted(u for u in units if not self.for_unit(u))
