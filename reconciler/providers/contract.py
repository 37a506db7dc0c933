"""The provider contract: how a kind of target plugs into a reconcile run.

A run does the same five things with every target, in this order, and nothing else:

    provider.prefetch()                       optional: start the bulk read early
    planned = provider.plan(request)          one bulk read, then a pure diff
    outcomes = provider.apply(planned, ...)   the approved changes (revocations first, see revokes)
    back = provider.read_back(planned)        read again what apply touched ...
    provider.confirm(planned, back, ...)      ... and the checks a re-diff cannot make

Before apply, `provider.before_image(planned, changes)` renders what the changes will touch,
kept next to the audit trail (audit/before.py).

State is passed explicitly: what `plan` read and wanted travels in `TargetPlan.basis`, which
`apply` and `read_back` take; a provider keeps only its connections between calls.  The
verification itself is written once, in `verify.py`, for every kind.

Optional capabilities are declared in `capabilities`, never discovered with isinstance or
getattr.  A provider that declares one implements its method below; the base class's default
refuses loudly, so a declared but missing capability is a bug found on first use.
"""
from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, NamedTuple, Sequence

from reconciler.i18n import N_
from reconciler.plan import Change, Conflict, Outcome

if TYPE_CHECKING:  # type names only: importing them would load the desired-state loader
    from reconciler.credentials import CredentialFile
    from reconciler.desired.model import DesiredState
    from reconciler.providers.found import Existing, ImportRequest

PASSWORD_RESET = "password-reset"  # the change kind of a password reset (capability PASSWORD_RESETS)


class Capability(str, enum.Enum):
    """What a kind may offer beyond plan, apply and verify.  The engine acts on the first
    three and `reconciler import` on IMPORT; the engine hands a kind with WORK_ORDERS the
    desired-state repository (PlanRequest.repository), where it keeps them; ADOPTION is declared
    so that kinds say what they do (adopting what was made by hand)."""

    IMPLIED_APPROVALS = "implied-approvals"  # some changes are approved by what they serve (implied_approvals)
    PASSWORD_RESETS = "password-resets"  # plans declared resets once each (PlanRequest.applied_resets)
    PROBES = "probes"  # proves its changes by real traffic after apply (probe)
    ADOPTION = "adoption"  # its plan adopts an unmanaged object a declaration matches, not a conflict
    IMPORT = "import"  # `reconciler import` reads what it holds (existing)
    WORK_ORDERS = "work-orders"  # changes are done by people and confirmed later, not read back
    SETTLED_PLANS = "settled-plans"  # proves from the target alone that a plan that found nothing still holds


@dataclass(frozen=True)
class Standing:
    """A settled plan that still holds (Provider.settled)."""

    at: float  # when the remembered plan was made (seconds since the epoch)
    written: frozenset = frozenset()  # employee keys whose objects read otherwise since: plan just them


@dataclass(frozen=True)
class Repository:
    """The desired-state repository, for a kind that keeps records beside it (WORK_ORDERS):
    the Git repository, the apply key that signs and checks them (audit/seal.ApplyKey, or
    None), and the commit the run reads."""

    repo: Any
    key: Any = None
    commit: str | None = None


@dataclass(frozen=True)
class PlanRequest:
    """What the engine asks a provider to plan."""

    state: "DesiredState"
    today: str  # ISO date: expiry, retention
    keys: frozenset | None = None  # incremental plan: only these employee keys changed
    previous_keys: frozenset = frozenset()  # the changed files' keys at the last applied commit
    applied_resets: frozenset = frozenset()  # folios of password resets already applied (PASSWORD_RESETS)
    repository: "Repository | None" = None  # WORK_ORDERS: where the kind keeps its work orders


    @property
    def incremental(self) -> bool:
        return self.keys is not None


@dataclass
class TargetPlan:
    """One target's plan: what to change, what stands in the way, and what was read.

    `basis` is the provider's own record of what it read and wanted (opaque to the engine);
    apply and read_back take it back.  `needs_full_read` says why an incremental plan of this
    target cannot be trusted: the engine then plans everything again, in full."""

    target: str
    changes: list[Change] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    basis: Any = None
    needs_full_read: str | None = None


@dataclass
class ReadBack:
    """What a provider found when it read the target again after apply."""

    remaining: list[Change]  # the diff between the plan's desired state and the fresh read
    observed: Any = None  # the fresh read, for confirm()


Advance = Callable[[int], None]


def named_by_inventory(changes: Sequence[Change], reasons: dict[str, str]) -> dict[int, str]:
    """The changes declared by no line whose kind the inventory itself names (an OU, a table,
    the maps derived from approved content): index -> why they are approved.  The common part
    of IMPLIED_APPROVALS."""
    return {i: reasons[c.kind] for i, c in enumerate(changes) if not c.origins and c.kind in reasons}


class Declared(NamedTuple):
    """How a declaration was written: its identifying text (an employee key, a line's number,
    a rule's name) in the files of one folder of desired_state/ ("users", "assets",
    "security_rules")."""

    text: str
    folder: str


class Provider(ABC):
    """One target of one kind, open for the duration of a run (a context manager)."""

    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    parallel: ClassVar[bool] = False  # many independent devices: planned and applied concurrently
    holds_people: ClassVar[bool] = False  # a directory of accounts: import draws the people from one such target
    read_back_source: ClassVar[str] = N_("the target")  # named in "read back: … does not show the change"
    # Kinds of object every apply on the target rewrites, whatever it changes (the mail maps,
    # derived from the registry): a run stopped halfway leaves them half-written, not drifted.
    rewritten_by_every_apply: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, target) -> None:
        self.target = target
        self.timings: dict[str, float] = {}  # seconds per phase, for reports and benchmarks
        # --full-read: read the target whole, whatever state a kind keeps between runs to read
        # only what changed (it keeps the fresh read for the next run).
        self.full_read = False

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a connection that died already: closing it tells the run
            pass  # nothing, and an error here must never replace the run's result or its summary

    def open(self) -> None:
        """Connect, when the kind connects up front (a failure is a ReconcilerError)."""

    def close(self) -> None:
        """Release connections; must not raise."""

    def prefetch(self) -> None:
        """Start the bulk read in the background, while the YAML is loaded (full plans only)."""

    # -- the contract -----------------------------------------------------------------------
    @abstractmethod
    def plan(self, request: PlanRequest) -> TargetPlan:
        """Read the target in bulk and diff it against the desired state (a pure function)."""

    def revokes(self, change: Change) -> bool:
        """Whether `change` takes access away.  The engine applies every target's revoking
        changes first, targets in reverse order (a mailbox closed before its account is
        disabled).  A kind that orders its own revocations inside apply says False."""
        return False

    def removes_access(self, change: Change) -> bool:
        """Whether applying `change` only takes access away (a baja, a group removed, a new
        secret that locks out the old one): such changes go ahead while another target is out
        of reach, everything else waits.  By default: bajas, and what `revokes` orders first."""
        from reconciler.plan import Movement

        return change.movement is Movement.BAJA or self.revokes(change)

    @abstractmethod
    def apply(self, planned: TargetPlan, changes: Sequence[Change], credentials: "CredentialFile",
              advance: Advance = lambda n: None) -> list[Outcome]:
        """Apply `changes` (approved, from `planned`): one Outcome each, failed with a message
        rather than raising for a change the target refused."""

    @abstractmethod
    def read_back(self, planned: TargetPlan) -> ReadBack:
        """Read the target again and diff it against `planned`'s desired state.  A target that
        cannot be read raises ReconcilerError."""

    def confirm(self, planned: TargetPlan, back: ReadBack, shown: list[Outcome]) -> dict[int, str]:
        """Checks a re-diff cannot make, for the applied changes the read back shows (a new
        account must change its password, a live registration must be gone): id(outcome) ->
        what is wrong.  None by default."""
        return {}

    def before_image(self, planned: TargetPlan, changes: Sequence[Change]) -> tuple[str, bytes] | None:
        """What the objects `changes` will touch look like now, as (file suffix, content), for
        a person to restore by hand (audit/before.py).  By default JSON Lines of each object as
        the plan read it; a kind with a standard format of its own (LDIF) says so here."""
        from reconciler.audit.before import json_lines

        return json_lines(changes)

    def removed_declaration(self, change: Change) -> Declared | None:
        """For the baja of an object no longer declared: how it was declared, so that review
        finds the commit that removed it and judges that commit's approvals.  None (the
        default, which approves nothing): not declared line by line."""
        return None

    # -- optional capabilities --------------------------------------------------------------
    def implied_approvals(self, changes: Sequence[Change]) -> dict[int, str]:
        """IMPLIED_APPROVALS: of this target's reviewed changes, those approved by implication
        (index -> reason): objects the inventory names, or containers an approved change needs."""
        raise NotImplementedError(f"{self.kind} does not declare implied approvals")  # not for people

    def existing(self, request: "ImportRequest") -> "Existing":
        """IMPORT: what the target holds that import declares or reports (providers/found.py),
        read-only and in bulk.  Called on a provider that was not opened (import needs none of
        apply's secrets): it opens only what it reads, and close() releases it."""
        raise NotImplementedError(f"{self.kind} does not declare import")  # not for people

    def probe(self, request: PlanRequest, planned: TargetPlan | None = None, outcomes: Sequence[Outcome] = ()) -> list:
        """PROBES: prove the target's declared behaviour by real traffic now: after an apply,
        what `planned` wanted and `outcomes` applied; else what `request` declares.  ProbeResults."""
        raise NotImplementedError(f"{self.kind} does not declare probes")  # not for people

    def settle(self, planned: TargetPlan, inputs: str) -> None:
        """SETTLED_PLANS: `planned`, a full plan of the inputs the engine vouches for (`inputs`,
        engine.settled_inputs), found nothing to do: remember what it read, to answer `settled`."""
        raise NotImplementedError(f"{self.kind} does not declare settled plans")  # not for people

    @classmethod
    def remembers(cls, target, inputs: str) -> bool:
        """SETTLED_PLANS: without opening anything, whether a plan remembered for `inputs` may
        exist (a hint: `settled` proves it).  A plan waits for the targets to open only then."""
        return False

    def unsettle(self) -> None:
        """SETTLED_PLANS: forget the remembered plan (its plan of some keys needed a full read:
        asking again next time would only repeat that)."""

    def settled(self, inputs: str) -> "Standing | None":
        """SETTLED_PLANS: whether the plan `settle` remembered for `inputs` still holds, proved
        from the target, never assumed: when it was made, and the employee keys whose objects
        now read otherwise (empty: nothing it read has changed; the engine plans only those
        keys, as an incremental plan, so naming one too many costs time and one too few is a
        wrong plan); None when anything else changed or cannot be told.  Called before the
        desired state is loaded, on an opened provider."""
        raise NotImplementedError(f"{self.kind} does not declare settled plans")  # not for people

    def offers(self, capability: Capability) -> bool:
        return capability in self.capabilities
