"""`reconciler validate`: every problem in desired_state/, the inventory and the approval
policy, with file, line and field.  Reads files only: no Git unless --ref, no target."""
from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape

from reconciler.approval.policy import POLICY_FILE, load_policy
from reconciler.cli import EXIT_OK
from reconciler.config.inventory import load_inventory, mail_rules, network_devices
from reconciler.desired.assets import released
from reconciler.desired.load import load_desired_state
from reconciler.desired.source import at_ref, plain_directory
from reconciler.errors import ValidationFailed


def validate(args, out: Console, err: Console) -> int:
    source = at_ref(args.repo, args.ref) if args.ref else plain_directory(args.repo)
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
