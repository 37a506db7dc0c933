"""Plans and apply results for people (terminal text, Markdown) and machines (JSON)."""
from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console
from rich.markup import escape

from reconciler.i18n import _, ngettext, shown
from reconciler.markdown import markdown_cell
from reconciler.plan import Change, Movement, Plan
from reconciler.render.words import attribute_name, kind_name, movements, yes_no

_COLOUR = {Movement.ADOPCION: "cyan", Movement.ALTA: "green", Movement.MODIFICACION: "yellow", Movement.BAJA: "red"}
_WIDTH = 26
MARKDOWN_LIMIT = 60_000  # GitHub refuses comments over 65,536 characters


def _value(value: Any) -> str:
    if value is None:
        return _("(none)")
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return json.dumps(shown(value), ensure_ascii=False)  # a value in words (a Message) in today's language


def _attribute_lines(change: Change) -> list[str]:
    lines = []
    for a in change.attributes:
        name = escape(shown(a.name).ljust(_WIDTH))
        if change.movement is Movement.ALTA:
            lines.append(f"      [green]+[/] {name}= {escape(_value(a.after))}")
        elif a.is_set:
            lines += [f"      [green]+[/] {escape(shown(a.name))} {escape(shown(v))}" for v in a.added()]
            lines += [f"      [red]-[/] {escape(shown(a.name))} {escape(shown(v))}" for v in a.removed()]
        else:
            lines.append(f"      [yellow]~[/] {name}{escape(_value(a.before))} [dim]→[/] {escape(_value(a.after))}")
    return lines


def _heading(change: Change) -> str:
    colour = _COLOUR[change.movement]
    notes = []
    if change.folio:
        notes.append(_("folio {folio}", folio=change.folio))
    if change.reason:
        notes.append(shown(change.reason))
    note = f"  [dim]# {escape('; '.join(notes))}[/]" if notes else ""
    return f"  [{colour}]{change.movement.symbol}[/] [bold]{escape(kind_name(change.kind))}[/] {escape(shown(change.label))}{note}"


def _solicitud_line(change: Change) -> str | None:
    """Who asked and whether the policy lets it through, under each change of a commit plan."""
    if change.approval is None or change.provenance is None and change.approval.ok:
        return None
    who = f"{escape(shown(change.provenance.summary()))}; " if change.provenance is not None else ""
    reason, heading = escape(shown(change.approval.reason)), escape(_("solicitud:"))
    if change.approval.ok:
        return f"      [dim]{heading} {who}[/][green]✓ {reason}[/]"
    if change.approval.pending:
        return f"      [dim]{heading} {who}[/][cyan]⏳ {reason}[/]"
    refused = escape(_("not approved: {reason}", reason=shown(change.approval.reason)))
    return f"      [dim]{heading} {who}[/][red]✗ {refused}[/]"


def print_plan(plan: Plan, console: Console) -> None:
    desired, scope, fingerprint = _("Desired state:"), _("Scope:"), _("Fingerprint:")
    console.print(f"[bold]{desired}[/] {escape(shown(plan.source))}")
    console.print(f"[bold]{scope}[/] {escape(shown(plan.scope))}   [bold]{fingerprint}[/] {plan.fingerprint}")
    for target, changes in plan.by_target().items():
        heading = escape(_("Target {target}", target=target))
        console.print(f"\n[bold underline]{heading}[/]\n")
        for change in changes:
            console.print(_heading(change))
            for line in _attribute_lines(change):
                console.print(line)
            if plan.commit is not None and (line := _solicitud_line(change)):
                console.print(line)
    if plan.conflicts:
        count = ngettext("{n} conflict", "{n} conflicts", len(plan.conflicts))
        console.print(f"\n[bold magenta]{count}[/] " + escape(_(
            "(objects the reconciler does not own stand in the way; left alone, resolve them by hand):")))
        for c in plan.conflicts:
            console.print(f"  [magenta]![/] {escape(c.target)}: {escape(shown(c.label))}: {escape(shown(c.message))}")
    warned = _("Warning:")
    for warning in plan.warnings:
        console.print(f"\n[bold yellow]{escape(warned)}[/] {escape(shown(warning))}")
    console.print()
    judged = [c for c in plan.changes if c.approval is not None and not c.approval.pending] if plan.commit else []
    unapproved = sum(1 for c in judged if not c.approved)
    skipped = ngettext("{n} not approved: apply skips it.", "{n} not approved: apply skips them.", unapproved)
    tail = f" [red]{escape(skipped)}[/]" if unapproved else ""
    console.print(f"[bold]{escape(plan.summary_line())}[/]{tail}")


def plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), ensure_ascii=False, indent=2)


_md = markdown_cell


def _md_name(name: str) -> str:
    """An attribute as an approver reads it: its word, else its code."""
    word = attribute_name(name)
    return _md(word) if word else f"`{_md(name)}`"


def _md_alta(change: Change) -> str:
    """For an approver: where the new object lands and what it is given, not every attribute."""
    given = {a.name: a.after for a in change.attributes}
    parts = [f"{_md_name(name)}: `{_md(_value(given[name]))}`" for name in ("title", "physicalDeliveryOfficeName")
             if given.get(name)]
    if given.get("groups"):
        parts.append(f"{_md_name('groups')}: " + ", ".join(f"`{_md(g)}`" for g in given["groups"]))
    return "<br>".join(parts)


def _md_attributes(change: Change) -> str:
    if change.movement is Movement.ALTA:
        return _md_alta(change)
    parts = []
    for a in change.attributes:
        if a.is_set:
            name = _md_name(a.name)
            parts += [f"+{name} `{_md(v)}`" for v in a.added()] + [f"−{name} `{_md(v)}`" for v in a.removed()]
        else:
            parts.append(f"{_md_name(a.name)}: `{_md(_value(a.before))}` → `{_md(_value(a.after))}`")
    return "<br>".join(parts)


def _md_solicitud(change: Change) -> str:
    if change.approval is None:
        return ""
    p = change.provenance
    who = _("{request} by {requester}", request=_md(p.pull_request or p.landed[:10]),
            requester=_md(p.requester.name)) + "<br>" if p is not None else ""
    mark = "✅" if change.approval.ok else "⏳" if change.approval.pending else "⛔"
    return f"{who}{mark} {_md(shown(change.approval.reason))}"


_PINS = re.compile(r"<!-- reconciler-fingerprint(?: ([a-z0-9][a-z0-9_-]*))?: ([0-9a-f]{20}) -->")


def fingerprints_in(markdown: str) -> tuple[str | None, dict[str, str]]:
    """The fingerprints a Markdown plan carries (plan_markdown): the whole plan's and each
    target's; the last of each when the text holds several plans."""
    whole, per_target = None, {}
    for target, fingerprint in _PINS.findall(markdown):
        if target:
            per_target[target] = fingerprint
        else:
            whole = fingerprint
    return whole, per_target


def plan_markdown(plan: Plan) -> str:
    # Each target's fingerprint too: a pipeline that applies in shards pins each shard's part.
    out = [f"<!-- reconciler-fingerprint: {plan.fingerprint} -->",
           *[f"<!-- reconciler-fingerprint {target}: {fingerprint} -->"
             for target, fingerprint in plan.target_fingerprints.items()], _("### Reconciler plan"), "",
           f"**{plan.summary_line()}**", "", _("Desired state: {source}", source=_md(shown(plan.source))) + "  ",
           _("Scope: {scope}", scope=_md(shown(plan.scope))) + "  ",
           _("Fingerprint: `{fingerprint}` (apply with `--expect-fingerprint {fingerprint}` to refuse if the "
             "live state moves)", fingerprint=plan.fingerprint), ""]
    solicitudes = plan.commit is not None
    for target, changes in plan.by_target().items():
        out += ["", _("#### Target `{target}`", target=target)]
        for movement in Movement:
            rows = [c for c in changes if c.movement is movement]
            if not rows:
                continue
            out += ["", f"<details{' open' if movement is not Movement.ALTA else ''}>"
                        f"<summary>{movement.symbol} {movements(movement, len(rows))}</summary>", "",
                    "| | " + " | ".join((_("kind"), _("object"), _("folio"), _("changes"))) + " |"
                    + (" " + _("solicitud") + " |" if solicitudes else ""),
                    "|---|---|---|---|---|" + ("---|" if solicitudes else "")]
            for c in rows:
                note = _md(shown(c.reason)) + ("<br>" if c.reason and c.attributes else "")
                extra = f" {_md_solicitud(c)} |" if solicitudes else ""
                out.append(f"| {movement.symbol} | {_md(kind_name(c.kind))} | {_md(c.label)} | {_md(c.folio or '')} | "
                           f"{note}{_md_attributes(c)} |{extra}")
            out += ["", "</details>"]
    if plan.conflicts:
        out += ["", "#### ⚠ " + ngettext("{n} conflict (left alone, resolve it by hand)",
                                          "{n} conflicts (left alone, resolve them by hand)", len(plan.conflicts)), ""]
        out += [f"- `{_md(c.target)}` {_md(c.label)}: {_md(shown(c.message))}" for c in plan.conflicts]
    if plan.warnings:
        out += ["", "#### ⚠ " + _("Warnings"), ""] + [f"- {_md(shown(w))}" for w in plan.warnings]
    text = "\n".join(out) + "\n"
    if len(text) > MARKDOWN_LIMIT:
        cut = text[:MARKDOWN_LIMIT].rsplit("\n", 1)[0]
        text = cut + "\n\n</details>\n\n_" + _("The plan is too long for one comment; run `reconciler plan` for all "
                                                "of it.") + "_\n"
    return text
