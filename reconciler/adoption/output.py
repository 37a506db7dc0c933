"""What an import writes: one desired-state file per unit, in the repository's layout, and the
reconciliation report as Markdown (for the pull request) and CSV (for the people who clean up)."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from reconciler.adoption.people import PROBLEMS, Draft, Imported, Row
from reconciler.errors import ReconcilerError
from reconciler.i18n import N_, _, shown
from reconciler.spreadsheet import csv_text

TITLES = {
    "service": N_("Service and built-in accounts (not imported)"),
    "no_employee_key": N_("Accounts without an employee key (not imported)"),
    "duplicate_key": N_("One employee key on two or more accounts (not imported)"),
    "outside_managed_ous": N_("Accounts outside every mapped OU (not imported)"),
    "disabled": N_("Disabled for a long time (imported as bajas)"),
    "stale": N_("No logon for a long time (imported as active)"),
    "incomplete": N_("Imported, with fields to fill in"),
    "mailbox_without_owner": N_("Mailboxes with no owner"),
    "extension_without_owner": N_("Extensions with no owner"),
    "unmapped_group": N_("Groups that grant no declared entitlement"),
}


def unit_file_name(unit: str) -> str:
    return f"{unit.lower()}.yaml"


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in str(text).splitlines())


def unit_yaml(unit: str, drafts: list[Draft], source: str) -> str:
    """A unit's file: a header saying where it came from, then each person, with notes."""
    out = [_comment(_("People of {unit} imported from {source} by `reconciler import`: each adopts the existing "
                      "account named by adopt:, keeping its names. Check names, surnames and entitlements before "
                      "approving.", unit=unit, source=source)),
           yaml.safe_dump({"unit": unit}, allow_unicode=True, sort_keys=False), "people:\n"]
    for d in drafts:
        for note in d.notes:
            out.append("".join(f"  # {line}\n" for line in str(note).splitlines()))
        block = yaml.safe_dump([d.data], allow_unicode=True, sort_keys=False, width=1000)
        out.append("".join(f"  {line}\n" if line else "\n" for line in block.splitlines()))
    return "".join(out)


def write_people(imported: Imported, folder: Path, source: str) -> list[Path]:
    """One file per unit in `folder`; refuses (writing nothing) if any of them exists already."""
    paths = {unit: folder / unit_file_name(unit) for unit in sorted(imported.people)}
    existing = [str(p) for p in paths.values() if p.exists() or p.is_symlink()]
    if existing:
        raise ReconcilerError(_("import writes new files only, and these exist: {files}. Import into an empty "
                                "folder (--out) and merge by hand", files=", ".join(existing)))
    folder.mkdir(parents=True, exist_ok=True)
    for unit, path in paths.items():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(unit_yaml(unit, imported.people[unit], source))
    return list(paths.values())


def _md(text) -> str:
    return shown(text).replace("|", "\\|").replace("\n", " ")


def report_markdown(imported: Imported, source: str) -> str:
    people = sum(len(d) for d in imported.people.values())
    out = [_("### Reconciliation report: {source}", source=_md(source)), "",
           _("{people} people imported into {units} units; {rows} rows below, each with the decision it asks for.",
             people=people, units=len(imported.people), rows=len(imported.rows))]
    for problem in PROBLEMS:
        rows = [r for r in imported.rows if r.problem == problem]
        if not rows:
            continue
        title = _(TITLES[problem])
        out += ["", f"#### {title} ({len(rows)})", "",
                "| " + " | ".join((_("object"), _("account"), _("employee key"), _("detail"), _("decision"))) + " |",
                "|---|---|---|---|---|"]
        out += [f"| {_md(r.object)} | {_md(r.account)} | {_md(r.key)} | {_md(r.detail)} | {_md(r.decision)} |"
                for r in rows]
    return "\n".join(out) + "\n"


def report_csv(rows: list[Row]) -> str:
    header = (_("problem"), _("object"), _("account"), _("employee key"), _("detail"), _("decision"))
    return csv_text(header, ([r.problem, r.object, r.account, r.key, shown(r.detail), shown(r.decision)] for r in rows))
