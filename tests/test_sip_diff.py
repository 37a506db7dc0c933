"""The extensions diff is a pure function: examples, and a hypothesis property (applying the
plan to the subscriber table leaves nothing to do, and never touches what it does not own)."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.plan import Movement
from reconciler.providers.sip.diff import ActualLines, Gone, Line, Subscriber, diff, rotates


def lines(*items: Line) -> dict[str, Line]:
    return {line.number: line for line in items}


def actual(*subs: Subscriber) -> ActualLines:
    return ActualLines({s.number: s for s in subs})


def test_adopcion_alta_modificacion_and_baja():
    desired = lines(Line("4401", "SSM-1", "HG"), Line("4402", "SSM-2", "HG"), Line("4403", None, "HG"))
    have = actual(Subscriber("4402", True, "SSM-9", "HG"), Subscriber("4403", False),
                  Subscriber("4404", True, "SSM-4", "HG"))
    changes, conflicts = diff(desired, have, "phone", {"4404": Gone("baja, folio F-1", "F-1")})
    assert conflicts == []
    assert [(c.movement, c.key) for c in changes] == [
        (Movement.ADOPCION, "4403"), (Movement.ALTA, "4401"), (Movement.MODIFICACION, "4402"), (Movement.BAJA, "4404")]
    assert not rotates(changes[0])  # a line made by hand keeps its secret when adopted
    assert all(rotates(c) for c in changes[1:3])  # a new line, and a new holder: new secrets
    assert changes[3].reason == "baja, folio F-1"


def test_a_unit_change_keeps_the_secret_and_drift_rotates_it():
    [move], _ = diff(lines(Line("4401", "SSM-1", "CS")), actual(Subscriber("4401", True, "SSM-1", "HG")), "phone")
    assert not rotates(move)
    [drift], _ = diff(lines(Line("4401", "SSM-1", "HG")),
                      actual(Subscriber("4401", True, "SSM-1", "HG", secret_drift=True)), "phone")
    assert rotates(drift) and drift.drift


NUMBERS = st.sampled_from(["4401", "4402", "4403", "4404", "4405"])
HOLDERS = st.none() | st.sampled_from(["SSM-1", "SSM-2", "SSM-3"])
UNITS = st.sampled_from(["HG", "CS"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.builds(Line, NUMBERS, HOLDERS, UNITS), max_size=5),
       st.lists(st.builds(Subscriber, NUMBERS, st.booleans(), HOLDERS, UNITS, st.booleans()), max_size=5))
def test_applying_the_plan_leaves_nothing_to_do(wanted, existing):
    desired = lines(*wanted)
    table = {s.number: (s if s.managed else replace(s, holder=None, unit=None, secret_drift=False)) for s in existing}
    changes, conflicts = diff(desired, ActualLines(dict(table)), "phone")
    untouched = {n: s for n, s in table.items() if not s.managed}
    for c in changes:  # what apply does to the table
        if c.movement is Movement.BAJA:
            del table[c.key]
        else:
            table[c.key] = Subscriber(c.key, True, c.desired.holder, c.desired.unit)
    again, _ = diff(desired, ActualLines(table), "phone")
    assert again == [] and conflicts == []
    # a subscriber made by hand is adopted when declared (its secret kept), else never touched
    assert {n: s for n, s in table.items() if not s.managed} == {n: s for n, s in untouched.items() if n not in desired}
    assert {c.key for c in changes if c.movement is Movement.ADOPCION} == {n for n in desired if n in untouched}
    assert not any(rotates(c) for c in changes if c.movement is Movement.ADOPCION)


def test_staged_rollout_leaves_the_other_units_extensions_alone():
    desired = lines(Line("4401", "SSM-1", "HG"), Line("5501", "SSM-2", "OTRA"), Line("5502", "SSM-3", "OTRA"))
    have = actual(Subscriber("5501", False), Subscriber("5502", True, "SSM-9", "OTRA"),
                  Subscriber("5503", True, "SSM-4", "OTRA"))
    changes, conflicts = diff(desired, have, "phone", manages=lambda unit: unit == "HG")
    assert [(c.movement, c.key) for c in changes] == [(Movement.ALTA, "4401")]
    assert [c.key for c in conflicts] == ["5502"] and "managed_units" in conflicts[0].message
    everything, _ = diff(desired, have, "phone")
    assert {(c.movement, c.key) for c in everything} == {
        (Movement.ALTA, "4401"), (Movement.ADOPCION, "5501"), (Movement.MODIFICACION, "5502"), (Movement.BAJA, "5503")}


def test_staged_rollout_never_skips_the_baja_of_a_line_whose_unit_is_declared_nowhere():
    """A managed subscriber recorded in a unit units.yaml no longer declares is no other unit's:
    its baja goes ahead (as the target's scope judges it); one of an unmanaged unit is left."""
    from reconciler.providers.sip.target import SipTarget

    target = SipTarget.build("phone", {"domain": "salud.lab", "database": "/nonexistent", "rpc_url": "http://x/",
                                       "managed_units": ["NEW"], "audit_dir": "/nonexistent"})
    manages = target.scope(["NEW", "OLD"])
    have = actual(Subscriber("5501", True, "SSM-1", "DISSOLVED"), Subscriber("5502", True, "SSM-2", "OLD"))
    changes, _ = diff({}, have, "phone", manages=manages)
    assert [(c.movement, c.key) for c in changes] == [(Movement.BAJA, "5501")]
