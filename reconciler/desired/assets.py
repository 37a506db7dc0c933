"""desired_state/assets/: the phone lines and equipment database (SESVER 002), loaded and
validated with file, line and field like the people.

    desired_state/assets/lines.yaml       `lines:` extensions and carrier lines
    desired_state/assets/equipment.yaml   `equipment:` computers, printers, radios, phones...

Checks beyond the schema: a number or inventory number declared twice, an AD computer name
used twice, a desktop or laptop without one, unknown units and people, an equipment baja
without its technical verdict (or a verdict on equipment still in use).  Assets assigned to a
person who is a baja are not an error: the person's baja releases them (`released`).
"""
from __future__ import annotations

import math

from reconciler.desired.checks import FileCheck, open_file, shown
from reconciler.desired.files import DesiredFiles
from reconciler.desired.model import Decommission, Equipment, Person, PhoneLine, Source, solicitud_of
from reconciler.i18n import Message, _, lazy

LINES = "assets/lines.yaml"
EQUIPMENT = "assets/equipment.yaml"
COMPUTERS = ("desktop", "laptop")
NUMBER_DIGITS = {"extension": (3, 6), "carrier": (10, 15)}  # a desk phone's extension; a carrier's full number


def _line(item: dict, source: Source) -> PhoneLine:
    return PhoneLine(
        number=item["number"], kind=item["kind"], unit=item["unit"], status=item["status"],
        solicitud=solicitud_of(item["solicitud"]), source=source, person=item.get("person"),
        carrier=item.get("carrier"), master_account=item.get("master_account"), plan=item.get("plan"),
        monthly_cost=item.get("monthly_cost"), services=tuple(item.get("services") or ()))


def _equipment(item: dict, source: Source) -> Equipment:
    verdict = item.get("decommission")
    return Equipment(
        inventory_number=item["inventory_number"], serial=item["serial"], type=item["type"], brand=item["brand"],
        model=item["model"], unit=item["unit"], status=item["status"], source=source, person=item.get("person"),
        location=item.get("location"), hostname=item.get("hostname"),
        decommission=Decommission(verdict["reason"], verdict["date"], verdict["dictamen"], verdict.get("detail"),
                                  tuple(verdict.get("reusable_parts") or ())) if verdict else None,
        solicitud=solicitud_of(item["solicitud"]) if item.get("solicitud") else None)


def _amount(cost: float) -> bool:
    """A cost a float can hold (bills are compared and printed as floats): not nan or infinite,
    and not a whole number too large for one (0xfff..., which isfinite cannot even convert)."""
    try:
        return math.isfinite(cost)
    except OverflowError:
        return False


def _read(files: DesiredFiles, rel: str, top: str, checks: list[FileCheck]) -> tuple[FileCheck | None, list]:
    check, data, usable = open_file(files, rel, checks)
    if not usable or data is None:
        return None, []
    bad = check.validate(data, top)
    if not isinstance(data, dict) or not isinstance(data.get(top), list):
        if not check.problems:
            check.add((), _("expected a mapping with a top-level '{name}:' list", name=top))
        return None, []
    return check, [(i, item) for i, item in enumerate(data[top]) if (top, i) not in bad]


def _at(check: FileCheck, path: tuple) -> str:
    """Where a declaration is, for a message: file:line."""
    return f"{check.display}:{check.line(path)}"


def _references(check: FileCheck, where: tuple, item, units: dict, people: dict[str, Person]) -> None:
    if units and item.unit not in units:
        check.add(where + ("unit",), _("unknown unit {unit!r} (declared units are in desired_state/units.yaml)",
                                       unit=item.unit))
    if item.person is not None and item.person not in people:
        check.add(where + ("person",), _("no person with employee key {key!r} is declared", key=item.person))


def read_assets(files: DesiredFiles, checks: list[FileCheck], units: dict,
                people: list[Person]) -> tuple[list[PhoneLine], list[Equipment]]:
    by_key = {p.employee_key: p for p in people}
    lines, equipment = [], []
    check, items = _read(files, LINES, "lines", checks)
    first: dict[str, tuple] = {}
    for index, item in items:
        where = ("lines", index)
        line = _line(item, Source(check.display, None, where))
        _references(check, where, line, units, by_key)
        if line.kind == "carrier" and not (line.carrier and line.master_account):
            check.add(where + ("carrier",), _("a carrier line needs its carrier and master_account"))
        low, high = NUMBER_DIGITS[line.kind]
        if not low <= len(line.number) <= high:
            if line.kind == "extension":
                message = _("{number!r} is not an extension number ({low} to {high} digits)",
                            number=line.number, low=low, high=high)
            else:
                message = _("{number!r} is not a carrier line's number ({low} to {high} digits)",
                            number=line.number, low=low, high=high)
            check.add(where + ("number",), message)
        if line.monthly_cost is not None and not _amount(line.monthly_cost):
            check.add(where + ("monthly_cost",), _("{value} is not an amount: write the cost in pesos, like 299.00",
                                                   value=shown(line.monthly_cost)))
        if line.number in first:
            check.add(where + ("number",), _("number {number} is already declared at {where}", number=line.number,
                                             where=_at(check, first[line.number])))
            continue
        first[line.number] = where
        lines.append(line)
    check, items = _read(files, EQUIPMENT, "equipment", checks)
    first, names = {}, {}
    for index, item in items:
        where = ("equipment", index)
        thing = _equipment(item, Source(check.display, None, where))
        _references(check, where, thing, units, by_key)
        if thing.status == "baja" and thing.decommission is None:
            check.add(where + ("decommission",), _("a baja needs its technical verdict: reason (obsolescencia, "
                                                   "sobrecosto_reparacion or falla_irreparable), date and dictamen"))
        if thing.decommission is not None and thing.status != "baja":
            check.add(where + ("status",), _("equipment with a decommission verdict must have status: baja"))
        if thing.type in COMPUTERS and not thing.hostname:
            check.add(where + ("hostname",), _("a desktop or laptop needs its hostname: its AD computer name"))
        if thing.inventory_number in first:
            check.add(where + ("inventory_number",), _(
                "inventory number {number} is already declared at {where}", number=thing.inventory_number,
                where=_at(check, first[thing.inventory_number])))
            continue
        host = (thing.hostname or "").casefold()
        if host and host in names:
            check.add(where + ("hostname",), _("hostname {hostname} is already used at {where}",
                                               hostname=thing.hostname,
                                               where=_at(check, names[host])))
        first[thing.inventory_number] = where
        names.setdefault(host, where + ("hostname",))
        equipment.append(thing)
    return lines, equipment


def holder(item: PhoneLine | Equipment, people: dict[str, Person]) -> str | None:
    """Who holds it now: its declared person, unless that person is a baja (released)."""
    person = people.get(item.person) if item.person else None
    return item.person if person is not None and person.active else None


def released(lines: list[PhoneLine], equipment: list[Equipment], people: dict[str, Person]) -> list[Message]:
    """Assets still declared as assigned to a person who is a baja: the baja releases them in
    the same plan; equipment goes back to its unit, unassigned, to be collected.  The notes are
    a plan's warnings: Messages, kept in the source language."""
    notes = []
    for line in lines:
        if line.person and holder(line, people) is None and line.status == "activa":
            who = people[line.person].display_name
            if line.kind == "extension":
                notes.append(lazy("line {number} of {who} ({key}, baja): released, its extension is removed; "
                                  "update desired_state/{file}", number=line.number, who=who, key=line.person,
                                  file=LINES))
            else:
                notes.append(lazy("line {number} of {who} ({key}, baja): released, cancel it with the carrier; "
                                  "update desired_state/{file}", number=line.number, who=who, key=line.person,
                                  file=LINES))
    for thing in equipment:
        if thing.person and holder(thing, people) is None and thing.status != "baja":
            who = people[thing.person].display_name
            notes.append(lazy("collect {type} {number} ({brand} {model}, serial {serial}) from {who} ({key}, baja): "
                              "returned to {unit}, unassigned", type=thing.type, number=thing.inventory_number,
                              brand=thing.brand, model=thing.model, serial=thing.serial, who=who,
                              key=thing.person, unit=thing.unit))
    return notes
