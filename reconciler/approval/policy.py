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
from reconciler.i18n import Message, _, lazy, lazy_n
from reconciler.i18n import source as source_text

POLICY_FILE = "inventory/approvers.yaml"


def joined(items, separator: str = "; ") -> str:
    """Items (Messages or plain text) joined by `separator`: a Message when one of them is,
    so the whole still shows in the current language and keeps its source text."""
    items = list(items)
    if len(items) == 1:
        return items[0]
    if not any(isinstance(i, Message) for i in items):
        return separator.join(items)
    return Message(separator.join(f"{{item{i}}}" for i in range(len(items))),
                   args={f"item{i}": item for i, item in enumerate(items)})


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
        return {"approved": self.ok, "reason": source_text(self.reason), "counted": list(self.approvers), "pending": self.pending}


def awaiting(required: int, privileged: tuple[str, ...], privileged_required: int) -> Approval:
    """The verdict for a change a pull request under review brings: not yet approved, and
    what its approval will take."""
    if privileged:
        reason = lazy_n("in this pull request: needs {n} distinct approver (grants privileged {entitlements}) "
                        "other than the requester",
                        "in this pull request: needs {n} distinct approvers (grants privileged {entitlements}) "
                        "other than the requester", privileged_required, entitlements=joined(privileged, ", "))
    else:
        reason = lazy_n("in this pull request: needs {n} approver other than the requester",
                        "in this pull request: needs {n} approvers other than the requester", required)
    return Approval(False, reason, pending=True)


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
                refused.append(lazy_n("more than {n} signature in the name of {signer}: the rest are not checked",
                                      "more than {n} signatures in the name of {signer}: the rest are not checked",
                                      MAX_CHECKS_PER_SIGNER, signer=st.signer))
            if checks[signer] > MAX_CHECKS_PER_SIGNER:
                continue
            if st.kind == "approval":
                approver = next((a for a in self.approvers if a.identity.key == signer), None)
                if approver is None:
                    refused.append(lazy("a signature by {signer}, who is not an approver in {file}",
                                        signer=st.signer, file=self.file))
                elif not verifier.valid(s, st.signer, approver.keys):
                    refused.append(lazy("{name}'s signature does not verify against the keys {file} lists for them",
                                        name=approver.identity.name, file=self.file))
                else:
                    vouches.append(Vouch(approver, "signature"))
                continue
            bot = next((b for b in self.bots if b.name == st.signer), None)
            if bot is None or bot.forge != st.forge:
                refused.append(lazy("an attestation by {signer!r}, not a {forge} bot in {file}",
                                    signer=st.signer, forge=st.forge, file=self.file))
            elif not verifier.valid(s, f"bot:{bot.name}", (bot.key,)):
                refused.append(lazy("bot {bot}'s attestation does not verify against its key in {file}",
                                    bot=bot.name, file=self.file))
            else:
                if (author := self.by_forge(st.forge, st.author)) is not None:
                    authors.add(author.identity.key)
                for account in st.approved_by:
                    approver = self.by_forge(st.forge, account)
                    if approver is None:
                        refused.append(lazy("{forge} account {account} is no approver's in {file}",
                                            forge=st.forge, account=account, file=self.file))
                    else:
                        vouches.append(Vouch(approver, f"bot {bot.name} ({st.forge} {account})"))  # not for people
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
                refused.append(lazy("{name} requested the change and cannot approve it", name=ident.name))
            elif ident.key in scope.subjects or (vouch.approver.employee_key is not None
                                                  and vouch.approver.employee_key == scope.about):
                refused.append(lazy("{name} is the person the change is about and cannot approve it",
                                    name=ident.name))
            elif not vouch.approver.may_approve(scope.unit, scope.files):
                if scope.unit:
                    refused.append(lazy("{name} may not approve unit {unit}", name=ident.name, unit=scope.unit))
                elif scope.files:
                    refused.append(lazy("{name} may not approve {files}", name=ident.name,
                                        files=", ".join(scope.files)))
                else:
                    refused.append(lazy("{name} may not approve this object", name=ident.name))
            else:
                counted.append(str(ident))
        needed = self.privileged_required if scope.privileged else self.required
        if len(counted) >= needed:
            return Approval(True, lazy("approved by {approvers}",
                                       approvers=", ".join(a.split(" <")[0] for a in counted)), tuple(counted))
        if scope.privileged:
            why = lazy_n("grants privileged {entitlements}: needs {n} distinct approver, has {signed} signed",
                         "grants privileged {entitlements}: needs {n} distinct approvers, has {signed} signed",
                         needed, entitlements=joined(scope.privileged, ", "), signed=len(counted))
        else:
            why = lazy_n("needs {n} approver, has {signed} signed", "needs {n} approvers, has {signed} signed",
                         needed, signed=len(counted))
        said = list(dict.fromkeys(refused))  # a flood of statements must not flood the plan too
        said = said[:5] + [lazy("{count} more", count=len(said) - 5)] if len(said) > 5 else said
        return Approval(False, joined([why, *said]), tuple(counted))


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
            check.add(("approvers", index, "email"), _("{email} is listed twice", email=raw["email"]))
        keys = tuple(public_key(k) for k in raw.get("keys", ()))
        for k, key in enumerate(keys):
            if holders.setdefault(key, ident.key) != ident.key:
                check.add(("approvers", index, "keys", k),
                          _("this key is also {holder}'s: two approvers with one key are one person",
                            holder=holders[key]))
        forge = tuple(sorted(raw.get("forge", {}).items()))
        for name, account in forge:
            if any((name, account.casefold()) in {(f, a.casefold()) for f, a in other.forge} for other in approvers):
                check.add(("approvers", index, "forge", name),
                          _("{forge} account {account} is listed twice", forge=name, account=account))
        approvers.append(Approver(ident, tuple(raw.get("units", ())), tuple(raw.get("paths", ())), keys, forge,
                                  raw.get("employee_key")))
    bots = []
    for index, raw in enumerate(data.get("bots", ())):
        key = public_key(raw["key"])
        if key in holders or any(b.name == raw["name"] for b in bots):
            check.add(("bots", index), _("bot {bot} repeats a name or an approver's key", bot=raw["name"]))
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
            raise ValidationFailed([Problem(path, None, "", _("cannot read: {reason}", reason=_(LINK)))])
        try:  # bytes decoded as a commit's blob is (read_text would turn a lone \r into a line break)
            text = file.read_bytes().decode("utf-8") if file.is_file() else None
        except UnicodeDecodeError as exc:  # a problem with its file and line, like any desired-state file's
            raise ValidationFailed([not_utf8(path, exc)]) from None
    return parse_policy(text, path)
