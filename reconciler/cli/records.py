"""`reconciler audit verify`, `history` and `report`: what the audit trail says."""
from __future__ import annotations

import json

from rich.console import Console
from rich.markup import escape

from reconciler.audit import indicators, trail
from reconciler.audit.seal import ApplyKey
from reconciler.cli import EXIT_ERROR, EXIT_OK
from reconciler.config.inventory import load_inventory
from reconciler.desired.source import open_repo
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, ngettext, shown
from reconciler.render.audit import indicators_csv, print_history, print_indicators, print_unacknowledged


def _audit_dirs(args) -> list[str]:
    return list(dict.fromkeys(t.audit_dir for t in load_inventory(args.inventory).values()))


def _records(args, err: Console | None = None) -> list[dict]:
    if args.from_git:
        # Only what the apply key sealed: anyone with push rights can push notes.
        key = ApplyKey.from_env()
        if key is None and err is not None:
            err.print(_("Warning: the notes' seals are not checked (no RECONCILER_APPLY_PUBLIC_KEY): records "
                        "anyone could have pushed are shown"), markup=False, style="yellow")
        return trail.load_records(notes=trail.read_notes(_repo(args), sealed_by=key))
    return trail.load_records(_audit_dirs(args))


def every_record(args, err: Console) -> list[dict]:
    """The records of this runner's trails and, where the apply key can check them, those the
    git notes hold sealed (other runners' and pruned ones): each once.  With --from-git, the
    notes alone."""
    if args.from_git:
        return _records(args, err)
    records = trail.load_records(_audit_dirs(args))
    repo, key = open_repo(args.repo), ApplyKey.from_env()
    if repo is None or key is None:
        return records
    seen = {(r.get("target"), r.get("seq"), r.get("hash")) for r in records}
    noted = [r for _c, r in trail.read_notes(repo, sealed_by=key) if r is not None
             and (r.get("target"), r.get("seq"), r.get("hash")) not in seen]
    return sorted(records + noted, key=lambda r: (r.get("time", ""), r.get("target", ""), r.get("seq", 0)))


def _repo(args):
    repo = open_repo(args.repo)
    if repo is None:
        raise ReconcilerError(_("{repo} is not a Git repository: --from-git reads its notes", repo=args.repo))
    return repo


def _verify_from_git(args, out: Console) -> int:
    repo = _repo(args)
    results = trail.verify_notes(trail.read_notes(repo))
    if not results:
        raise ReconcilerError(_("no audit records in the git notes ({ref}) of {repo}", ref=trail.NOTES_REF,
                                repo=args.repo))
    for target, count, broken in results:
        if broken:
            out.print("[red]✗ " + escape(_("target {target} (git notes): {problem}", target=target,
                                           problem=shown(broken))) + "[/]")
        else:
            out.print("[green]✓[/] " + escape(ngettext("target {target} (git notes): {n} record, chain intact",
                                                       "target {target} (git notes): {n} records, chain intact",
                                                       count, target=target)))
    bad = any(broken for _target, _count, broken in results)
    return EXIT_ERROR if _seals(repo, out) | _approvals(args, repo, out) or bad else EXIT_OK


def _seals(repo, out: Console) -> bool:
    """Are all noted records sealed by the apply key?  True when something is wrong."""
    key = ApplyKey.from_env()
    if key is None:
        out.print("[yellow]! " + escape(_("the notes' seals are not checked: give the apply key's public half "
                                          "(RECONCILER_APPLY_PUBLIC_KEY)")) + "[/]")
        return False
    batches = trail.noted_batches(repo, key)
    unsealed = sorted({commit for commit, _record, ok in batches if not ok})
    if unsealed:
        commits = ", ".join(c[:10] for c in unsealed[:5]) + ("…" if len(unsealed) > 5 else "")
        out.print("[red]✗ " + escape(ngettext("{n} noted record is not sealed by the apply key (on {commits})",
                                              "{n} noted records are not sealed by the apply key (on {commits})",
                                              sum(not ok for _c, _r, ok in batches), commits=commits)) + "[/]")
        return True
    out.print("[green]✓[/] " + escape(ngettext("{n} noted record, every run sealed by the apply key",
                                               "{n} noted records, every run sealed by the apply key", len(batches))))
    return False


def _approvals(args, repo, out: Console) -> bool:
    """Every signed approval, checked against the policy in force at its base.  True when one
    does not verify."""
    from reconciler.approval.review import Judge
    from reconciler.approval.solicitudes import History
    from reconciler.desired.load import load_desired_state
    from reconciler.desired.source import at_ref

    source = at_ref(args.repo, args.ref)
    judge = Judge(source, load_desired_state(source.files), History(source.repo, source.commit))
    checked = judge.signatures()
    failed = [c for c in checked if not c[2]]
    for base, signer, _verified, why in failed:
        out.print("[red]✗ " + escape(_("approval by {signer} on {commit}: {reason}", signer=signer, commit=base[:10],
                                       reason=shown(why))) + "[/]")
    if checked and not failed:
        out.print("[green]✓[/] " + escape(ngettext(
            "{n} approval signature verifies against the policy in force at its base",
            "{n} approval signatures verify against the policy in force at their base", len(checked))))
    elif not checked:
        out.print("[yellow]! " + escape(_("no signed approvals on {ref}", ref=args.ref)) + "[/]")
    return bool(failed)


def audit(args, out: Console, err: Console) -> int:
    if args.audit_command == "export":
        return _export(args, out)
    if args.audit_command == "verify-archive":
        return _verify_archive(args, out)
    if args.audit_command == "prune":
        return _prune(args, out)
    return audit_verify(args, out, err)


def _export(args, out: Console) -> int:
    from pathlib import Path

    from reconciler.audit import archive
    from reconciler.i18n import date

    span = archive.period(args.since, args.until)
    path = args.out or Path(f"reconciler-audit-{args.since}-{args.until}.tar.gz")
    targets = list(load_inventory(args.inventory).values())
    manifest = archive.export(targets, open_repo(args.repo), span, ApplyKey.from_env(), path)
    records = sum(t["records"] for t in manifest["targets"])
    out.print(escape(ngettext("{path}: {n} record of {targets} targets, {since} to {until}; keep it until {keep}.",
                              "{path}: {n} records of {targets} targets, {since} to {until}; keep it until {keep}.",
                              records, path=path, targets=len(manifest["targets"]), since=date(args.since),
                              until=date(args.until), keep=date(manifest["keep_until"]))))
    if manifest["apply_key"] is None:
        out.print("[yellow]" + escape(_("Warning: no apply key is configured: the archive cannot prove its records "
                                        "were sealed")) + "[/]")
    return EXIT_OK


def _prune(args, out: Console) -> int:
    import datetime as dt

    from reconciler.audit import prune
    from reconciler.i18n import zone
    from reconciler.run.connections import select
    from reconciler.run.lock import TargetLock

    try:
        before = dt.date.fromisoformat(args.before)
    except ValueError:
        raise ReconcilerError(_("--before is a date: YYYY-MM-DD")) from None
    key, today = ApplyKey.from_env(), dt.datetime.now(zone()).date()
    targets = list(select(load_inventory(args.inventory), tuple(args.target), args.inventory).values())
    prune.check_retention(targets, before, today)  # all of them before any file is touched
    repo = open_repo(args.repo)
    notes = trail.read_notes(repo, sealed_by=key) if repo is not None and key is not None else []
    for target in targets:  # each on its own: one refused says so, after what the others did
        with TargetLock(target.audit_dir, target.name):  # no apply appends while the file is replaced
            done = prune.prune(target, before, args.archive, key, today, notes)
        if done is None:
            out.print(escape(_("{target}: no run ended before {before}: nothing to prune", target=target.name,
                               before=args.before)))
        else:
            out.print(escape(ngettext("{target}: {n} record, up to seq {seq}, left the trail ({kept} kept); the git "
                                      "notes and the archive keep it",
                                      "{target}: {n} records, up to seq {seq}, left the trail ({kept} kept); the git "
                                      "notes and the archive keep them", done.records, target=target.name,
                                      seq=done.through, kept=done.kept)))
    return EXIT_OK


def _verify_archive(args, out: Console) -> int:
    import tempfile
    from pathlib import Path

    from reconciler.audit import archive, archive_check

    pinned = None
    if args.key:
        given = Path(args.key)
        pinned = given.read_text(encoding="ascii", errors="replace").strip() if given.is_file() else args.key
    elif (key := ApplyKey.from_env()) is not None:
        pinned = key.public
    with tempfile.TemporaryDirectory() as tmp:
        root = archive.extract(args.archive, Path(tmp))
        problems, said = archive_check.check(root, pinned)
        manifest = None if problems else json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
    for item in said:
        out.print("[green]✓[/] " + escape(_(archive_check.MESSAGES[item.code], **item.values)))
    for item in problems:
        out.print("[red]✗ " + escape(_(archive_check.MESSAGES[item.code], **item.values)) + "[/]")
    if problems:
        out.print("[bold red]" + escape(_(archive_check.MESSAGES["bad"], n=len(problems))) + "[/]")
        return EXIT_ERROR
    out.print("[bold green]" + escape(_(archive_check.MESSAGES["ok"], records=sum(t["records"] for t in
                                                                                manifest["targets"]),
                                        targets=len(manifest["targets"]), since=manifest["since"],
                                        until=manifest["until"], keep_until=manifest["keep_until"])) + "[/]")
    return EXIT_OK


def audit_verify(args, out: Console, err: Console) -> int:
    if args.from_git:
        return _verify_from_git(args, out)
    repo = open_repo(args.repo)
    notes = trail.read_notes(repo) if repo is not None else []
    files = [f for d in _audit_dirs(args) for f in trail.trail_files(d)]
    if not files:
        raise ReconcilerError(_("no audit trail in {directories}", directories=", ".join(_audit_dirs(args))))
    bad = 0
    key = ApplyKey.from_env()
    pruned = any(trail.anchor(path) is not None for path in files)
    sealed = trail.read_notes(repo, sealed_by=key) if pruned and repo is not None and key is not None else []
    for path in files:
        verdict = trail.verify_file(path, notes, key, sealed)
        if verdict.ok:
            if notes:
                said = ngettext("{file}: {n} record, chain intact, matches the git notes",
                                "{file}: {n} records, chain intact, matches the git notes", verdict.records, file=path)
            else:
                said = ngettext("{file}: {n} record, chain intact", "{file}: {n} records, chain intact",
                                verdict.records, file=path)
            out.print(f"[green]✓[/] {escape(said)}")
            if verdict.pruned:
                out.print("  " + escape(_("records 1 to {seq} were pruned from it by the apply job (its anchor "
                                          "line, sealed, names the archive that holds them); the git notes keep them",
                                          seq=verdict.pruned)))
        else:
            bad += 1
            out.print(f"[red]✗ {escape(str(path))}: {escape(shown(verdict.broken))}[/]")
    if repo is not None and _seals(repo, out) | _approvals(args, repo, out):
        bad += 1
    return EXIT_ERROR if bad else EXIT_OK


def history(args, out: Console, err: Console) -> int:
    moves = indicators.history(_records(args, err), args.query)
    if args.output == "json":
        print(json.dumps([m.to_dict() for m in moves], ensure_ascii=False, indent=2))
    else:
        print_history(moves, args.query, out)
    return EXIT_OK


def _open_work_orders(args, err: Console) -> list[dict]:
    """The work orders open now, as `reconciler pending` lists them; none where the repository
    cannot be read (a runner holding the audit files only), said on the error stream."""
    import argparse

    from reconciler.cli.pending import open_orders

    try:
        rows, _notes, _problems = open_orders(argparse.Namespace(target=[], ref=args.ref, repo=args.repo,
                                                                 inventory=args.inventory))
    except ReconcilerError as exc:
        err.print(_("Warning: the pending work orders are left out: {error}", error=exc), markup=False, style="yellow")
        return []
    return rows


def monthly(args, out: Console, err: Console) -> int:
    if not (len(args.month) == 7 and args.month[4] == "-" and args.month[:4].isdigit()
            and args.month[5:].isdigit() and 1 <= int(args.month[5:]) <= 12):
        raise ReconcilerError(_("--month {month!r}: expected YYYY-MM, e.g. 2026-11", month=args.month))
    records = _records(args, err)
    if args.output in ("json", "pdf", "html"):
        report = indicators.monthly_report(records, args.month, _open_work_orders(args, err))
        if args.output == "json":
            print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        else:
            _write_document(args, report, out)
        return EXIT_OK
    rows = indicators.monthly_indicators(records, args.month)
    if args.output == "csv":
        print(indicators_csv(rows, args.month), end="")
    else:
        print_indicators(rows, args.month, out)
        print_unacknowledged(indicators.unacknowledged(records), out)
    return EXIT_OK


def _write_document(args, report, out: Console) -> None:
    from pathlib import Path

    from reconciler.render import monthly

    path = args.out or Path(f"reporte-{args.month}.{args.output}")
    try:
        if args.output == "pdf":
            path.write_bytes(monthly.pdf(report))
        else:
            path.write_text(monthly.html_page(report), encoding="utf-8")
    except OSError as exc:
        raise ReconcilerError(_("cannot write {path}: {error}", path=path, error=exc.strerror)) from None
    out.print(escape(_("{path}: {title}", path=path, title=monthly.title(report))))
