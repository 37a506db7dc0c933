"""`reconciler validate`: every problem in desired_state/, the inventory and the approval
policy, with file, line and field.  Reads files only: no Git unless --ref, no target."""
from __future__ import annotations

import datetime as dt
from collections import Counter

from rich.console import Console
from rich.markup import escape

from reconciler.approval.policy import POLICY_FILE, load_policy
from reconciler.cli import EXIT_OK
from reconciler.config.inventory import load_inventory, mail_rules, network_devices
from reconciler.desired.assets import released
from reconciler.desired.load import load_desired_state
from reconciler.desired.source import at_ref, plain_directory
from reconciler.errors import ValidationFailed, plain
from reconciler.i18n import _, ngettext, shown


def validate(args, out: Console, err: Console) -> int:
    source = at_ref(args.repo, args.ref) if args.ref else plain_directory(args.repo)
    problems, rules, devices, targets = [], None, None, {}
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
    # Each count with its own noun, in its own plural form; the sentence that holds them says
    # where they go.
    counts = {
        "people": ngettext("{n} person", "{n} people", len(state.people)),
        "activo": people["activo"],  # activo and baja: the status values, as the YAML writes them
        "baja": people["baja"],
        "units": ngettext("{n} unit", "{n} units", len(state.units)),
        "entitlements": ngettext("{n} entitlement", "{n} entitlements", len(state.entitlements)),
        "mailboxes": ngettext("{n} mailbox", "{n} mailboxes", mailboxes),
        "shared": ngettext("{n} shared", "{n} shared", len(state.shared_mailboxes)),
    }
    heading = escape(_("desired_state is valid:"))
    text = _("{people} ({activo} activo, {baja} baja) in {units}; {entitlements}; {mailboxes} and {shared}.", **counts)
    out.print(f"[green]{heading}[/] {escape(text)}")
    heading = escape(_("desired_state/assets is valid:"))
    lines = ngettext("{n} phone line", "{n} phone lines", len(state.lines))
    equipment = ngettext("{n} piece of equipment", "{n} pieces of equipment", len(state.equipment))
    out.print(f"[green]{heading}[/] {escape(lines)}, {escape(equipment)}.")
    if state.security is not None:
        heading = escape(_("desired_state/security_rules is valid:"))
        rules_count = ngettext("{n} rule", "{n} rules", len(state.security.rules))
        probes = ngettext("{n} probe", "{n} probes", sum(len(r.probes) for r in state.security.rules))
        out.print(f"[green]{heading}[/] {escape(rules_count)}, {escape(probes)}.")
    people_by_key = {p.employee_key: p for p in state.people}
    heading = escape(_("Released by a baja:"))
    for note in released(list(state.lines), list(state.equipment), people_by_key):
        out.print(f"[yellow]{heading}[/] {escape(shown(note))}")
    if rules is None:
        heading = escape(_("No mail target in {inventory}:", inventory=args.inventory))
        text = _("mail domains and quotas were not checked.")
        out.print(f"[yellow]{heading}[/] {escape(text)}")
    _old_envelopes(args.repo, targets, state, out)
    _undeclared_requesters(targets, state, out)
    _systems_nobody_serves(targets, state, out)
    if policy is None:
        heading = escape(_("No approval policy ({file}):", file=POLICY_FILE))
        text = _("apply will approve nothing.")
        out.print(f"[yellow]{heading}[/] {escape(text)}")
    else:
        heading = escape(_("{file} is valid:", file=POLICY_FILE))
        text = ngettext("{n} approver.", "{n} approvers.", len(policy.approvers))
        out.print(f"[green]{heading}[/] {escape(text)}")
    return EXIT_OK


def _systems_nobody_serves(targets: dict, state, out: Console) -> None:
    """An entitlement to a system with no API that no target of the inventory serves grants
    nothing here: said, not an error (another inventory may serve it)."""
    if not targets:
        return
    served = {getattr(t, "system", None) for t in targets.values()}
    heading = escape(_("No target serves:"))
    for key, e in sorted(state.entitlements.items()):
        if e.system and e.system not in served:
            text = _("entitlement {entitlement} grants system {system}, which no target of kind manual in this "
                     "inventory serves: nobody receives its work orders", entitlement=key, system=e.system)
            out.print(f"[yellow]{heading}[/] {escape(text)}")


def _old_envelopes(repo_path, targets: dict, state, out: Console) -> None:
    """Envelopes older than the delivery limit with no acknowledgement: someone has not received,
    or not signed for, their credentials (apply takes them back)."""
    delivery = next((t.delivery for t in targets.values() if t.delivery is not None), None)
    if delivery is None or not delivery.sealed:
        return
    from reconciler.delivery.envelopes import envelopes
    from reconciler.desired.source import open_repo

    repo = open_repo(repo_path)
    if repo is None:
        return
    now = dt.datetime.now(dt.timezone.utc)
    heading = escape(_("Not acknowledged:"))
    for e in envelopes(repo):
        age = (now - e.made).days
        acuse = getattr(state.person(e.holder), "acuse", None)
        if age > delivery.envelope_days and not (acuse is not None and acuse.folio == e.folio):
            text = ngettext("the envelope of {holder}, folio {folio}, is {n} day old (limit {limit}): deliver it "
                            "and record the signed carta as acuse:, or the next apply takes it back",
                            "the envelope of {holder}, folio {folio}, is {n} days old (limit {limit}): deliver it "
                            "and record the signed carta as acuse:, or the next apply takes it back",
                            age, holder=plain(e.holder), folio=plain(e.folio), limit=delivery.envelope_days)
            out.print(f"[yellow]{heading}[/] {escape(text)}")


def _undeclared_requesters(targets: dict, state, out: Console) -> None:
    """A solicitud's deliver_to that the inventory does not declare for the person's unit: the
    credentials then go to the unit's recipients alone, so say so before an apply does it."""
    delivery = next((t.delivery for t in targets.values() if t.delivery is not None), None)
    if delivery is None or not delivery.sealed:
        return
    heading = escape(_("Not a declared requester:"))
    for person in state.people:
        email = person.solicitud.deliver_to
        if email and delivery.requester(email, person.unit) is None:
            text = _("{key}: deliver_to {email} is not in the inventory's delivery.requesters for {unit}; the "
                     "credentials go to the unit's recipients alone", key=person.employee_key, email=plain(email),
                     unit=person.unit)
            out.print(f"[yellow]{heading}[/] {escape(text)}")
