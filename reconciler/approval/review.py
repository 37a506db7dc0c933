"""Reviewing a plan against Git: each change gets its solicitud and the policy's verdict."""
from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from reconciler.approval.in_force import SYSTEM, RulesInForce, privileged_groups
from reconciler.approval.inventory_review import weakened
from reconciler.approval.ledger import Ledger, Stretch
from reconciler.approval.policy import POLICY_FILE, Approval, Scope, awaiting, joined
from reconciler.approval.signatures import NOTES_REF, Verifier
from reconciler.approval.solicitudes import History, Identity, how_words
from reconciler.desired.model import DesiredState
from reconciler.desired.files import blob_id, blob_text
from reconciler.desired.source import DESIRED_DIR, DesiredSource, branch_commit
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy, lazy_n, shown
from reconciler.plan import Change, Movement, Plan


def scope_of(change: Change, privileged: dict[str, str],
             subjects: dict[str, frozenset[str]] | None = None, files: tuple[str, ...] = ()) -> Scope:
    """What the policy judges of a change: its unit, its file (where its own declaration is,
    not the catalogues it refers to: an approver of entitlements.yaml approves no one's alta;
    for a removal, where the removal was made: `files`), the privileged entitlements it grants,
    and who it is about (`subjects`: employee key -> their addresses)."""
    granted = ()
    for a in change.attributes:
        if a.name == "groups":
            granted = tuple(sorted({privileged[g.casefold()] for g in a.added() if g.casefold() in privileged}))
    # The alta of access to a system with no API (its work order) grants that system.
    system = SYSTEM + str(getattr(change.desired, "grants_system", "")).casefold()
    if change.movement is Movement.ALTA and system in privileged:
        granted = tuple(sorted({*granted, privileged[system]}))
    own = {change.origins[0].file} if change.origins else set()
    # An account made by hand belongs to no unit yet, and may sit in any OU: taking it over is
    # approved by whoever may approve the declaring file (IT's approvers), never by a unit head
    # alone, who could otherwise claim another unit's account by naming it in adopt:.
    unit = None if change.movement is Movement.ADOPCION else change.unit
    return Scope(unit, tuple(sorted(own | set(files))), granted,
                 (subjects or {}).get(change.key, frozenset()), change.key)


def addresses(state: DesiredState) -> dict[str, frozenset[str]]:
    """Each declared person's mail addresses (casefolded): who a change about them is for."""
    return {p.employee_key: frozenset(a.casefold() for a in (p.mailbox.address, *p.mailbox.aliases))
            for p in state.people if p.mailbox is not None}


def base_commit(repo, base: str) -> str:
    """The commit of the branch a pull request targets: a branch, never a tag of that name."""
    sha = branch_commit(repo, base)
    if sha is None:
        raise ReconcilerError(_("--proposal: no branch {branch!r} (a local branch, or a remote one like origin/main) "
                                "to compare the pull request with; tags are not accepted", branch=base))
    return sha


def _proposed(source: DesiredSource, base: str | None):
    """A predicate: did this commit land outside `base`, i.e. in the pull request under review?"""
    if base is None:
        return lambda sha: False
    base_sha = base_commit(source.repo, base)
    cache: dict[str, bool] = {}

    def proposed(sha: str) -> bool:
        if sha not in cache:
            cache[sha] = not source.repo.is_ancestor(sha, base_sha)
        return cache[sha]
    return proposed


class Targets(Protocol):
    """What review asks of the targets' providers (the engine answers through the contract)."""

    def removed_declaration(self, change: Change) -> tuple[str, str] | None:
        """How a removed object was declared: (its identifying text, the folder of
        desired_state/ it was in), to find the commit that removed it; None: not declared."""

    def implied_approvals(self, target: str, changes: list[Change]) -> dict[int, str]:
        """Of one target's reviewed changes, those approved by implication, with the reason."""


class Judge:
    """Judges landings by the signed approvals that cover them (ledger.py), each stretch by the
    rules in force at its base, with the keys those rules list."""

    def __init__(self, source: DesiredSource, state: DesiredState, history: History):
        self.repo, self.history = source.repo, history
        self.rules = RulesInForce(source, state, self._approves_file)
        self.entitlements_file = source.path_in_repo(f"{DESIRED_DIR}/entitlements.yaml")
        self.ledger = Ledger(source.repo, history.line)
        self.verifier = Verifier()
        self._requesters: dict[Stretch, set[str]] = {}
        self._file_verdicts: dict[tuple[str, str], bool] = {}

    def landing(self, landed: str, change: Change, subjects: dict, files: tuple[str, ...] = (),
                privileged: bool = True) -> Approval:
        """The verdict on one landing for `change` (`privileged` False: as an ordinary change,
        whatever it grants)."""
        return self.judged(landed, lambda rules: scope_of(change, rules.privileged if privileged else {},
                                                          subjects, files))

    def _approves_file(self, landed: str, path: str) -> bool:
        """Did `landed` change the approval policy (with the privileged number of approvals) or
        the entitlements (with the ordinary number) with approval?  in_force.py asks."""
        if (landed, path) not in self._file_verdicts:
            self._file_verdicts[landed, path] = self._judge_file(landed, path)
        return self._file_verdicts[landed, path]

    def _judge_file(self, landed: str, path: str) -> bool:
        parent = self.history.line.parents.get(landed, ())[:1]
        if path.endswith(POLICY_FILE):
            sensitive: tuple[str, ...] = (lazy("the approval policy"),)
        elif path != self.entitlements_file:  # an inventory, wherever the run keeps it
            old = blob_text(self.repo.commit(parent[0]), path) if parent else None
            sensitive = tuple(weakened(old, blob_text(self.repo.commit(landed), path)))[:1]
        else:  # a group that stops being privileged lowers the bar
            rules = self.rules.at(parent[0]) if parent else None
            listed = rules.policy.privileged_entitlements if rules and rules.policy else frozenset()
            old = privileged_groups(blob_text(self.repo.commit(parent[0]), path), path, listed) if parent else {}
            dropped = set(old) - set(privileged_groups(blob_text(self.repo.commit(landed), path), path, listed))
            sensitive = (lazy("makes {entitlements} no longer privileged",
                              entitlements=", ".join(sorted(dropped))),) if dropped else ()
        in_force = self._blob(self.rules.last_approved(parent[0], path), path) if parent else None
        if parent and self._blob(landed, path) == in_force:
            return True  # back to what is in force (a revert): nothing changes
        if parent and self._blob(parent[0], path) != in_force:
            # The reviewers' diff starts from an edit nobody approved: approving it would make
            # that edit law unseen.  Revert it first.
            return False
        return self.judged(landed, lambda rules: Scope(None, (path,), sensitive), at_end=True).ok

    def _blob(self, sha: str | None, path: str) -> str | None:
        return blob_id(self.repo.commit(sha), path) if sha else None

    def judged(self, landed: str, scope_for, at_end: bool = False) -> Approval:
        """The verdict on one landing, for the scope `scope_for(rules in force)` gives.  The
        signatures must count both under the rules at the stretch's base and under those right
        before the landing (a key revoked, or a threshold raised, in between wins).  `at_end`:
        only a stretch that ends at this landing counts (a policy is in force only as the
        reviewed branch left it, never as one of its commits had it)."""
        stretches = self.ledger.covering(landed)
        if at_end:
            stretches = {s: signed for s, signed in stretches.items() if s.last == landed}
        if not stretches:
            return Approval(False, self._unsigned(landed))
        verdicts = []
        parent = self.history.line.parents.get(landed, ())[:1]
        for stretch, signed in sorted(stretches.items(), key=lambda item: item[0].first_position):
            verdict = None
            for when in dict.fromkeys([stretch.base, *parent]):
                verdict = self._under(self.rules.at(when), stretch, signed, scope_for)
                if not verdict.ok:
                    break
            if verdict.ok:
                return verdict
            verdicts.append(verdict)
        return verdicts[0]

    def _under(self, rules, stretch: Stretch, signed: list, scope_for) -> Approval:
        if rules.policy is None:
            return Approval(False, rules.problem)
        vouches, refused, authors = rules.policy.vouches(signed, self.verifier)
        refused += self.ledger.unreadable(stretch.base)
        return rules.policy.evaluate(vouches, self.requesters(stretch, signed) | authors, scope_for(rules), refused)

    def signatures(self) -> list[tuple[str, str, bool, str]]:
        """Every statement of the approvals ref on this line, checked against the rules in force
        at its base: (base, signer, verified, why not) — what `audit verify` reports."""
        out = []
        for base, entries in sorted(self.ledger.notes.items()):
            rules = self.rules.at(base) if base in self.history.line else None
            for signed in entries:
                if isinstance(signed, str):
                    out.append((base, "?", False, shown(signed)))
                elif rules is None or rules.policy is None:
                    why = rules.problem if rules else _("{commit} is not on the protected branch's first-parent line",
                                                        commit=base[:10])
                    out.append((base, signed.statement.signer, False, shown(why)))
                else:
                    vouches, refused, _authors = rules.policy.vouches([signed], self.verifier)
                    out.append((base, signed.statement.signer, bool(vouches) or (not refused),
                                "; ".join(shown(r) for r in refused)))
        return out

    def _unsigned(self, landed: str) -> str:
        parents = self.history.line.parents.get(landed, ())
        if not parents:
            return lazy("commit {commit} is the repository's first: no policy was in force before it, "
                        "so nothing it declares is approved", commit=landed[:10])
        p = self.history.provenance(landed)
        if p.pull_request:
            why = lazy("commit {commit} ({how} of pull request {pull_request}) landed without a signed approval "
                       "({ref} holds none that covers it)", commit=landed[:10], how=how_words(p.how),
                       pull_request=p.pull_request, ref=NOTES_REF)
        elif p.how != "commit":
            why = lazy("commit {commit} ({how}) landed without a signed approval ({ref} holds none that covers it)",
                       commit=landed[:10], how=how_words(p.how), ref=NOTES_REF)
        else:
            why = lazy("commit {commit} was pushed straight to the protected branch without a signed approval "
                       "({ref} holds none that covers it)", commit=landed[:10], ref=NOTES_REF)
        if p.claimed or p.unreadable_trailers:
            why = lazy("{reason} (its Approved-by trailers are text anyone can write, not signatures)", reason=why)
        bad = self.ledger.unreadable(parents[0])
        return joined([why, bad[0]]) if bad else why

    def requesters(self, stretch: Stretch, signed: list) -> set[str]:
        """Everyone who asked: the authors of the commits the stretch brings (and of the
        reviewed branch, when this clone has it), and those the signers saw."""
        if stretch not in self._requesters:
            # Authors and committers of every commit, merges included: whoever put content in.
            emails = set(self.repo.git.log("--format=%ae%n%ce", f"{stretch.base}..{stretch.last}").split())
            try:
                emails |= set(self.repo.git.log("--format=%ae%n%ce", f"{stretch.base}..{stretch.head}").split())
            except Exception:  # the reviewed head is gone (a squash-merged, deleted branch)
                pass
            self._requesters[stretch] = {e.casefold() for e in emails}
        return self._requesters[stretch] | {r.casefold() for s in signed for r in s.statement.requesters}


def review(plan: Plan, source: DesiredSource, state: DesiredState, proposal_base: str | None,
           targets: Targets, since: str | None = None) -> Plan:
    """The plan with provenance and approval on every change.  A working-tree preview has no
    solicitudes: its changes are marked as not approvable.  With `proposal_base` (the protected
    branch a pull request targets), changes the pull request itself brings are marked as
    awaiting its approval instead of judged: its signatures are made for its head.
    Each change is judged by the rules in force before the commits that landed it
    (approval.in_force): a pull request never approves itself with the policy it brings.
    Last, each target's provider may approve changes by implication: what its inventory entry
    names, or what an approved change needs."""
    if source.commit is None:
        verdict = Approval(False, lazy("a working-tree preview is never applied"))
        return replace(plan, changes=tuple(replace(c, approval=verdict) for c in plan.changes))
    # A handful of changes in files of thousands of lines: blame just their lines.
    history = History(source.repo, source.commit, by_span=len(plan.changes) <= 50)
    history.prefetch(c.origins[0] for c in plan.changes if c.origins)
    judge = Judge(source, state, history)
    proposed = _proposed(source, proposal_base)
    # A pull request's own changes will land on its base: the base's rules will judge them.
    pending = judge.rules.at(base_commit(source.repo, proposal_base)) if proposal_base else None
    subjects = addresses(state)
    entries = {p.employee_key: p.source for p in state.people if p.source is not None}
    reviewed = []
    for planned in plan.changes:
        change, removed = _as_judged(planned, source, targets, entries)
        provenance, decided = _solicitud(history, change, removed)
        files = history.files_changed(provenance.landed, removed[1]) \
            if provenance is not None and not change.origins and removed is not None else ()
        if files and change.unit is None and removed[1].endswith("/users"):
            # Whose baja it is, when the object no longer says: the unit it was declared in.
            unit = history.removed_unit(provenance.landed, removed[1], removed[0])
            change, planned = replace(change, unit=unit), replace(planned, unit=unit)
        if provenance is not None and proposed(provenance.landed):
            policy = pending.policy
            scope = scope_of(change, pending.privileged)
            approval = awaiting(policy.required if policy else 1, scope.privileged,
                                policy.privileged_required if policy else 2)
        elif provenance is None:
            approval = Approval(False, lazy("no commit on the protected branch declares it, so no solicitud "
                                            "approved it"))
        else:
            approval = judge.landing(provenance.landed, change, subjects, files)
            if approval.ok and not decided:
                approval = _covered(history, judge, provenance.landed, change, subjects) or approval
            provenance = replace(provenance, approvers=tuple(
                i for i in map(Identity.parse, approval.approvers) if i is not None))
        reviewed.append(replace(planned, provenance=provenance, approval=approval))
    ignored = tuple(lazy("commit {commit} changed {file} without the approvals that takes: it is not in force",
                         commit=sha[:10], file=path)
                    for sha, path in sorted(judge.rules.ignored.items()))
    ignored += _unapproved_since(judge, history, since)
    return replace(plan, changes=tuple(_with_implied(reviewed, targets)), warnings=plan.warnings + ignored)


def _as_judged(change: Change, source: DesiredSource, targets: Targets,
               entries: dict) -> tuple[Change, tuple[str, str] | None]:
    """The change as review judges it, and how a removed declaration was declared.  Something
    of a person still declared that was removed (their mailbox) is a change of their entry."""
    declared = targets.removed_declaration(change) if not change.origins else None
    if declared is not None and declared[1] == "users" and declared[0] in entries:
        return replace(change, origins=(entries[declared[0]],)), None
    return change, _removed(source, declared)


def _solicitud(history: History, change: Change, removed):
    """(the provenance of the landing that decides the change, whether it is a baja decided
    by the person's status).  A baja is judged by the landing that made the status baja, so
    an unapproved edit of the person's phone never keeps revoked access alive; otherwise the
    newest landing that wrote, or only deleted, lines of the declaration."""
    decided = history.status_landing(change.origins[0]) \
        if change.movement is Movement.BAJA and change.origins else None
    if decided:
        return history.provenance(decided), True
    provenance = history.of(change.origins, removed)
    silent = [sha for o in change.origins[:1] for sha in history.silent_changes(o)]
    if silent and provenance is not None:
        newest = max(silent, key=lambda sha: history.line.position.get(sha, -1))
        if history.line.position.get(newest, -1) > history.line.position.get(provenance.landed, -1):
            provenance = history.provenance(newest)
    return provenance, False


def _unapproved_since(judge: Judge, history: History, since: str | None) -> tuple[str, ...]:
    """What landed after the applied commit `since` with no signature covering it.  Nothing it
    changes is applied; said anyway, because a landing that undoes an approved change not yet
    applied (a baja put back to activo) leaves no change in the plan to show it."""
    start = history.line.position.get(since) if since else None
    if start is None:
        return ()
    unsigned = [sha for sha in history.line.order[start + 1:] if not judge.ledger.covering(sha)]
    if not unsigned:
        return ()
    listed = ", ".join(sha[:10] for sha in unsigned[-5:]) + (" …" if len(unsigned) > 5 else "")
    return (lazy_n("{n} commit landed since the applied {commit} without a signed approval ({commits}): nothing "
                   "they change is applied, and an approved change they undid is not applied either",
                   "{n} commits landed since the applied {commit} without a signed approval ({commits}): nothing "
                   "they change is applied, and an approved change they undid is not applied either",
                   len(unsigned), commit=since[:10], commits=listed),)


def _covered(history: History, judge: Judge, newest: str, change: Change, subjects: dict) -> Approval | None:
    """An approval covers the whole change: every landing that wrote a line of the object's
    declarations (its entry, and the unit and entitlements it refers to) must have been
    approved too, or an unapproved line (a grant pushed straight to the protected branch)
    would ride on a later approved change of another line (a phone number).  Each is judged
    as an ordinary solicitud; the privileged threshold is the newest one's, whose reviewers
    see the whole change in its plan.  The refusal, or None."""
    seen = {newest}
    for source in change.origins:
        for landed, removed in [(sha, False) for sha in history.written_by(source)] + \
                [(sha, True) for sha in history.silent_changes(source)]:
            if landed in seen:
                continue
            seen.add(landed)
            verdict = judge.landing(landed, change, subjects, files=(source.file,), privileged=False)
            if not verdict.ok and removed:
                return Approval(False, lazy("commit {commit} removed lines of this declaration ({file}) and was "
                                            "not approved ({reason}); an approval covers the whole change",
                                            commit=landed[:10], file=source.file, reason=verdict.reason))
            if not verdict.ok:
                return Approval(False, lazy("commit {commit} also wrote this declaration ({file}) and was "
                                            "not approved ({reason}); an approval covers the whole change",
                                            commit=landed[:10], file=source.file, reason=verdict.reason))
    return None


def _removed(source: DesiredSource, declared: tuple[str, str] | None) -> tuple[str, str] | None:
    """(text, the folder's path in the repository) of a removed declaration."""
    if declared is None:
        return None
    text, folder = declared
    return text, source.path_in_repo(f"{DESIRED_DIR}/{folder}")


def _with_implied(changes: list[Change], targets: Targets) -> list[Change]:
    """Each target's changes that its provider approves by implication, when nothing else
    approved them."""
    positions: dict[str, list[int]] = {}
    for i, c in enumerate(changes):
        positions.setdefault(c.target, []).append(i)
    out = list(changes)
    for target, where in positions.items():
        for j, reason in targets.implied_approvals(target, [changes[i] for i in where]).items():
            if not out[where[j]].approved:
                out[where[j]] = replace(out[where[j]], approval=Approval(True, reason))
    return out
