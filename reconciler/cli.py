"""The `reconciler` command: argument parsing and output only."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .desired import load_desired_state
from .engine import ApplyReport, Run
from .errors import ReconcilerError, ValidationFailed
from .render import plan_json, plan_markdown, print_plan

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reconciler", description=(
        "Reconcile the people declared in desired_state/ into Active Directory: "
        "altas, modificaciones and bajas, planned before they are applied."))
    p.add_argument("--version", action="version", version=f"reconciler {__version__}")
    p.add_argument("--repo", type=Path, default=Path("."), help="repository holding desired_state/ (default: .)")
    p.add_argument("--debug", action="store_true", help="show a traceback on internal errors")
    p.add_argument("--no-color", action="store_true", help="plain text even on a terminal")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("validate", help="check desired_state/ and report every problem")

    def targeted(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("--inventory", type=Path,
                        default=Path(os.environ.get("RECONCILER_INVENTORY", "inventory/lab.yaml")),
                        help="inventory file naming the targets (default: $RECONCILER_INVENTORY or inventory/lab.yaml)")
        sp.add_argument("--target", action="append", default=[], help="only this target (repeatable)")
        return sp

    plan = targeted("plan", "show what apply would change (exit 0: nothing to do, 2: changes, 1: error)")
    plan.add_argument("--output", choices=["text", "json", "markdown"], default="text")
    apply = targeted("apply", "plan, then apply the changes and verify them")
    apply.add_argument("--output", choices=["text", "json"], default="text")
    apply.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    apply.add_argument("--allow-mass-baja", action="store_true",
                       help="apply even when the bajas exceed a target's max_bajas deletion guard")
    return p


def _validate(args, out: Console) -> int:
    state = load_desired_state(args.repo / "desired_state")
    people = Counter(p.status for p in state.people)
    out.print(f"[green]desired_state is valid:[/] {len(state.people)} people ({people['activo']} activo, "
              f"{people['baja']} baja) in {len(state.units)} units; {len(state.entitlements)} entitlements.")
    return EXIT_OK


def _plan(args, out: Console) -> int:
    with Run(args.repo, args.inventory, tuple(args.target)) as run:
        plan = run.plan()
    if args.output == "json":
        print(plan_json(plan))
    elif args.output == "markdown":
        print(plan_markdown(plan), end="")
    else:
        print_plan(plan, out)
    return EXIT_OK if plan.empty else EXIT_CHANGES


def _progress(err: Console):
    """A progress bar on a terminal; in a CI log, a line every tenth of the way."""
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=err, transient=False, disable=not err.is_terminal)

    def start(target: str, total: int):
        if err.is_terminal:
            task = bar.add_task(f"applying to {target}", total=total)
            return lambda n: bar.advance(task, n)
        done, step = [0], max(50, total // 10)

        def advance(n: int) -> None:
            before, done[0] = done[0], done[0] + n
            if done[0] // step != before // step or done[0] == total:
                err.print(f"applying to {target}: {done[0]}/{total}", markup=False)
        return advance

    return bar, start


def _confirm(args, err: Console) -> bool:
    if args.auto_approve:
        return True
    if not sys.stdin.isatty():
        raise ReconcilerError("apply needs --auto-approve when it is not run from a terminal")
    err.print("\n[bold]Apply these changes?[/] Only 'yes' will be accepted: ", end="")
    return input().strip() == "yes"


def _report(report: ApplyReport, out: Console) -> None:
    for o in report.failed:
        out.print(f"  [red]✗[/] {escape(f'{o.change.movement.symbol} {o.change.kind} {o.change.label}: {o.error}')}")
    counts = report.counts()
    parts = [f"{row['applied']} {name}" for name, row in counts.items()]
    verified = sum(row["verified"] for row in counts.values())
    failed = len(report.failed)
    colour = "green" if report.ok else "red"
    out.print(f"[bold {colour}]Apply complete:[/] {', '.join(parts)} applied; {verified} verified by "
              f"reading back; {failed} failed.")
    if report.timings:
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.timings.items() if seconds >= 0.05)
        out.print(f"Took {sum(report.timings.values()):.1f} s" + (f" ({phases})." if phases else "."))
    for path in report.journals:
        out.print(f"Run journal: {path}")
    for path, count in report.credentials_files:
        out.print(f"Initial passwords of {count} new accounts: {path} "
                  "(readable by root only; hand them over and delete the file).")


def _apply(args, out: Console, err: Console) -> int:
    with Run(args.repo, args.inventory, tuple(args.target)) as run:
        plan = run.plan()
        if args.output == "text":
            print_plan(plan, out)
        if plan.empty:
            if args.output == "json":
                print(json.dumps({"plan": plan.to_dict(), "result": None}, ensure_ascii=False, indent=2))
            return EXIT_OK
        if args.output == "text" and not _confirm(args, err):
            out.print("Apply cancelled.")
            return EXIT_ERROR
        if args.output == "json" and not args.auto_approve:
            raise ReconcilerError("apply --output json needs --auto-approve")
        bar, start = _progress(err)
        with bar:
            report = run.apply(plan, allow_mass_baja=args.allow_mass_baja, progress=start)
    if args.output == "json":
        result = {"outcomes": [{**o.change.to_dict(), "status": o.status, "verified": o.verified,
                                "error": o.error} for o in report.outcomes],
                  "timings": {k: round(v, 3) for k, v in report.timings.items()},
                  "credentials_files": [path for path, _ in report.credentials_files],
                  "journals": report.journals, "ok": report.ok}
        print(json.dumps({"plan": plan.to_dict(), "result": result}, ensure_ascii=False, indent=2))
    else:
        _report(report, out)
    return EXIT_OK if report.ok else EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plain = args.no_color or "NO_COLOR" in os.environ
    out = Console(highlight=False, no_color=plain, soft_wrap=True)
    err = Console(stderr=True, highlight=False, no_color=plain, soft_wrap=True)
    try:
        if args.command == "validate":
            return _validate(args, out)
        if args.command == "plan":
            return _plan(args, out)
        return _apply(args, out, err)
    except ValidationFailed as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        err.print(f"[bold red]Invalid:[/] {exc}.")
        return EXIT_ERROR
    except ReconcilerError as exc:
        err.print(f"Error: {exc}", markup=False, style="bold red")
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.print("Interrupted.", markup=False)
        return 130
    except Exception as exc:  # a bug: say so briefly, traceback only on request
        if args.debug:
            raise
        err.print(f"Internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback)", markup=False)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
