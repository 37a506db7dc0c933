"""`reconciler plan`, `apply` and `probe`: a reconcile run (reconciler.run.engine) and its output."""
from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from dataclasses import replace

from rich.console import Console
from rich.markup import escape

from reconciler.cli import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, EXIT_SKIPPED
from reconciler.config.inventory import load_inventory, network_devices
from reconciler.desired.source import at_ref, working_tree
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, ngettext, number, shown
from reconciler.plan import Movement
from reconciler.render.plan import plan_json, plan_markdown, print_plan
from reconciler.render.words import kind_name, movements
from reconciler.run.engine import ApplyReport, Run
from reconciler.run.proposal import approved_inventory, base_inventory


def source_of(args):
    return working_tree(args.repo) if getattr(args, "working_tree", False) else at_ref(args.repo, args.ref)


def _inventory(args, source):
    """The inventory a plan or apply uses (run/proposal.py): the base's for a pull request,
    the approved one for a commit, the file itself for a working-tree preview."""
    if getattr(args, "proposal", None):
        return base_inventory(args.repo, args.inventory, args.proposal)
    if source.commit is None:
        return nullcontext((args.inventory, None))
    return approved_inventory(source, args.inventory)


MARKDOWN_READ = 1 << 20  # a plan comment is at most 65,536 characters; more is not a plan


def _targets(args, inventory) -> tuple[str, ...]:
    """--target, or the targets of --shard in the inventory the run uses."""
    if not getattr(args, "shard", None):
        return tuple(args.target)
    if args.target:
        raise ReconcilerError(_("--shard and --target choose targets each: give one of them"))
    from reconciler.run.shards import shard

    return shard(load_inventory(inventory), args.shard).targets


def _pins(args, plan) -> list[str]:
    """--expect-fingerprint, or the pins of --approved-plan: each target's fingerprint for the
    targets this run plans (a shard's), else the whole plan's (a plan made before targets had
    their own)."""
    if not args.approved_plan:
        return args.expect_fingerprint
    if args.expect_fingerprint:
        raise ReconcilerError(_("--expect-fingerprint and --approved-plan both pin the plan: give one of them"))
    from reconciler.render.plan import fingerprints_in

    try:
        with open(args.approved_plan, encoding="utf-8", errors="replace") as approved:
            text = approved.read(MARKDOWN_READ)
    except OSError as exc:
        raise ReconcilerError(_("cannot read {path}: {error}", path=args.approved_plan, error=exc.strerror)) from None
    whole, per_target = fingerprints_in(text)
    if whole is None:
        raise ReconcilerError(_("{path} holds no plan fingerprint", path=args.approved_plan))
    return [f"{t}={per_target.get(t, 'none')}" for t in plan.targets] if per_target else [whole]


def plan(args, out: Console, err: Console) -> int:
    source = source_of(args)
    with _inventory(args, source) as (inventory, note):
        with Run(source, inventory, _targets(args, inventory), since_applied=args.since_applied,
                 proposal_base=args.proposal, full_read=args.full_read, settle=True) as run:
            plan = run.plan()
    if note:
        plan = replace(plan, warnings=plan.warnings + (note,))
    if args.output == "json":
        print(plan_json(plan))
    elif args.output == "markdown":
        print(plan_markdown(plan), end="")
    else:
        print_plan(plan, out)
    return EXIT_OK if plan.empty else EXIT_CHANGES


def _progress(err: Console):
    """A progress bar on a terminal; in a CI log, a line every tenth of the way."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # apply only

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=err, transient=False, disable=not err.is_terminal)

    def start(target: str, total: int):
        if err.is_terminal:
            task = bar.add_task(escape(_("applying to {target}", target=target)), total=total)
            return lambda n: bar.advance(task, n)
        done, step = [0], max(50, total // 10)

        def advance(n: int) -> None:
            before, done[0] = done[0], done[0] + n
            if done[0] // step != before // step or done[0] == total:
                err.print(_("applying to {target}: {done}/{total}", target=target, done=done[0], total=total),
                          markup=False)
        return advance

    return bar, start


def _confirm(args, err: Console) -> bool:
    if args.auto_approve:
        return True
    if not sys.stdin.isatty():
        raise ReconcilerError(_("apply needs --auto-approve when it is not run from a terminal"))
    # The answer stays 'yes' in every language: it is what the code compares.
    question, answer = escape(_("Apply these changes?")), escape(_("Only {answer} will be accepted:", answer="'yes'"))
    err.print(f"\n[bold]{question}[/] {answer} ", end="")
    return input().strip() == "yes"


def _report(report: ApplyReport, out: Console, stopped: bool = False, bajas=()) -> None:
    """The result of an apply: failures, skips, counts, files.  `stopped`: the run ended with
    an error (said after this), so the counts are what it did before."""
    for target, why in report.unreachable.items():
        line = escape(_("target {target} out of reach, nothing applied to it: {error}", target=target, error=why))
        out.print(f"  [red]✗[/] {line}")
    for o in report.failed:
        line = escape(f"{o.change.movement.symbol} {kind_name(o.change.kind)} {o.change.label}: {o.error}")
        out.print(f"  [red]✗[/] {line}")
    for s in report.skipped:
        line = escape(_("skipped {symbol} {kind} {object}: {reason}", symbol=s.change.movement.symbol,
                        kind=kind_name(s.change.kind), object=s.change.label, reason=s.reason))
        out.print(f"  [yellow]⏸[/] {line}")
    for target, p in report.probes:
        out.print(_probe_line(target, p))
    if report.failed_probes:
        failed_probes = escape(ngettext("{n} probe failed:", "{n} probes failed:", len(report.failed_probes)))
        wrong = escape(_("the rules do not do what they declare."))
        out.print(f"[bold red]{failed_probes}[/] {wrong}")
    counts = report.counts()
    applied = ", ".join(movements(m, counts[m.plural]["applied"]) for m in Movement
                        if m is not Movement.ADOPCION or counts[m.plural]["applied"])
    verified = sum(row["verified"] for row in counts.values())
    failed = len(report.failed)
    colour = "green" if report.ok and not report.skipped else "red" if not report.ok else "yellow"
    verified_text = ngettext("{n} verified by reading back", "{n} verified by reading back", verified)
    failed_text = ngettext("{n} failed", "{n} failed", failed)
    if report.skipped:
        summary = _("{applied} applied; {verified}; {failed}; {skipped}.", applied=applied, verified=verified_text,
                    failed=failed_text, skipped=ngettext("{n} skipped for lack of approval",
                                                         "{n} skipped for lack of approval", len(report.skipped)))
    else:
        summary = _("{applied} applied; {verified}; {failed}.", applied=applied, verified=verified_text,
                    failed=failed_text)
    title = escape(_("Apply stopped:") if stopped else _("Apply complete:"))
    out.print(f"[bold {'red' if stopped else colour}]{title}[/] {escape(summary)}")
    if report.timings:
        took = number(sum(report.timings.values()), 1)
        phases = ", ".join(f"{name} {number(seconds, 1)} s" for name, seconds in report.timings.items()
                           if seconds >= 0.05)
        out.print(escape(_("Took {seconds} s ({phases}).", seconds=took, phases=phases) if phases
                         else _("Took {seconds} s.", seconds=took)))
    for path in report.audit_files:
        out.print(escape(_("Audit trail: {path} (and git notes --ref=reconciler)", path=path)))
    warned = escape(_("Warning:"))
    for warning in report.warnings:
        out.print(f"[bold yellow]{warned}[/] {escape(shown(warning))}")
    for target, sha in report.applied_refs.items():
        out.print(escape(_("Recorded {commit} as applied to {target}.", commit=sha[:12], target=target)))
    for key, person in bajas:
        out.print(escape(_("Baja de servicios of {person} ({key}): what was removed, and what is still pending "
                           "(equipment to collect, carrier lines to cancel, work orders): reconciler offboarding "
                           "{key}", person=person, key=key)))
    for target, count in report.envelopes:
        out.print(escape(ngettext("{target}: {n} new secret sealed to its recipients in refs/reconciler/envelopes/ "
                                  "(push them with the notes; they open it with reconciler credentials open FOLIO).",
                                  "{target}: {n} new secrets sealed to their recipients in refs/reconciler/envelopes/ "
                                  "(push them with the notes; they open them with reconciler credentials open FOLIO).",
                                  count, target=target)))
    for path, count in report.credentials_files:
        out.print(escape(ngettext("{n} new password or line secret: {path} (readable by root only; hand it over "
                                  "and delete the file).",
                                  "{n} new passwords or line secrets: {path} (readable by root only; hand them "
                                  "over and delete the file).", count, path=path)))


def apply(args, out: Console, err: Console) -> int:
    source = at_ref(args.repo, args.ref)
    with _inventory(args, source) as (inventory, note), Run(
            source, inventory, _targets(args, inventory), since_applied=args.since_applied, lock=True,
            full_read=args.full_read,
            protected_branch=args.protected_branch, revoke_when_unreachable=True) as run:
        plan = run.plan()
        pins = _pins(args, plan)  # before anything is shown or asked: a pin that cannot be read stops here
        if note:
            plan = replace(plan, warnings=plan.warnings + (note,))
        for note in run.lock_notes:
            err.print(_("Warning: {note}", note=note), markup=False, style="yellow")
        if args.output == "text":
            print_plan(plan, out)
        # A stopped run's records, and envelopes to take back, are written by apply.
        if plan.empty and not run.interrupted and not run.unreachable and not run.owes_envelopes():
            run.check_fingerprint(plan, pins)
            refs = run.record_applied(plan)
            if args.output == "json":
                print(json.dumps({"plan": plan.to_dict(), "result": None}, ensure_ascii=False, indent=2))
            else:
                for target, sha in refs.items():
                    out.print(escape(_("Recorded {commit} as applied to {target}.", commit=sha[:12], target=target)))
            return EXIT_OK
        if args.output == "text" and not plan.empty and not _confirm(args, err):
            out.print(_("Apply cancelled."))
            return EXIT_ERROR
        if args.output == "json" and not args.auto_approve:
            raise ReconcilerError(_("apply --output json needs --auto-approve"))
        bar, start = _progress(err)
        try:
            with bar:
                report = run.apply(plan, allow_mass_baja=args.allow_mass_baja, strict=args.strict,
                                   expect_fingerprint=pins, progress=start,
                                   allow_mass_adoption=args.allow_mass_adoption)
        except BaseException:
            if run.report is not None and args.output == "text":  # what it did before it stopped
                _report(run.report, out, stopped=True)
            raise
    if args.output == "json":
        result = {"outcomes": [{**o.change.to_dict(), "status": o.status, "verified": o.verified,
                                "error": o.error} for o in report.outcomes],
                  "skipped": [{**s.change.to_dict(), "reason": s.reason} for s in report.skipped],
                  "timings": {k: round(v, 3) for k, v in report.timings.items()},
                  "credentials_files": [path for path, _ in report.credentials_files],
                  "envelopes": {target: count for target, count in report.envelopes},
                  "audit_files": report.audit_files, "applied_refs": report.applied_refs,
                  "warnings": report.warnings, "ok": report.ok,
                  "bajas_de_servicios": [key for key, _person in report.bajas(run.state)],
                  "unreachable": report.unreachable,
                  "probes": [{"target": t, **p.to_dict()} for t, p in report.probes]}
        print(json.dumps({"plan": plan.to_dict(), "result": result}, ensure_ascii=False, indent=2))
    else:
        _report(report, out, bajas=report.bajas(run.state))
    if not report.ok:
        return EXIT_ERROR
    return EXIT_SKIPPED if report.skipped else EXIT_OK


def probe(args, out: Console, err: Console) -> int:
    # Only the devices: the rest need not be reached.
    only = list(_targets(args, args.inventory)) or sorted(network_devices(load_inventory(args.inventory)))
    if not only:
        out.print(escape(_("No firewall or router in {inventory}: nothing to probe.", inventory=args.inventory)))
        return EXIT_OK
    with Run(at_ref(args.repo, args.ref), args.inventory, tuple(only), full_read=args.full_read) as run:
        results = run.probe()
    if args.output == "json":
        print(json.dumps([{"target": t, **p.to_dict()} for t, p in results], ensure_ascii=False, indent=2))
    else:
        for target, p in results:
            out.print(_probe_line(target, p))
    failed = len(ApplyReport([], probes=results).failed_probes)
    if args.output != "json":
        tally = escape(ngettext("{n} probe, {failed} failed.", "{n} probes, {failed} failed.", len(results),
                                failed=failed))
        out.print(f"[bold {'red' if failed else 'green'}]{tally}[/]")
    return EXIT_ERROR if failed else EXIT_OK


def _probe_line(target: str, p) -> str:
    mark = "[green]✓[/]" if p.passed else "[red]✗[/]" if p.ran else "[yellow]?[/]"
    seen = p.observed if p.ran else _("not run: {detail}", detail=p.detail)
    line = _("probe {target} {rule}: {probe}: {seen}", target=target, rule=p.rule, probe=p.probe, seen=seen)
    return f"  {mark} {escape(line)}"
