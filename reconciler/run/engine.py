"""One reconcile run: load and validate the desired state, plan every target, apply safely.

The CLI only parses arguments and renders; everything a run decides is here.
"""
from __future__ import annotations

import datetime as dt
import gc
import hashlib
import secrets
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.about import exact_version
from reconciler.audit import before
from reconciler.audit.seal import ApplyKey, applied_tag, verified_applied
from reconciler.audit.trail import trail_files
from reconciler.audit.trail import AuditLog, attach_note, change_record, last_commit, load_records, operator, read_notes
from reconciler.config.inventory import TargetSettings, load_inventory, mail_rules, network_devices
from reconciler.credentials import CredentialFile
from reconciler.desired.source import DEFAULT_REF, DesiredSource
from reconciler.errors import ReconcilerError
from reconciler.i18n import N_, _, lazy, lazy_n, ngettext, zone
from reconciler.plan import Change, Movement, Outcome, Plan
from reconciler.providers import registry
from reconciler.providers.contract import (
    PASSWORD_RESET,
    Capability,
    Declared,
    PlanRequest,
    Provider,
    Repository,
    TargetPlan,
)
from reconciler.run import Moment, recovery, settled
from reconciler.run.connections import Connections, select
from reconciler.run.lock import TargetLock

# What a run needs only when it loads the desired state, reviews, applies or verifies is
# imported there: a settled plan (run/settled.py) does none of it and answers in a fraction of
# a second, most of which would otherwise be spent importing.
if TYPE_CHECKING:
    from reconciler.desired.model import DesiredState, MailRules
    from reconciler.run import incremental

APPLIED_REF = "refs/reconciler/applied/{target}"
# Targets are planned and applied in the registry's order: an account exists before its
# mailbox.  Changes that revoke access (a closed mailbox, a member removed, a line removed) run
# first, in reverse order: access is gone before an account is disabled.


def each_provider(items: list, work, provider_of=lambda item: item) -> list:
    """`work(item)` for each item in order, except that the items of providers that say so
    (firewalls and routers: many independent devices) run concurrently; results in order."""
    results: dict[int, object] = {}
    parallel = [i for i, item in enumerate(items) if provider_of(item).parallel]
    for i, item in enumerate(items):
        if i not in parallel:
            results[i] = work(item)
    if parallel:
        with ThreadPoolExecutor(max_workers=min(16, len(parallel))) as pool:
            for i, result in zip(parallel, pool.map(lambda i: work(items[i]), parallel)):
                results[i] = result
    return [results[i] for i in range(len(items))]


class DeletionGuard(ReconcilerError):
    """More bajas than the target allows in one run, and no explicit override."""


def today_here() -> str:
    """The institution's date (its time zone, from the inventory): an exception that expires on
    a day lasts until that day ends there, not until midnight UTC, hours earlier in Mexico."""
    return dt.datetime.now(zone()).date().isoformat()


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class NotApproved(ReconcilerError):
    """--strict: some change lacks a valid approval, so nothing is applied."""


class PlanMoved(ReconcilerError):
    """--expect-fingerprint: the plan made now is not the plan that was approved."""


@dataclass
class Skipped:
    change: Change
    reason: str


@dataclass
class ApplyReport:
    outcomes: list[Outcome]
    skipped: list[Skipped] = field(default_factory=list)  # not approved: left for a later run
    credentials_files: list[tuple[str, int]] = field(default_factory=list)  # (path, passwords in it)
    envelopes: list[tuple[str, int]] = field(default_factory=list)  # (target, secrets it sealed)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per apply phase, all targets
    audit_files: list[str] = field(default_factory=list)
    applied_refs: dict[str, str] = field(default_factory=dict)  # target -> commit now recorded as applied
    warnings: list[str] = field(default_factory=list)
    probes: list[tuple[str, object]] = field(default_factory=list)  # (target, ProbeResult) of kinds with probes
    unreachable: dict[str, str] = field(default_factory=dict)  # target -> why it was out of reach: retried next run

    def bajas(self, state) -> list[tuple[str, str]]:
        """(employee key, name) of each person whose baja this run applied: each has a baja de
        servicios to follow (reconciler offboarding KEY)."""
        out: dict[str, str] = {}
        for o in self.outcomes:
            person = state.person(o.change.key) if state is not None and o.change.movement is Movement.BAJA else None
            if person is not None and not person.active and o.status == "applied":
                out[person.employee_key] = person.display_name
        return sorted(out.items())

    def counts(self) -> dict[str, Counter]:
        table: dict[str, Counter] = {m.plural: Counter() for m in Movement}
        for o in self.outcomes:
            row = table[o.change.movement.plural]
            row[o.status] += 1
            row["verified"] += o.verified
        for s in self.skipped:
            table[s.change.movement.plural]["skipped"] += 1
        return table

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed" or (o.status == "applied" and not o.verified)]

    @property
    def failed_probes(self) -> list:
        return [(t, p) for t, p in self.probes if p.ran and not p.passed]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.failed_probes and not self.unreachable


@dataclass
class Run:
    """Desired state plus open connections to the selected targets."""

    source: DesiredSource
    inventory: Path
    only: tuple[str, ...] = ()
    since_applied: bool = False
    full_read: bool = False  # ignore what the targets' providers keep between runs (provider.full_read)
    lock: bool = False  # apply: hold each target's lock from before reading it until the end
    proposal_base: str | None = None  # plan of a pull request targeting this branch (see review)
    protected_branch: str = DEFAULT_REF  # apply takes only commits that landed on it, never going back
    today: str = field(default_factory=today_here)
    apply_key: ApplyKey | None = field(default_factory=ApplyKey.from_env)  # audit/seal.py
    _applied: dict = field(default_factory=dict)  # target -> (signed applied commit, why not), once a run
    failed_altas: dict = field(default_factory=dict)  # key -> (target, label, error): altas that failed this run
    state: DesiredState | None = None
    providers: dict[str, Provider] = field(default_factory=dict)
    planned: dict[str, TargetPlan] = field(default_factory=dict)  # each target's part of the last plan
    applied_resets: dict[str, frozenset] = field(default_factory=dict)  # target -> folios of resets applied
    scope: incremental.Scope | None = None
    lock_notes: list[str] = field(default_factory=list)  # expired locks taken over
    interrupted: dict[str, recovery.Interrupted] = field(default_factory=dict)  # target -> its run that never ended
    report: ApplyReport | None = None  # the last apply's, also when it raised: what it did before
    # apply: with a target out of reach, the others are planned and only their bajas and
    # revocations applied (access is removed wherever it can be); otherwise it is an error
    revoke_when_unreachable: bool = False
    unreachable: dict = field(default_factory=dict)  # target -> why it could not be reached
    selected: tuple[str, ...] = ()  # the targets this run is for, reached or not (Plan.targets)
    settle: bool = False  # a plan that may stand on a remembered one and be remembered (run/settled.py)
    settled_inputs: str | None = None  # a plain full plan's inputs (run/settled.py); None: not such a plan
    settled_selection: str = ""  # which of the engine's memories it uses (the inventory and targets)
    settled_at: float | None = None  # when the remembered plan this run stands on was made
    settled_kept: settled.Kept | None = None  # the reminders kept with it, shown again
    # Targets whose remembered plan holds (Provider.settled), in a plan whose other targets are
    # read: each is planned from its memory, nothing or only the keys it names.
    held: dict = field(default_factory=dict)
    standing: settled.Kept | None = None  # of the last plan's warnings, those that follow from the inputs alone
    rules: MailRules | None = None  # what declared mailboxes must respect (the inventory's mail targets)
    devices: frozenset | None = None  # the inventory's firewalls and routers, which rules may name
    _stack: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> "Run":
        try:
            self._open()
        except BaseException:
            self._stack.close()  # __exit__ is not called when __enter__ fails
            raise
        return self

    def _open(self) -> None:
        # Loading YAML and decoding LDAP create millions of short-lived objects and no reference
        # cycles; the cyclic collector would rescan the whole growing heap again and again
        # (half the time of a 10,000-person plan).  Refcounting still frees everything.
        if gc.isenabled():
            gc.disable()
            self._stack.callback(gc.enable)
        try:  # read once: the targets and the settled plans' inputs come from the same bytes
            inventory = Path(self.inventory).read_bytes()
        except OSError:
            inventory = None  # load_inventory says why
        self._inventory_read = hashlib.sha256(inventory).hexdigest() if inventory is not None else "-"
        targets = load_inventory(self.inventory, inventory)
        selected = select(targets, self.only, self.inventory)
        self.selected = tuple(selected)
        if self.lock:  # before anything is read, and released after the targets are closed
            for name, target in selected.items():
                lock = self._stack.enter_context(TargetLock(target.audit_dir, name,
                                                            dt.timedelta(minutes=target.lock_ttl_minutes)))
                if lock.replaced:
                    self.lock_notes.append(lazy("target {target}: took over the lock of {holder}",
                                                target=name, holder=lock.replaced))
        # Under the lock (apply), no other run is writing the trail; without it (plan), a run
        # holding the lock is still going, not stopped.
        self.interrupted = {name: stopped for name, t in selected.items()
                            if (self.lock or not TargetLock(t.audit_dir, name).held())
                            and (stopped := recovery.interrupted(t.audit_dir, name)) is not None}
        # A run that takes no lock only reads: it binds with the read-only accounts.
        connections = self._stack.enter_context(Connections(selected, reading=not self.lock,
                                                               full_read=self.full_read))
        # While the targets are being reached (and, for a full plan, read in bulk as soon as
        # they answer): Git, then the YAML.  A problem in the YAML is reported at once, before
        # one reaching a target.
        if self.since_applied and self.interrupted:  # what it did is judged against everything
            from reconciler.run import incremental

            self.scope = incremental.Scope(True, lazy("run {run} stopped before its end: everything is planned",
                                                      run=next(iter(self.interrupted.values())).run))
        elif self.since_applied:
            self.scope = self._since_applied(list(selected))
        if self._settled(selected, connections):
            return
        if self.scope is None or self.scope.full:
            connections.prefetch(but=frozenset(self.held))
        only = None if self.scope is None or self.scope.full else self.scope.entries
        self.rules = mail_rules(targets)
        self.devices = network_devices(targets)
        self.state = self._load(only)
        if self.settled_kept is not None and only is not None \
                and not self.scope.employee_keys <= {p.employee_key for p in self.state.people}:
            # Someone written in the directory is not found where the remembered plan found them.
            self.scope = replace(self.scope, full=True, reason=lazy("a person written since the remembered plan is "
                                                                    "not where it found them"))
            self.state = self._load()
        self.unreachable = connections.wait()
        self.providers = dict(connections.providers)
        if self.unreachable and not (self.revoke_when_unreachable and self.providers):
            raise next(iter(self.unreachable.values()))
        self._applied_resets()

    def _load(self, only: dict[str, frozenset] | None = None) -> DesiredState:
        """The desired state at the run's source (everyone, or the files' entries `only` names)."""
        from reconciler.desired.load import load_desired_state

        return load_desired_state(self.source.files, only=only, mail=self.rules, devices=self.devices)

    def _settled(self, selected: dict, connections: Connections) -> bool:
        """A plain full plan whose inputs are those of a remembered plan that found nothing to
        do, on targets that each prove nothing they read has changed since (run/settled.py):
        the plan is that empty plan again, and the desired state is not loaded."""
        if not self.settle or self.lock or self.proposal_base or self.since_applied or self.full_read \
                or self.interrupted or self.source.commit is None:
            return False
        offering = [name for name, t in selected.items()
                    if Capability.SETTLED_PLANS in registry.kind(t.kind).provider_class().capabilities]
        if not offering:
            return False
        # Every trail of their audit directories: _applied_resets reads them all.
        trails = sorted({f for t in selected.values() for f in trail_files(t.audit_dir)})
        self.settled_inputs = settled.inputs(self.source.repo, self.source.sha, self.source.prefix,
                                             self._inventory_read, list(selected), self.today,
                                             self.apply_key.public if self.apply_key is not None else "", trails)
        self.settled_selection = settled.selection(self._inventory_read, list(selected))
        # Waiting for the targets to open delays the YAML: only when one may remember the inputs.
        maybe = [name for name in offering if registry.kind(selected[name].kind).provider_class().remembers(
            selected[name].for_reading(), self.settled_inputs)]
        if not maybe:
            return False
        kept = settled.recall(self.settled_selection, self.settled_inputs)
        self.unreachable = connections.wait()
        self.providers = dict(connections.providers)
        if self.unreachable:
            return False
        self.held = {name: found for name in maybe if (found := self.providers[name].settled(self.settled_inputs))}
        if kept is None or len(self.held) < len(selected):
            return False  # each target that holds is planned from its memory (_plan_target), the others read
        at, written = min(f.at for f in self.held.values()), frozenset().union(*(f.written for f in self.held.values()))
        if written:  # only some people's objects read otherwise: plan just them
            self.scope = self._settled_scope(at, written)
            self.settled_kept = kept if self.scope is not None else None
            return False
        self.settled_at, self.settled_kept = at, kept
        return True

    def _settled_scope(self, at: float, written: frozenset) -> incremental.Scope | None:
        """An incremental plan of the people whose objects the targets found written since the
        remembered plan (everyone else is proved unchanged), or None when one of them is not
        declared where the plan found them: the desired state is then loaded whole, and each
        target plans those keys against it (request)."""
        index = settled.recall_index(self.settled_selection, self.settled_inputs)
        entries = index.entries(written) if index is not None else None
        if entries is None:
            return None
        from reconciler.run import incremental

        moment = Moment(dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat())
        described = lazy("full; since the plan of {moment}, which found nothing to do, only {people} read otherwise "
                         "in the targets: only they are planned", moment=moment,
                         people=lazy_n("{n} person", "{n} people", len(written)))
        return incremental.Scope(False, entries=entries, user_files=frozenset(entries), employee_keys=written,
                                 previous_keys=written, described=described)

    def _held_scope(self, scope):
        """The scope, with each target planned from its memory (a Message of Messages)."""
        for name, standing in self.held.items():
            moment = Moment(dt.datetime.fromtimestamp(standing.at, dt.timezone.utc).isoformat())
            if standing.written:
                scope = lazy("{scope}; {target}: since its plan of {moment}, which found nothing to do, only {people} "
                             "read otherwise: only they are planned there", scope=scope, target=name, moment=moment,
                             people=lazy_n("{n} person", "{n} people", len(standing.written)))
            else:
                scope = lazy("{scope}; {target}: nothing it reads has changed since its plan of {moment}, which found "
                             "nothing to do", scope=scope, target=name, moment=moment)
        return scope

    def _applied_resets(self) -> None:
        """Tell each directory which password resets its trail (or Git's notes) says were
        applied: a reset request is applied once, never again.  Again whenever the desired
        state is loaded again (an incremental plan turned full)."""
        self.applied_resets = {}
        if not any(p.password_resets for p in self.state.people):
            return
        # Only notes the apply key sealed: a forged note never makes a reset count as done
        # (without the key, none can be checked: only this runner's own trail counts).
        resets = lambda records: any(r and r.get("object_kind") == PASSWORD_RESET for r in records)  # noqa: E731
        notes = read_notes(self.source.repo, sealed_by=self.apply_key, wanted=resets) \
            if self.source.commit is not None and self.apply_key is not None else []
        for name, provider in self.providers.items():
            if provider.offers(Capability.PASSWORD_RESETS):
                records = [r for r in load_records([provider.target.audit_dir], [n for n in notes if n[1] is not None])
                           if r.get("target") == name and r.get("object_kind") == PASSWORD_RESET]
                # A run stopped after its step left only a `result`; the folio is in its `planned`.
                planned = {(r.get("run"), r.get("key")): r.get("folio") for r in records if r.get("kind") == "planned"}
                self.applied_resets[name] = frozenset(
                    r.get("folio") if r.get("kind") == "change" else planned.get((r.get("run"), r.get("key")))
                    for r in records if r.get("kind") in ("change", "result") and r.get("status") == "applied")

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def request(self, name: str) -> PlanRequest:
        """What target `name` is asked to plan: the desired state, and for an incremental plan
        the employee keys that changed."""
        partial = self.scope is not None and not self.scope.full
        if not partial and (standing := self.held.get(name)) is not None and standing.written:
            # Its memory holds but for these people's objects: plan just them there.
            return PlanRequest(self.state, self.today, standing.written, standing.written,
                               self.applied_resets.get(name, frozenset()), self._repository(name))
        return PlanRequest(self.state, self.today, self.scope.employee_keys if partial else None,
                           self.scope.previous_keys if partial else frozenset(),
                           self.applied_resets.get(name, frozenset()), self._repository(name))

    def _repository(self, name: str) -> Repository | None:
        """For a kind that issues work orders: the repository it keeps them in."""
        if not self.providers[name].offers(Capability.WORK_ORDERS) or self.source.repo is None:
            return None
        return Repository(self.source.repo, self.apply_key, self.source.sha)

    def plan(self) -> Plan:
        if self.settled_at is not None:
            moment = Moment(dt.datetime.fromtimestamp(self.settled_at, dt.timezone.utc).isoformat())
            scope = lazy("full; nothing it reads has changed since the plan of {moment}, which found nothing to do",
                         moment=moment)
            warnings = self.settled_kept.reminders + self.settled_kept.reviewed
            return Plan((), (), self.source.description, warnings, commit=self.source.sha,
                        tree=self.source.tree_id(), scope=scope, targets=self.selected)
        plan = self._plan()
        if self.settled_inputs is None or self.unreachable or self.scope is not None:
            return plan
        # Nothing to do and no target said anything: the plan is remembered whole, with the
        # reminders that follow from the inputs alone (run/settled.py), to stand on next time.
        if plan.empty and not plan.conflicts and self.standing is not None \
                and len(plan.warnings) == len(self.standing.reminders) + len(self.standing.reviewed):
            settled.remember(self.settled_selection, self.settled_inputs, self.standing, self._index())
        # And each target whose own part found nothing and said nothing, whatever the others'
        # parts hold: next time it is planned from its memory while the others are read.
        for name, part in self.planned.items():
            if not part.changes and not part.conflicts and not part.warnings and name not in self.held \
                    and self.providers[name].offers(Capability.SETTLED_PLANS):
                self.providers[name].settle(part, self.settled_inputs)
        return plan

    def _plan(self) -> Plan:
        from reconciler.approval.review import review
        from reconciler.desired.assets import released
        from reconciler.run.crosscheck import adopted_for_new_accounts

        changes, conflicts, warnings = [], [], []
        names = list(self.providers)
        planned = each_provider(names, self._plan_target, self.providers.get)
        for i, name in enumerate(names):
            if isinstance(planned[i], TargetPlan) and planned[i].needs_full_read and name in self.held \
                    and (self.scope is None or self.scope.full):
                # Its plan of some people touches what only a full read judges: that target
                # alone is read in full, and its memory forgotten (it would only ask again).
                del self.held[name]
                self.providers[name].unsettle()
                planned[i] = self._plan_target(name)
        for name, error in [(n, p) for n, p in zip(names, planned) if isinstance(p, ReconcilerError)]:
            # Reached, but its read failed (a mail server whose API is down): out of reach too.
            self.unreachable[name] = error
            del self.providers[name]
        if not self.providers:
            raise next(iter(self.unreachable.values()))
        kept = [(n, p) for n, p in zip(names, planned) if n in self.providers]
        names, planned = [n for n, _ in kept], [p for _, p in kept]
        for name, part in zip(names, planned):
            if part.needs_full_read and self.scope is not None and not self.scope.full:
                # The changed files touch something only a full read can judge: do the full plan.
                self.scope = replace(self.scope, full=True, reason=part.needs_full_read)
                self.state = self._load()
                self._applied_resets()  # for everyone now
                return self._plan()
        self.planned = dict(zip(names, planned))
        for name, part in self.planned.items():
            if name in self.interrupted:  # halfway through a stopped run is not drift
                part.changes = recovery.relabel(part.changes, self.interrupted[name],
                                                self.providers[name].rewritten_by_every_apply)
            changes += part.changes
            conflicts += part.conflicts
            warnings += part.warnings
            warnings += self._guard_warning(self.providers[name].target, part.changes)
        for name, error in self.unreachable.items():
            warnings.append(lazy("target {target} is out of reach ({error}): nothing is planned for it; of the other "
                                 "targets' changes, only those that remove access are applied until it is back",
                                 target=name, error=str(error)))
        warnings += adopted_for_new_accounts(changes)
        standing = []  # what follows from the desired state alone
        if self.state.assets_loaded:
            people = {p.employee_key: p for p in self.state.people}
            standing = released(list(self.state.lines), list(self.state.equipment), people)
        elif self.settled_kept is not None and self.scope is not None and not self.scope.full:
            standing = list(self.settled_kept.reminders)  # of everyone, kept with the settled plan
        scope = lazy("full") if self.scope is None else self.scope.describe()
        if self.scope is None or self.scope.full:
            scope = self._held_scope(scope)
        plan = Plan(tuple(changes), tuple(conflicts), self.source.description, tuple(warnings + standing),
                    commit=self.source.sha, tree=self.source.tree_id(), scope=scope, targets=self.selected)
        reviewed = review(plan, self.source, self.state, self.proposal_base, self, since=self._applied_floor())
        # Review's own warnings follow from the commit and the applied refs: inputs too.
        self.standing = settled.Kept(tuple(standing), reviewed.warnings[len(plan.warnings):])
        return reviewed

    def _index(self) -> settled.Index:
        """Where each declared person is, for a plan of some of them (run/settled.py)."""
        from reconciler.desired.naming import namesake_groups

        label = self.source.files.label + "/"
        files = {p.employee_key: p.source.file[len(label):] for p in self.state.people
                 if p.source is not None and p.source.file.startswith(label)}
        return settled.Index(files, tuple(tuple(p.employee_key for p in group)
                                          for group in namesake_groups(self.state.people)))

    def _plan_target(self, name: str) -> TargetPlan | ReconcilerError:
        """One target's plan; when apply may go ahead without it, a read that fails is handed
        back (the target is then out of reach) instead of raised."""
        if name in self.held and not self.held[name].written:
            # Nothing it reads has changed since its plan found nothing to do, so its plan of
            # anyone is nothing, also when another target's writes narrowed the run to some
            # people (asked, the registrar would read its whole table to say so).
            return TargetPlan(name)
        try:
            return self.providers[name].plan(self.request(name))
        except ReconcilerError as exc:
            if self.revoke_when_unreachable and len(self.providers) > 1:
                return exc
            raise

    def _applied_floor(self) -> str | None:
        """The oldest commit the apply key says is applied to a selected target (None: none):
        review warns about what landed after it without approval."""
        if self.source.commit is None:
            return None
        import git

        found = [self._verified_applied(n)[0] for n in self.providers]
        found = [c for c in found if c]
        if not found:
            return None
        try:
            return min(found, key=lambda c: int(self.source.repo.git.rev_list("--count", c)))
        except git.GitCommandError:
            return None

    # What review asks of the targets (approval.review.Targets), answered by their providers.
    def removed_declaration(self, change: Change) -> Declared | None:
        return self.providers[change.target].removed_declaration(change)

    def implied_approvals(self, target: str, changes: list[Change]) -> dict[int, str]:
        provider = self.providers[target]
        return provider.implied_approvals(changes) if provider.offers(Capability.IMPLIED_APPROVALS) else {}

    @staticmethod
    def _excess(target: TargetSettings, changes: list[Change], movement: Movement = Movement.BAJA) -> int:
        """How many bajas (or adopciones) the plan has for `target` of the kinds its mass-change
        budget counts (accounts, mailboxes, lines), when that is over max_bajas (else 0).  Many
        adoptions at once are a mass change like many bajas: each is approved, and the run that
        takes in a whole directory says so on its command line."""
        budgeted = registry.kind(target.kind).budgeted
        many = sum(1 for c in changes if c.movement is movement and c.kind in budgeted)
        return many if many > target.max_bajas else 0

    def _guard_warning(self, target: TargetSettings, changes: list[Change]) -> list[str]:
        warnings = []
        if bajas := self._excess(target, changes):
            warnings.append(lazy_n("target {target}: {n} baja exceeds the deletion guard (max_bajas: {max_bajas}); "
                                   "apply refuses it unless given --allow-mass-baja",
                                   "target {target}: {n} bajas exceed the deletion guard (max_bajas: {max_bajas}); "
                                   "apply refuses them unless given --allow-mass-baja",
                                   bajas, target=target.name, max_bajas=target.max_bajas))
        if adoptions := self._excess(target, changes, Movement.ADOPCION):
            warnings.append(lazy_n("target {target}: {n} adopción exceeds the mass-change guard (max_bajas: "
                                   "{max_bajas}); apply refuses it unless given --allow-mass-adoption",
                                   "target {target}: {n} adopciones exceed the mass-change guard (max_bajas: "
                                   "{max_bajas}); apply refuses them unless given --allow-mass-adoption",
                                   adoptions, target=target.name, max_bajas=target.max_bajas))
        return warnings

    def _check(self, plan: Plan, allow_mass_baja: bool, strict: bool, expect_fingerprint: Sequence[str] | str | None,
               allow_mass_adoption: bool = False) -> None:
        """Everything that refuses the whole run, checked before the first change."""
        if self.source.commit is None:
            raise ReconcilerError(_("apply reads the desired state from a commit of the protected branch, "
                                    "never from the working tree"))
        self.check_forward()
        self.check_fingerprint(plan, expect_fingerprint)
        unapproved = [c for c in plan.changes if not c.approved]
        if strict and unapproved:
            lines = "\n".join(f"  {c.movement.symbol} {c.kind} {c.label}: {c.approval.reason}" for c in unapproved[:20])
            raise NotApproved(ngettext("refusing to apply (--strict): {n} change lacks a valid approval; "
                                       "nothing was changed:\n{changes}",
                                       "refusing to apply (--strict): {n} changes lack a valid approval; "
                                       "nothing was changed:\n{changes}", len(unapproved), changes=lines))
        for name, changes in plan.by_target().items():
            target = self.providers[name].target
            approved = [c for c in changes if c.approved]
            if (bajas := self._excess(target, approved)) and not allow_mass_baja:
                raise DeletionGuard(ngettext(
                    "refusing to apply: {n} baja on target {target} exceeds max_bajas ({max_bajas}). "
                    "Nothing was changed. Review the plan; if this baja is intended, run apply again with "
                    "--allow-mass-baja.",
                    "refusing to apply: {n} bajas on target {target} exceed max_bajas ({max_bajas}). "
                    "Nothing was changed. Review the plan; if these bajas are intended, run apply again with "
                    "--allow-mass-baja.", bajas, target=name, max_bajas=target.max_bajas))
            if (adoptions := self._excess(target, approved, Movement.ADOPCION)) and not allow_mass_adoption:
                raise DeletionGuard(ngettext(
                    "refusing to apply: {n} adopción on target {target} exceeds max_bajas ({max_bajas}). "
                    "Nothing was changed. Review the plan; if this adoption is intended, run apply again with "
                    "--allow-mass-adoption.",
                    "refusing to apply: {n} adopciones on target {target} exceed max_bajas ({max_bajas}). "
                    "Nothing was changed. Review the plan; if these adoptions are intended, run apply again with "
                    "--allow-mass-adoption.", adoptions, target=name, max_bajas=target.max_bajas))

    def _verified_applied(self, name: str) -> tuple[str | None, str]:
        """What target `name`'s applied ref says, if the apply key signed it (asked once a run)."""
        if name not in self._applied:
            self._applied[name] = verified_applied(self.source.repo, APPLIED_REF.format(target=name), name,
                                                   self.apply_key)
        return self._applied[name]

    def _since_applied(self, names: list[str]) -> incremental.Scope:
        """The incremental scope, from applied refs the apply key signed; else a full plan."""
        from reconciler.run import incremental

        if self.source.commit is not None:
            for name in names:
                _, why = self._verified_applied(name)
                if why:
                    return incremental.Scope(True, why)
        return incremental.scope_since_applied(self.source, [APPLIED_REF.format(target=n) for n in names])

    def check_forward(self) -> None:
        """The commit landed on the protected branch and is not behind any target's applied one:
        what the apply key signed, and what this runner's own audit trail last applied (a
        deleted ref on the remote does not open the way back)."""
        from reconciler.run import forward

        applied = {}
        for name, provider in self.providers.items():
            signed, _ = self._verified_applied(name)
            applied[name] = [c for c in (signed, last_commit(provider.target.audit_dir, name)) if c]
        forward.check_forward(self.source, self.protected_branch, applied)

    @staticmethod
    def check_fingerprint(plan: Plan, expected: Sequence[str] | str | None) -> None:
        """--expect-fingerprint: the whole plan's fingerprint, or one `TARGET=FINGERPRINT` for
        each target of a shard's apply (the reviewed plan lists each target's)."""
        pins = [expected] if isinstance(expected, str) else list(expected or ())
        whole = [p for p in pins if "=" not in p]
        by_target = dict(p.split("=", 1) for p in pins if "=" in p)
        if whole and by_target:
            raise ReconcilerError(_("--expect-fingerprint takes the whole plan's fingerprint or one TARGET=FINGERPRINT "
                                    "per target, not both"))
        for fingerprint in whole:
            if fingerprint != plan.fingerprint:
                raise PlanMoved(_("refusing to apply: the plan now has fingerprint {fingerprint}, not the approved "
                                  "{expected}. The live state or the desired state moved since that plan "
                                  "was reviewed; nothing was changed. Review the new plan.",
                                  fingerprint=plan.fingerprint, expected=fingerprint))
        if not by_target:
            return
        if unpinned := [t for t in plan.targets if t not in by_target]:
            raise PlanMoved(_("refusing to apply: no approved fingerprint was given for target {targets}; nothing was "
                              "changed", targets=", ".join(unpinned)))
        for target, fingerprint in by_target.items():
            now = plan.part({target}).fingerprint
            if fingerprint != now:
                raise PlanMoved(_("refusing to apply: target {target}'s part of the plan now has fingerprint "
                                  "{fingerprint}, not the approved {expected}. The live state or the desired state "
                                  "moved since that plan was reviewed; nothing was changed. Review the new plan.",
                                  target=target, fingerprint=now, expected=fingerprint))

    def _check_delivery(self) -> None:
        """Before anything is applied: the inventory says how secrets reach their owners, and
        every unit has someone to seal them to (a secret sealed to nobody would be lost with
        its account already made)."""
        for provider in self.providers.values():
            delivery = provider.target.delivery
            if delivery is None:
                raise ReconcilerError(_("the inventory has no delivery: block: declare how the secrets an apply "
                                        "makes reach their owners (README, \"Handing over credentials\")"))
            for unit, people in delivery.recipients.items():
                for recipient in people:
                    try:
                        recipient.sealer()
                    except ValueError as exc:
                        raise ReconcilerError(_("delivery: the key of {name} (recipients of {unit}): {error}",
                                                name=recipient.name, unit=unit, error=exc)) from None
            missing = delivery.missing_units(self.state.units if self.state is not None else ())
            if missing:
                raise ReconcilerError(_("delivery: nobody to seal the secrets of {units} to: declare recipients for "
                                        "them, or for \"*\"", units=", ".join(missing)))

    def apply(self, plan: Plan, allow_mass_baja: bool = False, strict: bool = False,
              expect_fingerprint: Sequence[str] | str | None = None, progress=None,
              allow_mass_adoption: bool = False) -> ApplyReport:
        """Apply the approved changes of `plan` across targets, each under its lock and with
        its audit trail; `progress(target, total)` returns an advance(n) callable.

        Order: first every change that revokes access, targets in reverse order (a closed
        mailbox before its account is disabled); then everything else in target order (an
        account before its mailbox); then each target reads back and verifies."""
        self._check(plan, allow_mass_baja, strict, expect_fingerprint, allow_mass_adoption)
        self._check_delivery()
        run_id = new_run_id()
        report = self.report = ApplyReport([])  # filled even when the run stops with an error
        if any(p.target.delivery and not p.target.delivery.sealed for p in self.providers.values()):
            report.warnings.append(lazy("delivery mode clear-text-file-lab-only: the secrets this run makes are "
                                        "written in clear on this machine; a lab's choice, never a real institution's"))
        if self.apply_key is None or self.apply_key.private is None:
            report.warnings.append(lazy("no apply key (RECONCILER_APPLY_KEY): the applied refs are not signed and "
                                        "the audit notes not sealed, so later runs and auditors can trust neither"))
        report.unreachable = {name: str(error) for name, error in self.unreachable.items()}
        by_target = plan.by_target()
        runs = [_TargetApply(self, p, self.planned.get(n) or TargetPlan(n), by_target.get(n, []), plan, run_id, report)
                for n, p in self.providers.items()]
        aborted: BaseException | None = None
        try:
            for r in runs:  # inside the try: a trail that cannot be opened still ends the others'
                r.start(progress)
            for r in reversed(runs):
                r.step(first=True)
            each_provider(runs, lambda r: r.step(first=False), lambda r: r.provider)
            each_provider(runs, lambda r: r.verify(), lambda r: r.provider)
        except BaseException as exc:
            aborted = exc
            raise
        finally:
            failure = self._finish_all(runs, aborted, report)
            if failure is not None and aborted is None:
                raise failure
        return report

    def _finish_all(self, runs: list["_TargetApply"], aborted: BaseException | None,
                    report: ApplyReport) -> Exception | None:
        """Every target's closing records, then the git note, even when one target's closing
        fails (a full disk, a ref Git refuses): the first failure, once all were tried."""
        first: Exception | None = None
        for r in runs:
            try:
                r.finish(aborted)
            except Exception as exc:
                first = first or exc
        try:
            self._note([record for r in runs for record in r.written], [r.audit.path for r in runs if r.audit], report)
        except Exception as exc:
            first = first or exc
        return first

    def _note(self, records: list[dict], paths: list, report: ApplyReport) -> None:
        """Every target's records of the run as one git note on the applied commit: one git
        call, however many targets."""
        try:
            attach_note(self.source.repo, self.source.sha, records, self.apply_key)
        except ReconcilerError as exc:  # the trail files have every record; say what Git lacks
            report.warnings.append(lazy("{error}; the records are in {files}", error=str(exc),
                                        files=", ".join(map(str, paths))))

    def envelopes_due(self, target: TargetSettings) -> list:
        """The envelope files `target` takes back now: acknowledged, or older than the limit."""
        delivery, repo = target.delivery, self.source.repo
        if delivery is None or not delivery.sealed or repo is None:
            return []
        from reconciler.delivery.envelopes import due, envelopes

        state = self.state
        return due(envelopes(repo), target.name, lambda holder: getattr(state.person(holder), "acuse", None)
                   if state is not None else None, dt.datetime.now(dt.timezone.utc), delivery.envelope_days)

    def owes_envelopes(self) -> bool:
        """Whether an apply with nothing to change still has envelopes to take back."""
        return any(self.envelopes_due(p.target) for p in self.providers.values())

    def _record_applied(self, target: str, report: ApplyReport | None = None) -> None:
        """Move refs/reconciler/applied/<target> to the commit: everything in it is applied."""
        import git

        from reconciler.approval.signatures import SignatureError

        if self.source.commit is None:
            return
        try:
            # Signed by the apply key where apply runs with it; unsigned, the ref is only a
            # bookmark nothing trusts (incremental plans turn full).
            signable = self.apply_key is not None and self.apply_key.private is not None
            value = applied_tag(self.source.repo, self.apply_key, target, self.source.sha) if signable \
                else self.source.sha
            self.source.repo.git.update_ref(APPLIED_REF.format(target=target), value)
            self._applied.pop(target, None)
        except git.GitCommandError as exc:
            raise ReconcilerError(_("could not record the applied commit for {target}: {error}",
                                    target=target, error=exc.stderr.strip())) from None
        except SignatureError as exc:
            raise ReconcilerError(_("could not sign the applied commit for {target}: {error}",
                                    target=target, error=exc)) from None
        if report is not None:
            report.applied_refs[target] = self.source.sha

    def probe(self) -> list[tuple[str, object]]:
        """Every probe of every selected target that has them (firewalls, routers), now,
        without changing anything: the scheduled proof that they still do what is declared."""
        results = []
        for name, provider in self.providers.items():
            if provider.offers(Capability.PROBES):
                results += [(name, p) for p in provider.probe(self.request(name))]
        return results

    def record_applied(self, plan: Plan) -> dict[str, str]:
        """For a plan with nothing to do: every target without conflicts is at this commit."""
        report = ApplyReport([])
        if self.source.commit is not None:
            self.check_forward()
            for name in self.providers:
                if not any(c.target == name for c in plan.conflicts):
                    self._record_applied(name, report)
        return report.applied_refs


# Why an envelope goes back (the audit record says the key; the summary, these words).
_RETURNED = {"acknowledged": N_("acknowledged"), "expired": N_("older than the delivery limit")}


@dataclass
class _TargetApply:
    """One target's part of an apply: its audit trail from run-start to run-end."""

    run: Run
    provider: Provider
    planned: TargetPlan  # the provider's plan of this target, which apply and verification take
    changes: list[Change]
    plan: Plan
    run_id: str
    report: ApplyReport
    audit: AuditLog | None = None  # opened by start() when the target has changes
    credentials: CredentialFile | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    approved: list[Change] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    conflicts: list = field(default_factory=list)
    advance: object = None
    written: list = field(default_factory=list)  # the records this run appended, for the git note
    probes: list = field(default_factory=list)  # ProbeResults, when the kind proves its changes

    @property
    def name(self) -> str:
        return self.provider.target.name

    def start(self, progress) -> None:
        """run-start, then a `planned` record per change before the first operation (a run
        killed halfway still says what it was doing), and the skipped changes."""
        target, commit = self.provider.target, self.run.source.sha
        self.approved = [c for c in self.changes if c.approved]
        self.skipped = [Skipped(c, c.approval.reason) for c in self.changes if not c.approved]
        self.conflicts = [c for c in self.plan.conflicts if c.target == target.name]
        stopped = self.run.interrupted.get(target.name)
        returns = self.run.envelopes_due(target)
        if not self.changes and stopped is None and not returns:
            return
        self.audit = AuditLog(target.audit_dir, target.name)
        self.report.audit_files.append(str(self.audit.path))
        self.credentials = self._secrets(target)
        if stopped is not None:
            self._close_stopped(stopped)
        # Before the first operation, and vouched for by the run-start record that follows.
        image = before.write(target.audit_dir, target.name, self.run_id,
                             self.provider.before_image(self.planned, self.approved) if self.approved else None)
        self.audit.append("run-start", run=self.run_id, commit=commit, source=self.plan.source, scope=self.plan.scope,
                          fingerprint=self.plan.fingerprint, planned=len(self.approved), skipped=len(self.skipped),
                          locks_taken_over=self.run.lock_notes, reconciler=exact_version(), before_image=image,
                          **operator())
        for c in self.approved:  # the whole change: a run stopped halfway is closed from these
            self.audit.append("planned", **change_record(c, "planned", run=self.run_id, commit=commit))
        self._take_back(returns)
        for s in self.skipped:
            self.audit.append("change", **change_record(s.change, "skipped", error=s.reason, run=self.run_id,
                                                        commit=commit))
        self.report.skipped += self.skipped
        self.advance = progress(target.name, len(self.approved)) if progress else (lambda n: None)

    def _secrets(self, target: TargetSettings):
        """Where the secrets this run makes go: sealed envelopes in the repository, or, when the
        inventory says so for a lab, a clear-text file (the run's summary says it loudly)."""
        delivery = target.delivery
        if delivery is None or not delivery.sealed:
            return CredentialFile(target.credentials_dir, f"{target.name}-{self.run_id}")
        from reconciler.delivery.carta import carta_pdf
        from reconciler.delivery.envelopes import Envelopes
        from reconciler.delivery.handover import handover, letter

        state, commit = self.run.state, self.run.source.sha

        def person(key: str):
            return state.person(key) if state is not None and key else None

        def sealed_letter(**fields) -> str:
            who = person(fields["employee_key"])
            return letter(person=who.display_name if who else "", **fields)

        # The directory's UPN suffix, for the carta's sign-in name (whichever target seals).
        suffix = next((getattr(p.target, "upn_suffix", None) for p in self.run.providers.values()
                       if getattr(p.target, "upn_suffix", None)), None)

        def carta(holder: str, folio: str) -> bytes | None:
            facts = handover(state, holder, folio, delivery.institution, upn_suffix=suffix) if state is not None \
                else None
            return carta_pdf(facts) if facts is not None else None

        def unit_of(key: str, account: str) -> str | None:
            """The person's unit; for a line nobody holds, the line's own unit."""
            if person(key) is not None:
                return person(key).unit
            line = next((x for x in (state.lines if state is not None else ()) if x.number == account), None)
            return line.unit if line is not None else None

        def requester(key: str, folio: str):
            """Who asked for this person's current state, when their solicitud (this very folio)
            names a requester the approved inventory declares for the person's unit."""
            who = person(key)
            if who is None or who.solicitud.folio != folio or folio in {r.folio for r in who.password_resets}:
                return None  # a reset is a request of its own: its password never goes to the alta's requester
            return delivery.requester(who.solicitud.deliver_to, who.unit)

        return Envelopes(self.run.source.repo, target.name, self.run_id, delivery, unit_of=unit_of,
                         key=self.run.apply_key, requester=requester, letter=sealed_letter,
                         carta=carta, announce=lambda fields: self.audit.append("envelope", run=self.run_id,
                                                                                commit=commit, **fields))

    def _take_back(self, returns: list) -> None:
        """Remove them from their envelopes, each removal recorded (never what they held)."""
        from reconciler.delivery.envelopes import remove_files

        for r in returns:
            commit = remove_files(self.run.source.repo, r.envelope, set(r.files), r.reason, self.run.apply_key)
            for name in sorted(r.files):
                self.audit.append("envelope-removed", run=self.run_id, employee_key=r.envelope.holder,
                                  folio=r.envelope.folio, envelope=r.envelope.ref, envelope_commit=commit,
                                  envelope_file=name, reason=r.reason, acuse_sha256=r.acuse_sha256)
        if returns:
            why = ", ".join(sorted({_(_RETURNED[r.reason]) for r in returns}))
            self.report.warnings.append(lazy_n("{target}: {n} envelope taken back ({why})",
                                               "{target}: {n} envelopes taken back ({why})", len(returns),
                                               target=self.name, why=why))

    def _close_stopped(self, stopped: recovery.Interrupted) -> None:
        """Record what became of a run that stopped before its end, before this run's own
        records, and announce the passwords it set that are in use."""
        closing = recovery.closing_records(stopped, self.changes, self.run_id)
        for record in closing:
            self.audit.append(**record)
        changes = [r for r in closing if r["kind"] == "change"]
        done = sum(1 for r in changes if r["status"] == "applied" and (r["error"] or "").startswith("judged"))
        begun = sum(1 for r in changes if r["status"] == "applied") - done
        message = lazy_n("target {target}: run {run} (started {started}) stopped before its end; its {n} change "
                         "is recorded now: {done} done, {begun} begun and finished by this run, {not_done} not done",
                         "target {target}: run {run} (started {started}) stopped before its end; its {n} changes "
                         "are recorded now: {done} done, {begun} begun and finished by this run, {not_done} not done",
                         len(changes), target=self.name, run=stopped.run, started=Moment(stopped.started),
                         done=done, begun=begun, not_done=len(changes) - done - begun)
        keys = recovery.in_use(stopped, self.changes)
        if stopped.envelopes:
            message = lazy("{stopped}; {envelopes}", stopped=message, envelopes=self._unused_envelopes(stopped, keys))
        found = recovery.passwords_in_use(stopped, self.provider.target.credentials_dir, keys)
        if found is not None:
            path, used, unset = found
            passwords = lazy_n("{n} password it set is in use: deliver it from {path}",
                               "{n} passwords it set are in use: deliver them from {path}", used, path=str(path))
            if unset:
                passwords = lazy_n("{passwords} ({n} other row there is of an object it never created: never set)",
                                   "{passwords} ({n} other rows there are of objects it never created: never set)",
                                   unset, passwords=passwords)
            message = lazy("{stopped}; {passwords}", stopped=message, passwords=passwords)
            if used:
                self.report.credentials_files.append((str(path), used))
        self.report.warnings.append(message)

    def _unused_envelopes(self, stopped: recovery.Interrupted, in_use: set[str]):
        """Take the secrets the stopped run sealed but never set out of their envelopes (each
        removal recorded); say how many stay for their recipients."""
        from reconciler.delivery.envelopes import envelopes, remove_files

        # Keyed as the stopped run's changes are: an account's by employee key, a line's by number.
        unused = [r for r in stopped.envelopes if r.get("key") not in in_use and r.get("employee_key") not in in_use]
        by_ref: dict[str, list[dict]] = {}
        for record in unused:
            by_ref.setdefault(record.get("envelope"), []).append(record)
        its_commits = {r.get("envelope_commit") for r in stopped.envelopes}
        taken = 0
        for envelope in envelopes(self.run.source.repo):
            # Only while the envelope is as the stopped run left it: a later run may have sealed
            # another secret under the same name.
            if envelope.commit not in its_commits:
                continue
            records = [r for r in by_ref.get(envelope.ref, ()) if r.get("envelope_file") in envelope.files]
            if not records:
                continue
            commit = remove_files(self.run.source.repo, envelope, {r["envelope_file"] for r in records},
                                  f"never-used {stopped.run}", self.run.apply_key)  # not for people: Git's record
            for record in records:
                self.audit.append("envelope-removed", run=self.run_id, key=record.get("key"),
                                  employee_key=record.get("employee_key"), folio=record.get("folio"),
                                  envelope=envelope.ref, envelope_commit=commit, envelope_file=record["envelope_file"],
                                  reason="never-used")
            taken += len(records)
        return lazy("secrets it sealed: {kept} in use, kept in their envelopes; {unused} never set, taken out of "
                    "theirs", kept=len(stopped.envelopes) - len(unused), unused=taken)

    def step(self, first: bool) -> None:
        """The revoking changes (first) or the others.  A change that must wait for another
        target (_held) is not attempted: it fails with the reason, so this target's applied
        ref does not move and the next run tries again."""
        if self.audit is None:
            return
        changes = [c for c in self.approved if self.provider.revokes(c) == first]
        verdicts = [(c, self._held(c)) for c in changes]
        changes = [c for c, why in verdicts if not why]
        outcomes = self.provider.apply(self.planned, changes, self.credentials, self.advance) if changes else []
        for c, why in [(c, why) for c, why in verdicts if why]:
            outcome = Outcome(c)
            outcome.fail(lazy("not attempted: {reason}", reason=why))
            outcomes.append(outcome)
        done = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
        for o in outcomes:
            o.step, o.done_at = (1 if first else 2), done
            if o.change.movement is Movement.ALTA and o.status != "applied":
                self.run.failed_altas.setdefault(o.change.key, (self.name, o.change.label, o.error or o.status))
            # As each step completes: a run stopped later still says what it did.
            self.audit.append("result", run=self.run_id, object_kind=o.change.kind, key=o.change.key,
                              status=o.status, error=o.error, step=o.step)
        self.outcomes += outcomes

    def _held(self, change: Change) -> str | None:
        """Why `change` must wait for another target, or None.  A change that only removes
        access never waits; anything else waits for an alta of its object that failed on an
        earlier target, and for every target out of reach (a mailbox for an account nobody
        could check)."""
        if self.provider.removes_access(change):
            return None
        if change.key in self.run.failed_altas:
            target, label, error = self.run.failed_altas[change.key]
            return lazy("it needs the alta of {object} on {target}, which failed ({error})",
                        object=label, target=target, error=error)
        if self.run.unreachable:
            return lazy("target {target} is out of reach; only changes that remove access are applied until it "
                        "is back", target=", ".join(self.run.unreachable))
        return None

    def verify(self) -> None:
        """Read back and re-diff (the same for every kind); then the kind's probes, if any."""
        if self.audit is not None and self.outcomes:
            from reconciler.providers.verify import verify

            verify(self.provider, self.planned, self.outcomes)
            if self.provider.offers(Capability.PROBES):
                self.probes = self.provider.probe(self.run.request(self.name), self.planned, self.outcomes)

    def finish(self, aborted: BaseException | None) -> None:
        if self.audit is None:
            if not self.changes and not self.conflicts and aborted is None:
                self.run._record_applied(self.name, self.report)
            return
        commit = self.run.source.sha
        if self.credentials is not None:  # None when start() stopped before creating it
            self.credentials.close()
        for o in self.outcomes:
            self.audit.append("change", **change_record(o.change, o.status, o.verified, o.error, self.run_id, commit),
                              step=o.step, done_at=o.done_at, **({"evidence": o.evidence} if o.evidence else {}))
        probes = self.probes
        for p in probes:  # the proof that the rules work, kept with the run that applied them
            self.audit.append("probe", run=self.run_id, commit=commit, **p.to_dict())
        self.report.probes += [(self.name, p) for p in probes]
        applied_all = aborted is None and not self.skipped and not self.conflicts and all(
            o.status == "applied" and o.verified for o in self.outcomes) and len(self.outcomes) == len(self.approved) \
            and not any(p.ran and not p.passed for p in probes)
        self.audit.append("run-end", run=self.run_id, commit=commit,
                          result="aborted" if aborted else ("complete" if applied_all else "incomplete"),
                          reason=f"{type(aborted).__name__}: {aborted}" if aborted else None,
                          applied_ref_moved=applied_all)
        self.audit.close()
        self.written = self.audit.written
        self.report.outcomes += self.outcomes
        for phase, seconds in self.provider.timings.items():
            self.report.timings[phase] = self.report.timings.get(phase, 0.0) + seconds
        if isinstance(self.credentials, CredentialFile) and self.credentials.count:
            self.report.credentials_files.append((str(self.credentials.path), self.credentials.count))
        elif self.credentials is not None and self.credentials.count:
            self.report.envelopes.append((self.name, self.credentials.count))
        if applied_all:
            self.run._record_applied(self.name, self.report)
