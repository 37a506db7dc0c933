"""Extensions on the SIP registrar: what the assets declare, what the subscriber table holds,
and the pure diff between them.

An extension is declared in desired_state/assets/lines.yaml with `kind: extension`.  It should
exist while it is `activa` and its holder (if any) is not a baja.  The reconciler owns the
subscribers listed in its own table `reconciler_line`; one made by hand at a declared number
is adopted (recorded there, its secret kept), any other is never changed.
A new holder, or a secret changed by hand, gets a new secret: whoever knew the old one must
not keep using the line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

from reconciler.i18n import lazy
from reconciler.plan import AttributeChange, Change, Conflict, Movement

if TYPE_CHECKING:  # a name for types only: a settled plan loads no desired state
    from reconciler.desired.model import DesiredState

KIND = "sip-line"
REGISTRATIONS = "sip-registrations"  # live registrations an applied change had to drop, still pending
NEW_SECRET = lazy("(new, random, delivered out of band)")


@dataclass(frozen=True)
class Line:
    number: str
    holder: str | None  # employee key
    unit: str
    label: str = field(default="", compare=False)
    folio: str | None = field(default=None, compare=False)
    origins: tuple = field(default=(), compare=False)


@dataclass(frozen=True)
class Subscriber:
    number: str
    managed: bool
    holder: str | None = None
    unit: str | None = None
    secret_drift: bool = False  # its ha1 is not the one the reconciler set


@dataclass(frozen=True)
class Gone:
    """Why a declared extension should not exist, and where that is declared (for approval)."""

    reason: str
    folio: str | None = None
    origins: tuple = ()


@dataclass(frozen=True)
class ActualLines:
    subscribers: Mapping[str, Subscriber]
    # Lines whose registrations a committed change must drop and no ul.rm has yet (a failed
    # RPC, a run killed in between): number -> since when
    unregister: Mapping[str, str] = field(default_factory=dict)


def desired_lines(state: DesiredState) -> tuple[dict[str, Line], dict[str, Gone]]:
    """The extensions that should exist, and why each other declared one should not."""
    from reconciler.desired.assets import holder  # the desired state's: loaded by now

    people = {p.employee_key: p for p in state.people}
    lines, gone = {}, {}
    for line in state.lines:
        if line.kind != "extension":
            continue
        if line.status != "activa":
            gone[line.number] = Gone(lazy("baja, folio {folio}", folio=line.solicitud.folio), line.solicitud.folio,
                                     (line.source,))
            continue
        if line.person and holder(line, people) is None:
            leaver = people[line.person]
            gone[line.number] = Gone(lazy("released: its holder {holder} is a baja", holder=line.person),
                                     leaver.solicitud.folio, (leaver.source,))
            continue
        person = people.get(line.person) if line.person else None
        label = f"{line.number} ({person.display_name})" if person else \
            lazy("{number} (unit {unit})", number=line.number, unit=line.unit)
        origins = (line.source,) + ((person.source,) if person else ())
        lines[line.number] = Line(line.number, line.person, line.unit, label, line.solicitud.folio, origins)
    return lines, gone


def _attributes(want: Line | None, have: Subscriber | None) -> tuple[AttributeChange, ...]:
    if want is None:
        return (AttributeChange("subscriber", lazy("registered"), lazy("removed")),
                AttributeChange(lazy("live registrations"), None, lazy("dropped")))
    pairs = [("holder", have.holder if have else None, want.holder), ("unit", have.unit if have else None, want.unit)]
    out = [AttributeChange(n, b, a) for n, b, a in pairs if b != a]
    if have is None or have.holder != want.holder or have.secret_drift:
        out.append(AttributeChange("secret", lazy("(current)") if have else None, NEW_SECRET))
    return tuple(out)


def rotates(change: Change) -> bool:
    """Does applying this change issue a new secret (and drop the old one's registrations)?
    Never an adoption: it keeps the secret the line has."""
    return change.movement not in (Movement.BAJA, Movement.ADOPCION) and \
        any(a.name == "secret" for a in change.attributes)


def diff(desired: dict[str, Line], actual: ActualLines, target: str,
         gone: Mapping[str, Gone] | None = None,
         manages: Callable[[str | None], bool] = lambda unit: True) -> tuple[list[Change], list[Conflict]]:
    """`manages`: whether a unit's extensions are managed on this target (managed_units); the
    others' subscribers are left as they are."""
    gone = gone or {}
    adoptions, altas, modificaciones, bajas, conflicts = [], [], [], [], []
    for number in sorted(desired):
        want, have = desired[number], actual.subscribers.get(number)
        if not manages(want.unit):
            if have is not None and have.managed:
                conflicts.append(Conflict(target, number, want.label, lazy(
                    "declared in a unit not managed on this target (managed_units): the subscriber is left as it "
                    "is, neither changed nor removed")))
            continue
        if have is not None and not have.managed:
            # Made by hand: adopted as it is, its secret kept (the phone on the desk goes on working);
            # a new holder later gets a new one, as for any line.
            adoptions.append(Change(Movement.ADOPCION, target, KIND, number, want.label, (
                AttributeChange("holder", None, want.holder), AttributeChange("unit", None, want.unit),
                AttributeChange("secret", lazy("(current)"), lazy("(current, kept)"))),
                reason=lazy("existing subscriber, made by hand"), folio=want.folio, unit=want.unit,
                origins=want.origins, desired=want, actual=have))
            continue
        attributes = _attributes(want, have)
        if not attributes:
            continue
        change = Change(Movement.ALTA if have is None else Movement.MODIFICACION, target, KIND, number, want.label,
                        attributes, folio=want.folio, unit=want.unit, origins=want.origins, desired=want, actual=have,
                        drift=have is not None and have.secret_drift,
                        reason=lazy("its secret was changed outside the reconciler (drift)")
                        if have is not None and have.secret_drift else "")
        (altas if have is None else modificaciones).append(change)
    for number in sorted(n for n, s in actual.subscribers.items()
                         if s.managed and n not in desired and manages(s.unit)):
        have = actual.subscribers[number]
        why = gone.get(number, Gone(lazy("no longer declared in desired_state")))
        label = lazy("{number} (holder {holder})", number=number, holder=have.holder) if have.holder else \
            lazy("{number} (holder unit {unit})", number=number, unit=have.unit)
        bajas.append(Change(Movement.BAJA, target, KIND, number, label,
                            _attributes(None, have), reason=why.reason, folio=why.folio, unit=have.unit,
                            origins=why.origins, actual=have))
    changing = {c.key for c in adoptions + altas + modificaciones + bajas}
    for number in sorted(set(actual.unregister) - changing):  # a change of the line drops them anyway
        if number in actual.subscribers and not actual.subscribers[number].managed:
            continue  # a subscriber the reconciler does not own is never touched, whatever the table says
        bajas.append(Change(Movement.BAJA, target, REGISTRATIONS, number,
                            lazy("live registrations of {number}", number=number),
                            reason=lazy("an applied change had to drop them (pending since {since})",
                                        since=actual.unregister[number])))
    return adoptions + altas + modificaciones + bajas, conflicts
