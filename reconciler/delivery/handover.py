"""What an envelope says around its secret, and what the carta says was handed over: both read
from the desired state the apply is applying, in the institution's language."""
from __future__ import annotations

import datetime as dt

from reconciler import i18n
from reconciler.desired.model import DesiredState
from reconciler.i18n import _


def letter(*, account: str, upn: str, employee_key: str, folio: str, secret: str, person: str = "") -> str:
    """The text sealed in one envelope file: who, which request, the login, the secret."""
    lines = [_("Folio: {folio}", folio=folio) if folio else "",
             _("Person: {name} ({key})", name=person, key=employee_key) if employee_key else "",
             _("Account: {account}", account=account),
             _("Log in as: {login}", login=upn) if upn and upn != account else "",
             _("Initial secret: {secret}", secret=secret),
             _("Change it the first time you log in. Keep it to yourself; nobody from IT will ever ask for it.")]
    return "\n".join(line for line in lines if line) + "\n"


def handover(state: DesiredState, holder: str, folio: str, institution: str, day: dt.date | None = None,
             upn_suffix: str | None = None):
    """The carta's facts for `holder` under `folio`, or None when the holder is no person (a
    unit's line).  `upn_suffix`: the directory's, for the sign-in name (account@suffix)."""
    from reconciler.delivery.carta import Handover, Item

    person = state.person(holder)
    if person is None:
        return None
    unit = state.units.get(person.unit)
    lines = tuple(sorted(line.number for line in state.lines
                         if line.person == holder and line.kind == "extension" and line.status == "activa"))
    items = tuple(Item(e.inventory_number, e.type, e.brand, e.model, e.serial) for e in state.equipment
                  if e.person == holder and e.status == "en_uso")
    return Handover(institution=institution, unit_key=person.unit, unit_name=unit.name if unit else person.unit,
                    folio=folio, day=day or dt.datetime.now(i18n.zone()).date(), person_name=person.display_name,
                    employee_key=holder, title=person.title, account=state.account_names.get(holder),
                    upn=f"{state.account_names[holder]}@{upn_suffix}" if upn_suffix and holder in state.account_names
                    else None,
                    mailbox=person.mailbox.address if person.mailbox else None, extensions=lines, equipment=items)
