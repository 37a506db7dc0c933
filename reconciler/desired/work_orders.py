"""desired_state/work_orders.yaml: the confirmations of work orders, loaded and validated with
file, line and field like the rest of the desired state.

A work order (providers/manual/) is what the reconciler sends to the people who operate a
system with no API; it stays pending until its confirmation lands here by pull request:

    confirmations:
      - folio: OT-SIEMPRE-3F9A0C
        confirmado: {fecha: 2026-12-04, por: Mesa de ayuda SIEMPRE, ticket: SIEMPRE-4411}

Checks beyond the schema: a folio confirmed twice.  Whether a folio names
an order that was issued is the plan's business (the orders are kept beside the desired state,
under refs/reconciler/work-orders/, which validation does not read)."""
from __future__ import annotations

from reconciler.desired.checks import FileCheck, open_file
from reconciler.desired.files import DesiredFiles
from reconciler.desired.model import Confirmation, Source
from reconciler.i18n import _

WORK_ORDERS = "work_orders.yaml"


def read_confirmations(files: DesiredFiles, checks: list[FileCheck]) -> list[Confirmation]:
    check, data, usable = open_file(files, WORK_ORDERS, checks)
    if not usable or data is None:
        return []
    bad = check.validate(data, "work_orders")
    if not isinstance(data, dict) or not isinstance(data.get("confirmations"), list):
        if not check.problems:
            check.add((), _("expected a mapping with a top-level '{name}:' list", name="confirmations"))
        return []
    found, first = [], {}
    for index, item in enumerate(data["confirmations"]):
        where = ("confirmations", index)
        if where in bad:
            continue
        done = item["confirmado"]
        confirmation = Confirmation(item["folio"], done["fecha"], done["por"], done["ticket"],
                                    Source(check.display, check.line(where), where))
        if confirmation.folio in first:
            earlier = f"{check.display}:{check.line(first[confirmation.folio])}"
            check.add(where + ("folio",), _("work order {folio} is already confirmed at {where}",
                                            folio=confirmation.folio, where=earlier))
            continue
        first[confirmation.folio] = where
        found.append(confirmation)
    return found
