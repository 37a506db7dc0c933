"""Generated people's mailboxes and extensions, declared and brought into place the fast way:
what bench_mail.py, bench_phone.py and lab_load.py share.

Both ways write exactly what an apply writes, through the reconciler's own code, and leave out
only what a plan never reads:
  - mail: every alta staged by the applier into the registry, and the registry and its maps
    written once, locally (the lab's mail server is this machine); doveadm is not asked to
    create 100,000 mailboxes' folders;
  - phone: the registrar provider's own apply, every alta in one transaction, with its secrets
    thrown away as they are made (no phone can register with a loaded line until its secret is
    rotated: the limit of the method, like loaded accounts without a password).
"""
from __future__ import annotations

import time

from reconciler.plan import Outcome
from reconciler.providers.contract import PlanRequest
from reconciler.providers.mail.apply import MailApplier
from reconciler.providers.mail.host import LocalHost
from reconciler.providers.mail.provider import MailProvider
from reconciler.providers.mail.registry import Registry, maps
from reconciler.providers.sip.provider import SipProvider


def with_mailboxes(by_unit: dict[str, list[dict]], domain: str = "salud.lab") -> dict[str, list[dict]]:
    """Every person gets a mailbox; the employee key as local part keeps addresses apart."""
    for people in by_unit.values():
        for person in people:
            local = person["employee_key"].lower().replace("-", ".")
            person["mailbox"] = {"address": f"{local}@{domain}"}
    return by_unit


def extensions(by_unit: dict[str, list[dict]], first: int = 100001) -> list[dict]:
    """One extension per person, numbered from `first`, as desired_state/assets/lines.yaml lists them."""
    lines = []
    for unit, people in by_unit.items():
        for person in people:
            lines.append({"number": str(first + len(lines)), "kind": "extension", "unit": unit,
                          "person": person["employee_key"], "status": "activa", "solicitud": person["solicitud"]})
    return lines


def mailboxes_in_place(target, state, today: str) -> int:
    """Write the registry and maps as an apply of every planned change would; the number of
    registry entries."""
    with MailProvider(target) as provider:
        planned = provider.plan(PlanRequest(state, today))
        assert not planned.conflicts, planned.conflicts[:3]
        registry = Registry.read(target.registry)
        applier = MailApplier(target, provider.api, today)
        for change in planned.changes:
            if change.kind != "mail-maps":
                applier._stage(Outcome(change), registry)
    LocalHost().write(target.registry, registry.text())
    derived = maps(registry.entries(), target.new_mail_after_baja)
    for name in ("recipients", "aliases", "denied"):
        LocalHost().write(getattr(target, name), derived[name])
    time.sleep(1.1)  # Dovecot re-reads the registry at most once a second
    return len(registry.entries())


class Discarded:
    """Where the registrar's apply records each new secret: nowhere."""

    count = 0

    def record(self, *args) -> None:
        self.count += 1


def lines_in_place(target, state, today: str, credentials=None) -> int:
    """The registrar provider's own apply of every planned change, in one transaction; the
    number applied.  `credentials`: where secrets go (default: nowhere)."""
    with SipProvider(target) as provider:
        planned = provider.plan(PlanRequest(state, today))
        assert not planned.conflicts, planned.conflicts[:3]
        outcomes = provider.apply(planned, planned.changes, credentials or Discarded())
    failed = [o.error for o in outcomes if o.status != "applied"]
    assert not failed, failed[:3]
    return len(outcomes)
