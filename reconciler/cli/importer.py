"""`reconciler import`: read what every target that can be imported from holds (the provider
contract's IMPORT capability: a directory's people and computers, hand-made mailboxes, the
registrars' extensions, hand-made firewall rules), write it as desired state, one file per
unit, and print the reconciliation report.  Read-only against every target."""
from __future__ import annotations

import datetime as dt
import json
from contextlib import closing

from rich.console import Console

from reconciler.adoption.firewall import draft
from reconciler.adoption.mapping import load_mapping
from reconciler.adoption.output import report_csv, report_markdown, write_desired
from reconciler.adoption.people import (
    FIREWALL_DRAFT,
    FIREWALL_UNREADABLE,
    Imported,
    Row,
    import_computers,
    import_lines,
    import_people,
    owners_missing,
)
from reconciler.cli import EXIT_OK
from reconciler.config.inventory import load_inventory
from reconciler.desired.load import load_desired_state
from reconciler.desired.source import working_tree
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy, shown, zone
from reconciler.providers import registry
from reconciler.providers.contract import Capability, Provider
from reconciler.providers.found import Existing, ImportRequest


def _kind(target) -> type[Provider]:
    return registry.kind(target.kind).provider_class()


def _directory_target(targets: dict, name: str | None):
    """The one target import draws the people from: named by the mapping, or the only one."""
    holders = {n: t for n, t in targets.items() if _importable(t) and _kind(t).holds_people}
    if name is not None:
        if name not in holders:
            raise ReconcilerError(_("the inventory has no directory target named {name} to import from", name=name))
        return holders[name]
    if len(holders) != 1:
        raise ReconcilerError(_("name the directory target to import from in the mapping (target:); the "
                                "inventory has {n}", n=len(holders)))
    return next(iter(holders.values()))


def _importable(target) -> bool:
    return Capability.IMPORT in _kind(target).capabilities


def _read_all(targets: dict, directory_target, bases: tuple[str, ...]) -> dict[str, Existing]:
    """What every target that can be imported from holds, read-only; people only from one."""
    found = {}
    for name, t in targets.items():
        if not _importable(t):
            continue
        # Never opened, and with the read-only account: import needs none of apply's secrets.
        with closing(_kind(t)(t.for_reading())) as provider:
            found[name] = provider.existing(ImportRequest(people=t is directory_target, search_bases=bases))
    return found


def _firewall_drafts(found: dict[str, Existing], state, imported: Imported, solicitud: dict, today: str) -> None:
    """Every firewall's and router's hand-made rules: drafts, and report rows."""
    for name, existing in found.items():
        for f in existing.rules:
            if f.rule is None:
                imported.rows.append(Row(FIREWALL_UNREADABLE, f"{name}: {f.where}", detail=f.expr, decision=lazy(
                    "express it as declared rules by hand, or keep it by hand outside the reconciler's table")))
                continue
            imported.rules.setdefault(name, []).append((f.where, draft(f, name, state.security, solicitud, today)))
            imported.rows.append(Row(FIREWALL_DRAFT, f"{name}: {f.where}", detail=f.expr, decision=lazy(
                "write its name, unit and justification in the imported file, or delete it if nobody can "
                "explain it; then remove it from the hand-made table")))


def _mailboxes(found: dict[str, Existing]) -> tuple[dict[str, dict], dict[str, str]]:
    """(address -> the mailbox: block to declare, address -> where found) of hand-made mailboxes."""
    declared, where = {}, {}
    for existing in found.values():
        for box in existing.mailboxes:
            block = {"address": box.address.lower()}
            if box.aliases:
                block["aliases"] = sorted(a.lower() for a in box.aliases)
            declared[box.address.casefold()] = block
            where[box.address] = box.where
    return declared, where


def run_import(args) -> tuple[Imported, str]:
    state = load_desired_state(working_tree(args.repo).files)
    mapping = load_mapping(args.mapping, set(state.units))
    targets = load_inventory(args.inventory)
    source = _directory_target(targets, mapping.target)
    found = _read_all(targets, source, mapping.search_bases)
    directory = found[source.name].directory
    mailboxes, addresses = _mailboxes(found)
    by_group = {e.group.casefold(): key for key, e in state.entitlements.items() if e.group}
    now = dt.datetime.now(zone())  # ages compare as instants; the dates written are the institution's
    imported = import_people(directory, mapping, by_group, mailboxes, now, directory.groups_ou,
                             directory.managed_ous)
    extensions = {e.number: e.where for existing in found.values() for e in existing.extensions}
    imported.rows += owners_missing(addresses, extensions, imported, directory)
    imported.lines = import_lines(extensions, imported, mapping.solicitud, now.date().isoformat())
    imported.equipment = import_computers(directory, mapping, imported, now.date().isoformat())
    _firewall_drafts(found, state, imported, mapping.solicitud, now.date().isoformat())
    return imported, source.name


def import_directory(args, out: Console, err: Console) -> int:
    imported, source = run_import(args)
    if not args.report_only:
        folder = args.out or args.repo / "desired_state"
        written = write_desired(imported, folder, source)
        err.print(_("wrote {n} files in {folder}: run `reconciler validate`, then open a pull request",
                    n=len(written), folder=folder))
    if args.csv:
        args.csv.write_text(report_csv(imported.rows), encoding="utf-8")
    if args.output == "json":
        print(json.dumps({"people": {u: len(d) for u, d in imported.people.items()},
                          "rows": [{"problem": r.problem, "object": r.object, "account": r.account, "key": r.key,
                                    "detail": shown(r.detail), "decision": shown(r.decision)}
                                   for r in imported.rows]}, ensure_ascii=False, indent=2))
    elif args.output == "csv":
        print(report_csv(imported.rows), end="")
    else:
        print(report_markdown(imported, source), end="")
    return EXIT_OK
