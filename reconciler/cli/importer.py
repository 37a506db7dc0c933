"""`reconciler import`: read an existing directory (and the mail registry and the registrar
when the inventory has them), write the people it finds as desired state, one file per unit,
and print the reconciliation report.  Read-only against every target."""
from __future__ import annotations

import datetime as dt
import json
import sqlite3

from rich.console import Console

from reconciler.adoption.directory import read_existing
from reconciler.adoption.mapping import load_mapping
from reconciler.adoption.output import report_csv, report_markdown, write_desired
from reconciler.adoption.people import Imported, import_computers, import_lines, import_people, owners_missing
from reconciler.cli import EXIT_OK
from reconciler.config.inventory import load_inventory
from reconciler.desired.load import load_desired_state
from reconciler.desired.source import working_tree
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy, shown


def _ad_target(targets: dict, name: str | None):
    ads = {n: t for n, t in targets.items() if t.kind == "active_directory"}
    if name is not None:
        if name not in ads:
            raise ReconcilerError(_("the inventory has no Active Directory target named {name}", name=name))
        return ads[name]
    if len(ads) != 1:
        raise ReconcilerError(_("name the Active Directory target to import from in the mapping (target:); the "
                                "inventory has {n}", n=len(ads)))
    return next(iter(ads.values()))


def _mail(targets: dict) -> tuple[dict[str, dict], dict[str, str]]:
    """(address -> the mailbox: block to declare, address -> where found) of hand-made mailboxes."""
    from reconciler.providers.mail.registry import Registry

    declared, found = {}, {}
    for t in targets.values():
        if t.kind != "mail":
            continue
        try:
            entries = Registry.read(t.registry).entries()
        except OSError as exc:
            raise ReconcilerError(_("cannot read the mail registry {path}: {error}", path=t.registry,
                                    error=exc.strerror)) from None
        for e in entries:
            if e.managed:
                continue
            block = {"address": e.address.lower()}
            if e.aliases:
                block["aliases"] = sorted(a.lower() for a in e.aliases)
            declared[e.address.casefold()] = block
            found[e.address] = _("registry of {target}", target=t.name)
    return declared, found


def _extensions(targets: dict) -> dict[str, str]:
    """extension -> where found, for every subscriber the registrars hold (read-only)."""
    found = {}
    for t in targets.values():
        if t.kind != "sip":
            continue
        try:
            conn = sqlite3.connect(f"file:{t.database}?mode=ro", uri=True, timeout=15)
            rows = conn.execute("SELECT username FROM subscriber WHERE domain = ?", (t.domain,)).fetchall()  # not for people
            conn.close()
        except sqlite3.Error as exc:
            raise ReconcilerError(_("cannot read the registrar's database {database}: {error}",
                                    database=t.database, error=exc)) from None
        for (username,) in rows:
            found[str(username)] = _("registrar {target}", target=t.name)
    return found


def _firewalls(targets: dict, state, imported: Imported, solicitud: dict, today: str) -> None:
    """Every firewall's and router's hand-made rules: drafts, and report rows (read-only, over SSH)."""
    from reconciler.adoption.firewall import draft, hand_made_acl_entries, hand_made_rules
    from reconciler.adoption.people import FIREWALL_DRAFT, FIREWALL_UNREADABLE, Row
    from reconciler.providers import registry

    for name, t in targets.items():
        if t.kind not in ("nftables", "cisco_ios"):
            continue
        with registry.kind(t.kind).provider_class()(t) as provider:
            if t.kind == "nftables":
                found = hand_made_rules(provider.ruleset(), t.table)
            else:
                router = provider.read()
                found = hand_made_acl_entries(router.lists, router.own)
        for f in found:
            if f.rule is None:
                imported.rows.append(Row(FIREWALL_UNREADABLE, f"{name}: {f.where}", detail=f.expr, decision=lazy(
                    "express it as declared rules by hand, or keep it by hand outside the reconciler's table")))
                continue
            imported.rules.setdefault(name, []).append((f.where, draft(f, name, state.security, solicitud, today)))
            imported.rows.append(Row(FIREWALL_DRAFT, f"{name}: {f.where}", detail=f.expr, decision=lazy(
                "write its name, unit and justification in the imported file, or delete it if nobody can "
                "explain it; then remove it from the hand-made table")))


def run_import(args) -> tuple[Imported, str]:
    state = load_desired_state(working_tree(args.repo).files)
    mapping = load_mapping(args.mapping, set(state.units))
    targets = load_inventory(args.inventory)
    target = _ad_target(targets, mapping.target)
    from reconciler.providers.ad.connection import connect, unbind_quietly

    conn = connect(target)
    try:
        directory = read_existing(conn, target, mapping.search_bases)
    finally:
        unbind_quietly(conn)
    mailboxes, addresses = _mail(targets)
    by_group = {e.group.casefold(): key for key, e in state.entitlements.items()}
    now = dt.datetime.now(dt.timezone.utc)
    imported = import_people(directory, mapping, by_group, mailboxes, now, target.groups_ou,
                             (target.people_ou, target.bajas_ou))
    extensions = _extensions(targets)
    imported.rows += owners_missing(addresses, extensions, imported, directory)
    imported.lines = import_lines(extensions, imported, mapping.solicitud, now.date().isoformat())
    imported.equipment = import_computers(directory, mapping, imported, now.date().isoformat())
    _firewalls(targets, state, imported, mapping.solicitud, now.date().isoformat())
    return imported, target.name


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
