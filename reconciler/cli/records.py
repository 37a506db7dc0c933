"""`reconciler audit verify`, `history` and `report`: what the audit trail says."""
from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape

from reconciler.audit import indicators, trail
from reconciler.cli import EXIT_ERROR, EXIT_OK
from reconciler.config.inventory import load_inventory
from reconciler.desired.source import open_repo
from reconciler.errors import ReconcilerError
from reconciler.render.audit import indicators_csv, print_history, print_indicators


def _audit_dirs(args) -> list[str]:
    return list(dict.fromkeys(t.audit_dir for t in load_inventory(args.inventory).values()))


def _records(args) -> list[dict]:
    if args.from_git:
        return trail.load_records(notes=trail.read_notes(_repo(args)))
    return trail.load_records(_audit_dirs(args))


def _repo(args):
    repo = open_repo(args.repo)
    if repo is None:
        raise ReconcilerError(f"{args.repo} is not a Git repository: --from-git reads its notes")
    return repo


def _verify_from_git(args, out: Console) -> int:
    results = trail.verify_notes(trail.read_notes(_repo(args)))
    if not results:
        raise ReconcilerError(f"no audit records in the git notes ({trail.NOTES_REF}) of {args.repo}")
    for target, count, broken in results:
        if broken:
            out.print(f"[red]✗ target {escape(target)} (git notes): {escape(broken)}[/]")
        else:
            out.print(f"[green]✓[/] target {escape(target)} (git notes): {count} records, chain intact")
    return EXIT_ERROR if any(broken for _, _, broken in results) else EXIT_OK


def audit_verify(args, out: Console, err: Console) -> int:
    if args.from_git:
        return _verify_from_git(args, out)
    repo = open_repo(args.repo)
    notes = trail.read_notes(repo) if repo is not None else []
    files = [f for d in _audit_dirs(args) for f in trail.trail_files(d)]
    if not files:
        raise ReconcilerError(f"no audit trail in {', '.join(_audit_dirs(args))}")
    bad = 0
    for path in files:
        verdict = trail.verify_file(path, notes)
        if verdict.ok:
            out.print(f"[green]✓[/] {escape(str(path))}: {verdict.records} records, chain intact"
                      + (", matches the git notes" if notes else ""))
        else:
            bad += 1
            out.print(f"[red]✗ {escape(str(path))}: {escape(verdict.broken)}[/]")
    return EXIT_ERROR if bad else EXIT_OK


def history(args, out: Console, err: Console) -> int:
    moves = indicators.history(_records(args), args.query)
    if args.output == "json":
        print(json.dumps([m.to_dict() for m in moves], ensure_ascii=False, indent=2))
    else:
        print_history(moves, args.query, out)
    return EXIT_OK


def monthly(args, out: Console, err: Console) -> int:
    if not (len(args.month) == 7 and args.month[4] == "-" and args.month[:4].isdigit()
            and args.month[5:].isdigit() and 1 <= int(args.month[5:]) <= 12):
        raise ReconcilerError(f"--month {args.month!r}: expected YYYY-MM, e.g. 2026-11")
    rows = indicators.monthly_indicators(_records(args), args.month)
    if args.output == "json":
        print(json.dumps({"month": args.month, "indicators": [r.to_dict() for r in rows]}, ensure_ascii=False, indent=2))
    elif args.output == "csv":
        print(indicators_csv(rows, args.month), end="")
    else:
        print_indicators(rows, args.month, out)
    return EXIT_OK
