"""The approval policy (inventory/approvers.yaml): who may approve which units and paths.

A change is judged by the policy in force before the commit that landed it (its first
parent: see in_force.py), so changing the policy is itself a reviewed pull request, judged by
the policy it changes, and takes effect after it lands.  Rules, for each change:
  - its solicitud must carry `Approved-by:` trailers from approvers named in the policy whose
    `units` include the change's unit or whose `paths` match a file the change comes from;
  - the requester (author of the change) never counts as an approver of their own change,
    nor does the person the change is about (by their mailbox's address or aliases);
  - a change that grants a privileged entitlement (listed here, or flagged `privileged: true`
    in entitlements.yaml) needs `privileged_approvals` distinct approvers (default 2), any other
    change `required_approvals` (default 1);
  - a commit pushed straight to the protected branch has no trailers and is never approved.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from reconciler.approval.solicitudes import Identity, Provenance
from reconciler.desired.checks import FileCheck
from reconciler.desired.files import LINK, blob_text
from reconciler.desired.source import DesiredSource
from reconciler.desired.yamlfile import parse_yaml
from reconciler.errors import Problem, ValidationFailed

POLICY_FILE = "inventory/approvers.yaml"


@dataclass(frozen=True)
class Approver:
    identity: Identity
    units: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def may_approve(self, unit: str | None, files: tuple[str, ...]) -> bool:
        if unit is not None and ("*" in self.units or unit in self.units):
            return True
        return any(fnmatch.fnmatchcase(f, p) for f in files for p in self.paths)


@dataclass(frozen=True)
class Approval:
    ok: bool
    reason: str  # why not, or who approved
    approvers: tuple[str, ...] = ()  # the approvals that counted
    pending: bool = False  # part of the pull request under review: its approval is being decided

    def to_dict(self) -> dict:
        return {"approved": self.ok, "reason": self.reason, "counted": list(self.approvers), "pending": self.pending}


def awaiting(required: int, privileged: tuple[str, ...], privileged_required: int) -> Approval:
    """The verdict for a change a pull request under review brings: not yet approved, and
    what its approval will take."""
    if privileged:
        need = f"{privileged_required} distinct approvers (grants privileged {', '.join(privileged)})"
    else:
        need = f"{required} approver{'s' if required > 1 else ''}"
    return Approval(False, f"in this pull request: needs {need} other than the requester", pending=True)


@dataclass(frozen=True)
class Scope:
    """What a change touches, for the policy: its unit, the files it comes from, whether it
    grants a privileged entitlement."""

    unit: str | None
    files: tuple[str, ...]
    privileged: tuple[str, ...] = ()  # privileged entitlements granted
    subjects: frozenset[str] = frozenset()  # casefolded addresses of the person the change is about


@dataclass(frozen=True)
class Policy:
    approvers: tuple[Approver, ...]
    required: int = 1
    privileged_required: int = 2
    privileged_entitlements: frozenset[str] = field(default_factory=frozenset)
    file: str = POLICY_FILE

    def by_email(self, identity: Identity) -> Approver | None:
        return next((a for a in self.approvers if a.identity.key == identity.key), None)

    def evaluate(self, provenance: Provenance | None, scope: Scope) -> Approval:
        if provenance is None:
            return Approval(False, "no commit on the protected branch declares it, so no solicitud approved it")
        if not provenance.approvers:
            what = "was pushed straight to the protected branch" if provenance.how == "direct push" else "landed"
            return Approval(False, f"commit {provenance.landed[:10]} {what} without approval "
                                   "(no Approved-by trailer)")
        counted, refused = [], []
        seen: set[str] = set()
        for ident in provenance.approvers:
            if ident.key in seen:
                continue  # the same person twice counts once
            seen.add(ident.key)
            approver = self.by_email(ident)
            if ident.key == provenance.requester.key:
                refused.append(f"{ident.name} requested the change and cannot approve it")
            elif ident.key in scope.subjects:
                refused.append(f"{ident.name} is the person the change is about and cannot approve it")
            elif approver is None:
                refused.append(f"{ident} is not an approver in {self.file}")
            elif not approver.may_approve(scope.unit, scope.files):
                where = f"unit {scope.unit}" if scope.unit else ", ".join(scope.files) or "this object"
                refused.append(f"{ident.name} may not approve {where}")
            else:
                counted.append(str(ident))
        refused += [f"unreadable trailer 'Approved-by: {t}' (write Name <email>)" for t in provenance.unreadable_trailers]
        needed = self.privileged_required if scope.privileged else self.required
        if len(counted) >= needed:
            return Approval(True, "approved by " + ", ".join(a.split(" <")[0] for a in counted), tuple(counted))
        why = (f"grants privileged {', '.join(scope.privileged)}: needs {needed} distinct approvers"
               if scope.privileged else f"needs {needed} approver{'s' if needed > 1 else ''}")
        detail = f"; {'; '.join(refused)}" if refused else ""
        return Approval(False, f"{why}, has {len(counted)}{detail}", tuple(counted))


def parse_policy(text: str | None, display: str) -> Policy | None:
    """The policy in `text` (None when the file does not exist)."""
    if text is None:
        return None
    check = FileCheck(display, text)
    data, problems = parse_yaml(text, display)
    if problems:
        raise ValidationFailed(problems)
    check.validate(data, "approvers")
    if check.problems:
        raise ValidationFailed(check.problems)
    approvers = []
    for index, raw in enumerate(data["approvers"]):
        ident = Identity(raw["name"], raw["email"])
        if any(a.identity.key == ident.key for a in approvers):
            check.add(("approvers", index, "email"), f"{raw['email']} is listed twice")
        approvers.append(Approver(ident, tuple(raw.get("units", ())), tuple(raw.get("paths", ()))))
    if check.problems:
        raise ValidationFailed(check.problems)
    return Policy(tuple(approvers), data.get("required_approvals", 1), data.get("privileged_approvals", 2),
                  frozenset(data.get("privileged_entitlements", ())), display)


def load_policy(source: DesiredSource) -> Policy | None:
    """The policy at the same commit (or in the same working tree) as the desired state: what
    `validate` checks.  Review judges each change by the policy before it (in_force.py)."""
    path = source.path_in_repo(POLICY_FILE)
    if source.commit is not None:
        text = blob_text(source.commit, path)
    else:
        root = source.files.root.parent  # type: ignore[attr-defined]
        file = root / POLICY_FILE
        if file.is_symlink() or (file.exists() and not file.resolve().is_relative_to(root.resolve())):
            raise ValidationFailed([Problem(path, None, "", f"cannot read: {LINK}")])
        text = file.read_text(encoding="utf-8") if file.is_file() else None
    return parse_policy(text, path)
