"""Reviewing a plan against Git: each change gets its solicitud and the policy's verdict."""
from __future__ import annotations

from dataclasses import replace

import git

from .desired import DesiredState
from .desired.files import blob_text
from .errors import ReconcilerError
from .plan import Change, Plan
from .providers.ad import dn as dnlib
from .policy import POLICY_FILE, Approval, Policy, Scope, awaiting, parse_policy
from .solicitudes import History
from .source import DESIRED_DIR, DesiredSource


def load_policy(source: DesiredSource) -> Policy | None:
    """The policy at the same commit (or in the same working tree) as the desired state."""
    path = source.path_in_repo(POLICY_FILE)
    if source.commit is not None:
        text = blob_text(source.commit, path)
    else:
        file = source.files.root.parent / POLICY_FILE  # type: ignore[attr-defined]
        text = file.read_text(encoding="utf-8") if file.is_file() else None
    return parse_policy(text, path)


def _privileged_groups(state: DesiredState, policy: Policy) -> dict[str, str]:
    """casefolded group name -> entitlement key, for every privileged entitlement."""
    return {e.group.casefold(): e.key for e in state.entitlements.values()
            if e.privileged or e.key in policy.privileged_entitlements}


def scope_of(change: Change, privileged: dict[str, str]) -> Scope:
    granted = ()
    for a in change.attributes:
        if a.name == "groups":
            granted = tuple(sorted({privileged[g.casefold()] for g in a.added() if g.casefold() in privileged}))
    return Scope(change.unit, tuple(sorted({o.file for o in change.origins})), granted)


# Changes nobody declares line by line: what the inventory names, or files derived from what
# was approved.
IMPLIED = {"ou": "a managed OU named in the inventory",
           "mail-maps": "the maps are rewritten from the approved mailbox registry",
           "firewall-chain": "the table and chain the inventory names, holding only approved rules",
           "router-acl": "the ACL the inventory binds to the interface, holding only approved rules"}


def _written_key(change: Change) -> str | None:
    """The text a removed declaration had, for finding the commit that removed it."""
    if change.kind in ("account", "mailbox", "password-reset", "sip-line", "firewall-rule"):
        return change.key  # the employee key, the line's number, the rule's name
    if change.kind == "shared-mailbox":
        return change.key.split(":", 1)[1]  # its address
    return None


def _proposed(source: DesiredSource, base: str | None):
    """A predicate: did this commit land outside `base`, i.e. in the pull request under review?"""
    if base is None:
        return lambda sha: False
    try:
        base_sha = source.repo.commit(base).hexsha
    except (ValueError, git.BadName):
        raise ReconcilerError(f"--proposal: no commit {base!r} to compare the pull request with") from None
    cache: dict[str, bool] = {}

    def proposed(sha: str) -> bool:
        if sha not in cache:
            cache[sha] = not source.repo.is_ancestor(sha, base_sha)
        return cache[sha]
    return proposed


def review(plan: Plan, source: DesiredSource, state: DesiredState, proposal_base: str | None = None) -> Plan:
    """The plan with provenance and approval on every change.  A working-tree preview has no
    solicitudes: its changes are marked as not approvable.  With `proposal_base` (the protected
    branch a pull request targets), changes the pull request itself brings are marked as
    awaiting its approval instead of judged: their trailers are written when it merges."""
    if source.commit is None:
        verdict = Approval(False, "a working-tree preview is never applied")
        return replace(plan, changes=tuple(replace(c, approval=verdict) for c in plan.changes))
    policy = load_policy(source)
    # A handful of changes in files of thousands of lines: blame just their lines.
    history = History(source.repo, source.commit, by_span=len(plan.changes) <= 50)
    users_dir = source.path_in_repo(f"{DESIRED_DIR}/users")
    privileged = _privileged_groups(state, policy) if policy else {}
    proposed = _proposed(source, proposal_base)
    reviewed = []
    for change in plan.changes:
        provenance = history.of(change.origins, _written_key(change), users_dir)
        if not change.origins and change.kind in IMPLIED:
            approval = Approval(True, IMPLIED[change.kind])
        elif provenance is not None and proposed(provenance.landed):
            scope = scope_of(change, privileged)
            approval = awaiting(policy.required if policy else 1, scope.privileged,
                                policy.privileged_required if policy else 2)
        elif policy is None:
            approval = Approval(False, f"no approval policy {source.path_in_repo(POLICY_FILE)} at commit "
                                       f"{source.commit.hexsha[:10]}")
        else:
            approval = policy.evaluate(provenance, scope_of(change, privileged))
        reviewed.append(replace(change, provenance=provenance, approval=approval))
    return replace(plan, changes=tuple(_with_needed_containers(reviewed)))


def _with_needed_containers(changes: list[Change]) -> list[Change]:
    """An approved person's alta or move implies the OU and groups it needs: such containers
    are approved with it even when the lines that declare them were approved by nobody the
    policy counts for them (a unit head approving their unit's first person, say)."""
    ous, groups = {}, {}
    for c in changes:
        if c.kind == "account" and c.approved and c.desired is not None:
            ou = c.desired.parent
            while ou and "," in ou:
                ous.setdefault(dnlib.key(ou), c.label)
                ou = dnlib.parent(ou)
            for g in c.desired.groups:
                groups.setdefault(g.casefold(), c.label)
    out = []
    for c in changes:
        needer = (ous.get(dnlib.key(c.key)) if c.kind == "ou" else groups.get(c.key.casefold()) if c.kind == "group"
                  else None)
        if needer and not c.approved and c.movement.value == "alta":
            c = replace(c, approval=Approval(True, f"needed by the approved {needer}"))
        out.append(c)
    return out
