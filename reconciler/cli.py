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

from . import __version__, audit, auditors, bills
from .desired import load_desired_state
from .desired.assets import released
from .engine import ApplyReport, Run
from .errors import ReconcilerError, ValidationFailed
from .inventory import load_inventory, mail_rules, network_devices
from .policy import POLICY_FILE
from .render import plan_json, plan_markdown, print_plan
from .render_audit import indicators_csv, print_bill_findings, print_history, print_indicators
from .review import load_policy
from .source import DEFAULT_REF, at_ref, open_repo, working_tree

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reconciler", description=(
        "Reconcile what desired_state/ declares (people, mailboxes, phone lines, equipment, security "
        "rules) into Active Directory, the mail server, the SIP registrar, firewalls and routers: "
        "altas, modificaciones and bajas, planned before they are applied."))
    p.add_argument("--version", action="version", version=f"reconciler {__version__}")
    p.add_argument("--repo", type=Path, default=Path("."), help="repository holding desired_state/ (default: .)")
    p.add_argument("--debug", action="store_true", help="show a traceback on internal errors")
    p.add_argument("--no-color", action="store_true", help="plain text even on a terminal")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_inventory(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--inventory", type=Path,
                        default=Path(os.environ.get("RECONCILER_INVENTORY", "inventory/lab.yaml")),
                        help="inventory file naming the targets (default: $RECONCILER_INVENTORY or inventory/lab.yaml)")
        return sp

    validate = with_inventory(sub.add_parser("validate", help="check desired_state/ and report every problem"))
    validate.add_argument("--ref", help="check this commit instead of the working tree")

    def targeted(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = with_inventory(sub.add_parser(name, help=help_text))
        sp.add_argument("--target", action="append", default=[], help="only this target (repeatable)")
        sp.add_argument("--ref", default=os.environ.get("RECONCILER_REF", DEFAULT_REF),
                        help="read the desired state from this commit (default: $RECONCILER_REF or main)")
        sp.add_argument("--since-applied", action="store_true",
                        help="only the files changed since the commit last applied to each target")
        return sp

    plan = targeted("plan", "show what apply would change (exit 0: nothing to do, 2: changes, 1: error)")
    plan.add_argument("--output", choices=["text", "json", "markdown"], default="text")
    plan.add_argument("--working-tree", action="store_true",
                      help="preview the files on disk, committed or not (apply never does)")
    plan.add_argument("--proposal", metavar="BASE", nargs="?", const="origin/main",
                      help="the plan of a pull request into BASE (default origin/main): its own changes are "
                           "shown as awaiting approval, not judged")
    apply = targeted("apply", "plan from a commit, then apply the approved changes and verify them")
    apply.add_argument("--output", choices=["text", "json"], default="text")
    apply.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    apply.add_argument("--allow-mass-baja", action="store_true",
                       help="apply even when the bajas exceed a target's max_bajas deletion guard")
    apply.add_argument("--strict", action="store_true",
                       help="refuse the whole run if any change lacks a valid approval (default: skip those)")
    apply.add_argument("--expect-fingerprint", metavar="F",
                       help="refuse unless the plan made now has this fingerprint (the one approved)")

    audit_cmd = with_inventory(sub.add_parser("audit", help="the audit trail"))
    audit_sub = audit_cmd.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    verify = audit_sub.add_parser("verify", help="check every target's hash chain, and that the records noted "
                                                 "in Git match it")
    verify.add_argument("--inventory", type=Path, default=argparse.SUPPRESS, help="as before the subcommand")
    from_git = "read the records from the git notes (refs/notes/reconciler) alone, not from the audit files"
    verify.add_argument("--from-git", action="store_true", help=from_git)
    history = with_inventory(sub.add_parser("history", help="every movement of a person, account or object"))
    history.add_argument("query", help="employee key, account name, or part of a name")
    history.add_argument("--output", choices=["text", "json"], default="text")
    history.add_argument("--from-git", action="store_true", help=from_git)
    report = with_inventory(sub.add_parser("report", help="monthly indicators: approved versus applied and verified"))
    report.add_argument("--month", required=True, help="YYYY-MM (approval month)")
    report.add_argument("--output", choices=["table", "csv", "json"], default="table")
    report.add_argument("--from-git", action="store_true", help=from_git)
    probe = targeted("probe", "run every declared probe of the firewalls' and routers' rules now (exit 1 if one "
                              "fails), changing nothing")
    probe.add_argument("--output", choices=["text", "json"], default="text")
    lines = sub.add_parser("lines", help="phone lines")
    lines_sub = lines.add_subparsers(dest="lines_command", required=True, metavar="SUBCOMMAND")
    bill = lines_sub.add_parser("report", help="a carrier's monthly bill against the declared lines: billed but "
                                                "not declared, declared but not billed, over the plan")
    bill.add_argument("--bill", type=Path, required=True, metavar="FILE.csv", help="the carrier's export (see README)")
    bill.add_argument("--ref", default=os.environ.get("RECONCILER_REF", DEFAULT_REF),
                      help="the declared lines at this commit (default: $RECONCILER_REF or main)")
    bill.add_argument("--working-tree", action="store_true", help="the declared lines on disk instead")
    bill.add_argument("--output", choices=["table", "csv", "json"], default="table")
    return p


def _validate(args, out: Console) -> int:
    source = at_ref(args.repo, args.ref) if args.ref else working_tree(args.repo)
    problems, rules, devices = [], None, None
    if args.inventory.is_file():  # mail addresses, quotas and rules' devices are checked against it
        try:
            targets = load_inventory(args.inventory)
            rules, devices = mail_rules(targets), network_devices(targets)
        except ValidationFailed as exc:
            problems += exc.problems
    try:
        state = load_desired_state(source.files, mail=rules, devices=devices)
    except ValidationFailed as exc:
        problems, state = problems + exc.problems, None
    try:
        policy = load_policy(source)
    except ValidationFailed as exc:
        problems, policy = problems + exc.problems, None
    if problems:
        raise ValidationFailed(problems)
    people = Counter(p.status for p in state.people)
    mailboxes = sum(1 for p in state.people if p.mailbox)
    out.print(f"[green]desired_state is valid:[/] {len(state.people)} people ({people['activo']} activo, "
              f"{people['baja']} baja) in {len(state.units)} units; {len(state.entitlements)} entitlements; "
              f"{mailboxes} mailboxes and {len(state.shared_mailboxes)} shared.")
    out.print(f"[green]desired_state/assets is valid:[/] {len(state.lines)} phone lines, "
              f"{len(state.equipment)} pieces of equipment.")
    if state.security is not None:
        out.print(f"[green]desired_state/security_rules is valid:[/] {len(state.security.rules)} rules, "
                  f"{sum(len(r.probes) for r in state.security.rules)} probes.")
    people_by_key = {p.employee_key: p for p in state.people}
    for note in released(list(state.lines), list(state.equipment), people_by_key):
        out.print(f"[yellow]Released by a baja:[/] {escape(note)}")
    if rules is None:
        out.print(f"[yellow]No mail target in {args.inventory}:[/] mail domains and quotas were not checked.")
    if policy is None:
        out.print(f"[yellow]No approval policy ({POLICY_FILE}):[/] apply will approve nothing.")
    else:
        out.print(f"[green]{POLICY_FILE} is valid:[/] {len(policy.approvers)} approvers.")
    return EXIT_OK


def _source(args):
    return working_tree(args.repo) if getattr(args, "working_tree", False) else at_ref(args.repo, args.ref)


def _plan(args, out: Console) -> int:
    with Run(_source(args), args.inventory, tuple(args.target), since_applied=args.since_applied,
             proposal_base=args.proposal) as run:
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
    for s in report.skipped:
        out.print(f"  [yellow]⏸[/] {escape(f'skipped {s.change.movement.symbol} {s.change.kind} {s.change.label}: {s.reason}')}")
    for target, p in report.probes:
        out.print(_probe_line(target, p))
    if report.failed_probes:
        out.print(f"[bold red]{len(report.failed_probes)} probes failed:[/] the rules do not do what they declare.")
    counts = report.counts()
    parts = [f"{row['applied']} {name}" for name, row in counts.items()]
    verified = sum(row["verified"] for row in counts.values())
    failed = len(report.failed)
    colour = "green" if report.ok and not report.skipped else "red" if not report.ok else "yellow"
    skipped = f"; {len(report.skipped)} skipped for lack of approval" if report.skipped else ""
    out.print(f"[bold {colour}]Apply complete:[/] {', '.join(parts)} applied; {verified} verified by "
              f"reading back; {failed} failed{skipped}.")
    if report.timings:
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.timings.items() if seconds >= 0.05)
        out.print(f"Took {sum(report.timings.values()):.1f} s" + (f" ({phases})." if phases else "."))
    for path in report.audit_files:
        out.print(f"Audit trail: {path} (and git notes --ref=reconciler)")
    for warning in report.warnings:
        out.print(f"[bold yellow]Warning:[/] {escape(warning)}")
    for target, sha in report.applied_refs.items():
        out.print(f"Recorded {sha[:12]} as applied to {target}.")
    for path, count in report.credentials_files:
        out.print(f"{count} new passwords or line secrets: {path} "
                  "(readable by root only; hand them over and delete the file).")


EXIT_SKIPPED = 3  # applied what was approved; some changes were skipped for lack of approval


def _apply(args, out: Console, err: Console) -> int:
    with Run(at_ref(args.repo, args.ref), args.inventory, tuple(args.target), since_applied=args.since_applied,
             lock=True) as run:
        plan = run.plan()
        for note in run.lock_notes:
            err.print(f"Warning: {note}", markup=False, style="yellow")
        if args.output == "text":
            print_plan(plan, out)
        if plan.empty:
            run.check_fingerprint(plan, args.expect_fingerprint)
            refs = run.record_applied(plan)
            if args.output == "json":
                print(json.dumps({"plan": plan.to_dict(), "result": None}, ensure_ascii=False, indent=2))
            else:
                for target, sha in refs.items():
                    out.print(f"Recorded {sha[:12]} as applied to {target}.")
            return EXIT_OK
        if args.output == "text" and not _confirm(args, err):
            out.print("Apply cancelled.")
            return EXIT_ERROR
        if args.output == "json" and not args.auto_approve:
            raise ReconcilerError("apply --output json needs --auto-approve")
        bar, start = _progress(err)
        with bar:
            report = run.apply(plan, allow_mass_baja=args.allow_mass_baja, strict=args.strict,
                               expect_fingerprint=args.expect_fingerprint, progress=start)
    if args.output == "json":
        result = {"outcomes": [{**o.change.to_dict(), "status": o.status, "verified": o.verified,
                                "error": o.error} for o in report.outcomes],
                  "skipped": [{**s.change.to_dict(), "reason": s.reason} for s in report.skipped],
                  "timings": {k: round(v, 3) for k, v in report.timings.items()},
                  "credentials_files": [path for path, _ in report.credentials_files],
                  "audit_files": report.audit_files, "applied_refs": report.applied_refs,
                  "warnings": report.warnings, "ok": report.ok,
                  "probes": [{"target": t, **p.to_dict()} for t, p in report.probes]}
        print(json.dumps({"plan": plan.to_dict(), "result": result}, ensure_ascii=False, indent=2))
    else:
        _report(report, out)
    if not report.ok:
        return EXIT_ERROR
    return EXIT_SKIPPED if report.skipped else EXIT_OK


def _audit_dirs(args) -> list[str]:
    return list(dict.fromkeys(t.audit_dir for t in load_inventory(args.inventory).values()))


def _records(args) -> list[dict]:
    if args.from_git:
        return audit.load_records(notes=audit.read_notes(_repo(args)))
    return audit.load_records(_audit_dirs(args))


def _repo(args):
    repo = open_repo(args.repo)
    if repo is None:
        raise ReconcilerError(f"{args.repo} is not a Git repository: --from-git reads its notes")
    return repo


def _verify_from_git(args, out: Console) -> int:
    results = audit.verify_notes(audit.read_notes(_repo(args)))
    if not results:
        raise ReconcilerError(f"no audit records in the git notes ({audit.NOTES_REF}) of {args.repo}")
    for target, count, broken in results:
        if broken:
            out.print(f"[red]✗ target {escape(target)} (git notes): {escape(broken)}[/]")
        else:
            out.print(f"[green]✓[/] target {escape(target)} (git notes): {count} records, chain intact")
    return EXIT_ERROR if any(broken for _, _, broken in results) else EXIT_OK


def _audit_verify(args, out: Console) -> int:
    if args.from_git:
        return _verify_from_git(args, out)
    repo = open_repo(args.repo)
    notes = audit.read_notes(repo) if repo is not None else []
    files = [f for d in _audit_dirs(args) for f in audit.trail_files(d)]
    if not files:
        raise ReconcilerError(f"no audit trail in {', '.join(_audit_dirs(args))}")
    bad = 0
    for path in files:
        verdict = audit.verify_file(path, notes)
        if verdict.ok:
            out.print(f"[green]✓[/] {escape(str(path))}: {verdict.records} records, chain intact"
                      + (", matches the git notes" if notes else ""))
        else:
            bad += 1
            out.print(f"[red]✗ {escape(str(path))}: {escape(verdict.broken)}[/]")
    return EXIT_ERROR if bad else EXIT_OK


def _history(args, out: Console) -> int:
    moves = auditors.history(_records(args), args.query)
    if args.output == "json":
        print(json.dumps([m.to_dict() for m in moves], ensure_ascii=False, indent=2))
    else:
        print_history(moves, args.query, out)
    return EXIT_OK


def _monthly(args, out: Console) -> int:
    if not (len(args.month) == 7 and args.month[4] == "-" and args.month[:4].isdigit()
            and args.month[5:].isdigit() and 1 <= int(args.month[5:]) <= 12):
        raise ReconcilerError(f"--month {args.month!r}: expected YYYY-MM, e.g. 2026-11")
    rows = auditors.monthly_indicators(_records(args), args.month)
    if args.output == "json":
        print(json.dumps({"month": args.month, "indicators": [r.to_dict() for r in rows]}, ensure_ascii=False, indent=2))
    elif args.output == "csv":
        print(indicators_csv(rows, args.month), end="")
    else:
        print_indicators(rows, args.month, out)
    return EXIT_OK


def _probe(args, out: Console) -> int:
    only = args.target or sorted(network_devices(load_inventory(args.inventory)))  # no need to reach the rest
    if not only:
        out.print(f"No firewall or router in {args.inventory}: nothing to probe.")
        return EXIT_OK
    with Run(at_ref(args.repo, args.ref), args.inventory, tuple(only)) as run:
        results = run.probe()
    if args.output == "json":
        print(json.dumps([{"target": t, **p.to_dict()} for t, p in results], ensure_ascii=False, indent=2))
    else:
        for target, p in results:
            out.print(_probe_line(target, p))
    failed = len(ApplyReport([], probes=results).failed_probes)
    if args.output != "json":
        out.print(f"[bold {'red' if failed else 'green'}]{len(results)} probes, {failed} failed.[/]")
    return EXIT_ERROR if failed else EXIT_OK


def _probe_line(target: str, p) -> str:
    mark = "[green]✓[/]" if p.passed else "[red]✗[/]" if p.ran else "[yellow]?[/]"
    seen = p.observed if p.ran else f"not run: {p.detail}"
    return f"  {mark} probe {escape(f'{target} {p.rule}: {p.probe}: {seen}')}"


def _bill_report(args, out: Console) -> int:
    try:
        text = args.bill.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ReconcilerError(f"cannot read the bill {args.bill}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ReconcilerError(f"{args.bill} is not UTF-8 text: export the bill as CSV in UTF-8") from None
    billed = bills.parse_bill(text, str(args.bill))
    state = load_desired_state(_source(args).files)
    findings = bills.analyse(list(state.lines), billed)
    if args.output == "csv":
        print(bills.findings_csv(findings), end="")
    elif args.output == "json":
        print(json.dumps([f.to_dict() for f in findings], ensure_ascii=False, indent=2))
    else:
        print_bill_findings(findings, str(args.bill), len(billed), out)
    return EXIT_OK


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
        if args.command == "audit":
            return _audit_verify(args, out)
        if args.command == "history":
            return _history(args, out)
        if args.command == "report":
            return _monthly(args, out)
        if args.command == "lines":
            return _bill_report(args, out)
        if args.command == "probe":
            return _probe(args, out)
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
