"""The approval policy (inventory/approvers.yaml): who may approve which units and paths, and
with which keys.

A change is judged by the policy in force before the commit that landed it (see in_force.py
and ledger.py), so changing the policy is itself a reviewed pull request, judged by the policy
it changes, and takes effect after it lands.  Rules, for each change:
  - what counts is a signed approval (signatures.py): an approver's own, verified against the
    keys this policy lists for them, or the merge bot's attestation, verified against the
    bot's key, whose forge accounts map to approvers here.  `Approved-by:` trailers prove
    nothing: anyone who writes a commit message can write them;
  - an approver counts for a change whose unit is in their `units` or whose files match their
    `paths`;
  - the requesters (every author of the commits approved, the pull request's author on the
    forge) never count as approvers of their own change, nor does the person the change is
    about (by their mailbox's address or aliases);
  - a change that grants a privileged entitlement (listed here, or flagged `privileged: true`
    in entitlements.yaml) needs `privileged_approvals` distinct approvers (default 2), any other
    change `required_approvals` (default 1).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from reconciler.approval.signatures import MAX_CHECKS_PER_SIGNER, Signed, Verifier, public_key
from reconciler.approval.solicitudes import Identity
from reconciler.desired.checks import FileCheck
from reconciler.desired.files import LINK, blob_text
from reconciler.desired.source import DesiredSource
from reconciler.desired.yamlfile import not_utf8, parse_yaml
from reconciler.errors import Problem, ValidationFailed

POLICY_FILE = "inventory/approvers.yaml"


@dataclass(frozen=True)
class Approver:
    identity: Identity
    units: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # SSH public keys ("type base64") their approvals are signed with
    forge: tuple[tuple[str, str], ...] = ()  # (forge, account) pairs, for the merge bot
    employee_key: str | None = None  # who they are in desired_state/: never the approver of their own changes

    def may_approve(self, unit: str | None, files: tuple[str, ...]) -> bool:
        if unit is not None and ("*" in self.units or unit in self.units):
            return True
        return any(fnmatch.fnmatchcase(f, p) for f in files for p in self.paths)


@dataclass(frozen=True)
class Bot:
    name: str
    key: str
    forge: str


@dataclass(frozen=True)
class Vouch:
    """One approver's approval, from a signature that verified."""

    approver: Approver
    via: str  # "signature" or "bot NAME (github account)"


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
    about: str | None = None  # the change's key (an employee key, for a person)


@dataclass(frozen=True)
class Policy:
    approvers: tuple[Approver, ...]
    required: int = 1
    privileged_required: int = 2
    privileged_entitlements: frozenset[str] = field(default_factory=frozenset)
    file: str = POLICY_FILE
    bots: tuple[Bot, ...] = ()

    def by_email(self, identity: Identity) -> Approver | None:
        return next((a for a in self.approvers if a.identity.key == identity.key), None)

    def by_forge(self, forge: str, account: str) -> Approver | None:
        return next((a for a in self.approvers if (forge, account.casefold()) in
                     {(f, acc.casefold()) for f, acc in a.forge}), None)

    def vouches(self, signed: list[Signed], verifier: Verifier) -> tuple[list[Vouch], list[str], set[str]]:
        """The approvals these statements carry that verify against this policy's keys; why
        the others do not count; the forge authors the bot names (requesters, by email)."""
        vouches, refused, authors = [], [], set()
        checks: dict[str, int] = {}  # signer -> signatures checked (each costs a process)
        for s in signed:
            st = s.statement
            signer = st.signer.casefold()
            if signer in {v.approver.identity.key for v in vouches if v.via == "signature"}:
                continue  # counted already
            checks[signer] = checks.get(signer, 0) + 1
            if checks[signer] == MAX_CHECKS_PER_SIGNER + 1:
                refused.append(f"more than {MAX_CHECKS_PER_SIGNER} signatures in the name of {st.signer}: "
                               "the rest are not checked")
            if checks[signer] > MAX_CHECKS_PER_SIGNER:
                continue
            if st.kind == "approval":
                approver = next((a for a in self.approvers if a.identity.key == signer), None)
                if approver is None:
                    refused.append(f"a signature by {st.signer}, who is not an approver in {self.file}")
                elif not verifier.valid(s, st.signer, approver.keys):
                    refused.append(f"{approver.identity.name}'s signature does not verify against the keys "
                                   f"{self.file} lists for them")
                else:
                    vouches.append(Vouch(approver, "signature"))
                continue
            bot = next((b for b in self.bots if b.name == st.signer), None)
            if bot is None or bot.forge != st.forge:
                refused.append(f"an attestation by {st.signer!r}, not a {st.forge} bot in {self.file}")
            elif not verifier.valid(s, f"bot:{bot.name}", (bot.key,)):
                refused.append(f"bot {bot.name}'s attestation does not verify against its key in {self.file}")
            else:
                if (author := self.by_forge(st.forge, st.author)) is not None:
                    authors.add(author.identity.key)
                for account in st.approved_by:
                    approver = self.by_forge(st.forge, account)
                    if approver is None:
                        refused.append(f"{st.forge} account {account} is no approver's in {self.file}")
                    else:
                        vouches.append(Vouch(approver, f"bot {bot.name} ({st.forge} {account})"))
        return vouches, refused, authors

    def evaluate(self, vouches: list[Vouch], requesters: set[str], scope: Scope,
                 refused: list[str] = ()) -> Approval:
        """The verdict on approvals that verified: `requesters` are casefolded emails."""
        counted, refused, seen = [], list(refused), set()
        for vouch in vouches:
            ident = vouch.approver.identity
            if ident.key in seen:
                continue  # the same person twice counts once
            seen.add(ident.key)
            if ident.key in requesters:
                refused.append(f"{ident.name} requested the change and cannot approve it")
            elif ident.key in scope.subjects or (vouch.approver.employee_key is not None
                                                  and vouch.approver.employee_key == scope.about):
                refused.append(f"{ident.name} is the person the change is about and cannot approve it")
            elif not vouch.approver.may_approve(scope.unit, scope.files):
                where = f"unit {scope.unit}" if scope.unit else ", ".join(scope.files) or "this object"
                refused.append(f"{ident.name} may not approve {where}")
            else:
                counted.append(str(ident))
        needed = self.privileged_required if scope.privileged else self.required
        if len(counted) >= needed:
            return Approval(True, "approved by " + ", ".join(a.split(" <")[0] for a in counted), tuple(counted))
        why = (f"grants privileged {', '.join(scope.privileged)}: needs {needed} distinct approvers"
               if scope.privileged else f"needs {needed} approver{'s' if needed > 1 else ''}")
        said = list(dict.fromkeys(refused))  # a flood of statements must not flood the plan too
        said = said[:5] + [f"{len(said) - 5} more"] if len(said) > 5 else said
        detail = f"; {'; '.join(said)}" if said else ""
        return Approval(False, f"{why}, has {len(counted)} signed{detail}", tuple(counted))


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
    approvers, holders = [], {}  # holders: key -> who lists it (one key is one person)
    for index, raw in enumerate(data["approvers"]):
        ident = Identity(raw["name"], raw["email"])
        if any(a.identity.key == ident.key for a in approvers):
            check.add(("approvers", index, "email"), f"{raw['email']} is listed twice")
        keys = tuple(public_key(k) for k in raw.get("keys", ()))
        for k, key in enumerate(keys):
            if holders.setdefault(key, ident.key) != ident.key:
                check.add(("approvers", index, "keys", k), f"this key is also {holders[key]}'s: two approvers "
                                                          "with one key are one person")
        forge = tuple(sorted(raw.get("forge", {}).items()))
        for name, account in forge:
            if any((name, account.casefold()) in {(f, a.casefold()) for f, a in other.forge} for other in approvers):
                check.add(("approvers", index, "forge", name), f"{name} account {account} is listed twice")
        approvers.append(Approver(ident, tuple(raw.get("units", ())), tuple(raw.get("paths", ())), keys, forge,
                                  raw.get("employee_key")))
    bots = []
    for index, raw in enumerate(data.get("bots", ())):
        key = public_key(raw["key"])
        if key in holders or any(b.name == raw["name"] for b in bots):
            check.add(("bots", index), f"bot {raw['name']} repeats a name or an approver's key")
        bots.append(Bot(raw["name"], key, raw["forge"]))
    if check.problems:
        raise ValidationFailed(check.problems)
    return Policy(tuple(approvers), data.get("required_approvals", 1), data.get("privileged_approvals", 2),
                  frozenset(data.get("privileged_entitlements", ())), display, tuple(bots))


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
        try:  # bytes decoded as a commit's blob is (read_text would turn a lone \r into a line break)
            text = file.read_bytes().decode("utf-8") if file.is_file() else None
        except UnicodeDecodeError as exc:  # a problem with its file and line, like any desired-state file's
            raise ValidationFailed([not_utf8(path, exc)]) from None
    return parse_policy(text, path)
