"""Settled registrar plans against the lab's PostgreSQL, beside the lab's Samba, through the
engine (providers/sip/settled.py): the drift check of both targets stands whole while nothing
either reads changes; a hand edit in the registrar is planned as a full plan plans it; and a
hand edit in the directory plans only the people written, the registrar standing on its memory
(asked instead, it would read every line to find that a person written holds one, and make the
whole run a full one)."""
from __future__ import annotations

import pytest

from test_delta_read_lab import cache_home, edit_attribute, plan, staff  # noqa: F401 (fixtures)
from test_phone_lab import PhoneBed, extension, registrar
from test_settled_plan_lab import ONLY_THEY, SETTLED, _people, drift_check
from test_sip_settled import EDITS

pytestmark = pytest.mark.lab

NOTHING = {"changes": [], "conflicts": [], "warnings": []}


@pytest.fixture
def both(staff):  # noqa: F811
    """The directory's staff and two of them with extensions, applied, and a drift check of
    both targets that found nothing: remembered."""
    PhoneBed(staff)
    staff.repo.lines = [extension("4401", "SSM-000001"), extension("4402", "SSM-000002")]
    staff.apply()
    found, scope = drift_check(staff)
    assert found == NOTHING and SETTLED not in scope
    yield staff
    PhoneBed.clear()


def test_the_drift_check_of_both_targets_stands_whole_while_nothing_is_written(both):
    found, scope = drift_check(both)
    assert found == NOTHING and SETTLED in scope, scope


@pytest.mark.parametrize("edit", [e for e in EDITS if e != "someone else's line made"])  # that one plans nothing
def test_a_hand_edit_in_the_registrar_is_planned_as_a_full_plan_plans_it(both, edit):
    with registrar() as db:
        db.execute(EDITS[edit])
    found, scope = drift_check(both)
    assert SETTLED not in scope and found == plan(both, full=True) != NOTHING
    assert {c["target"] for c in found["changes"]} == {"phone-test"}


def test_a_hand_edit_in_the_directory_plans_only_the_people_written_while_the_registrar_stands(both):
    found = {(k if isinstance(k := e["attributes"]["employeeID"], str) else k[0]): e["dn"] for e in _people(both)}
    edit_attribute(both, found["SSM-000001"], "Cambiado a mano")  # who holds extension 4401
    checked, scope = drift_check(both)
    assert ONLY_THEY in scope and "1 person" in scope, scope
    assert checked == plan(both, full=True)
    assert [(c["target"], c["key"]) for c in checked["changes"]] == [("ad-test", "SSM-000001")]
