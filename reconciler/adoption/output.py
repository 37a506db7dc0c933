"""What an import writes: one desired-state file per unit, in the repository's layout, and the
reconciliation report as Markdown (for the pull request) and CSV (for the people who clean up)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from reconciler.adoption.people import PROBLEMS, Draft, Imported, Row
from reconciler.errors import ReconcilerError
from reconciler.i18n import N_, _, shown
from reconciler.markdown import markdown_cell
from reconciler.spreadsheet import csv_text

TITLES = {
    "service": N_("Service and built-in accounts (not imported)"),
    "no_employee_key": N_("Accounts without an employee key (not imported)"),
    "duplicate_key": N_("One employee key on two or more accounts (not imported)"),
    "outside_managed_ous": N_("Accounts outside every mapped OU (not imported)"),
    "disabled": N_("Disabled for a long time (imported as bajas)"),
    "disabled_recently": N_("Disabled recently (imported as bajas)"),
    "marked_elsewhere": N_("The reconciler's marker outside the managed OUs (not imported)"),
    "stale": N_("No logon for a long time (imported as active)"),
    "incomplete": N_("Imported, with fields to fill in"),
    "mailbox_without_owner": N_("Mailboxes with no owner"),
    "mailbox_on_several_accounts": N_("Mailboxes that several accounts carry (declared for none)"),
    "extension_without_owner": N_("Extensions with no owner"),
    "extension_on_several_accounts": N_("Extensions that several active accounts carry (not imported)"),
    "unmapped_group": N_("Groups that grant no declared entitlement"),
    "computer": N_("Computers made by hand (drafts: inventory number, serial, brand and model to write)"),
    "computer_outside_managed_ous": N_("Computers outside every mapped OU (not imported)"),
    "firewall_rule": N_("Firewall rules made by hand (drafts: name, unit and justification to write)"),
    "firewall_rule_unreadable": N_("Firewall rules the reconciler cannot express (not imported)"),
}


# libyaml's emitter when PyYAML has it: ten thousand people are written in seconds, not tens.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _dump(data, **options) -> str:
    return yaml.dump(data, Dumper=_DUMPER, **options)


def unit_file_name(unit: str) -> str:
    return f"{unit.lower()}.yaml"


def _one_line(text) -> str:
    """Text for a YAML comment: YAML also ends a line at U+0085, U+2028 and U+2029, and a name read
    from the directory must never end the comment and become content."""
    return " ".join(_BREAKS.sub(" ", str(text)).split())


def _comment(text: str) -> str:
    return f"# {_one_line(text)}\n"


def unit_yaml(unit: str, drafts: list[Draft], source: str) -> str:
    """A unit's file: a header saying where it came from, then each person, with notes."""
    out = [_comment(_("People of {unit} imported from {source} by `reconciler import`: each adopts the existing "
                      "account named by adopt:, keeping its names. Check names, surnames and entitlements before "
                      "approving.", unit=unit, source=source)),
           _dump({"unit": unit}, allow_unicode=True, sort_keys=False), "people:\n"]
    for d in drafts:
        for note in d.notes:
            out.append(f"  # {_one_line(note)}\n")
        block = _dump([d.data], allow_unicode=True, sort_keys=False, width=1000)
        out.append("".join(f"  {line}\n" if line else "\n" for line in block.rstrip("\n").split("\n")))
    return "".join(out)


def lines_yaml(lines: list[dict], source: str) -> str:
    header = _comment(_("Extensions imported from {source} by `reconciler import`: each is adopted as it is, its "
                        "secret kept. Check holders and units before approving.", source=source))
    return header + _dump({"lines": lines}, allow_unicode=True, sort_keys=False, width=1000)


def rules_yaml(device: str, drafts: list[tuple[str, dict]]) -> str:
    """A device's hand-made rules as drafts: `validate` refuses them until a person gives each
    its name, unit and justification (and declares the networks named by address)."""
    out = [_comment(_("Rules made by hand on {device}, imported by `reconciler import`. Each needs name:, unit: "
                      "and justification: written by a person, and its addresses declared in networks.yaml, "
                      "before it validates; delete the ones nobody can explain.", device=device)), "rules:\n"]
    for where, rule in drafts:
        out.append(f"  # {_one_line(where)}\n")
        block = _dump([rule], allow_unicode=True, sort_keys=False, width=1000)
        out.append("".join(f"  {line}\n" for line in block.rstrip("\n").split("\n")))
    return "".join(out)


def write_desired(imported: Imported, folder: Path, source: str) -> list[Path]:
    """One file per unit in `folder`/users, `folder`/assets/lines.yaml for the extensions and
    `folder`/security_rules/importado-<device>.yaml for each firewall's hand-made rules; refuses
    (writing nothing) if any of them exists already."""
    texts = {folder / "users" / unit_file_name(unit): unit_yaml(unit, imported.people[unit], source)
             for unit in sorted(imported.people)}
    if imported.lines:
        texts[folder / "assets" / "lines.yaml"] = lines_yaml(imported.lines, source)
    if imported.equipment:
        texts[folder / "assets" / "equipment.yaml"] = _comment(_(
            "Computers imported from {source} by `reconciler import`: each needs its inventory number, serial, brand "
            "and model from its resguardo before it validates; then the plan adopts it by its hostname.",
            source=source)) + _dump({"equipment": imported.equipment}, allow_unicode=True, sort_keys=False,
                                             width=1000)
    for device, drafts in sorted(imported.rules.items()):
        texts[folder / "security_rules" / f"importado-{device.lower()}.yaml"] = rules_yaml(device, drafts)
    existing = [str(p) for p in texts if p.exists() or p.is_symlink()]
    if existing:
        raise ReconcilerError(_("import writes new files only, and these exist: {files}. Import into an empty "
                                "folder (--out) and merge by hand", files=", ".join(existing)))
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    return list(texts)


def _md(text) -> str:
    return markdown_cell(shown(text))


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
