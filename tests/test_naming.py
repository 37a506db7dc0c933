"""Account names, CURPs and DNs: examples and properties."""
from __future__ import annotations

import re

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reconciler.desired.curp import check_digit, curp_problem
from reconciler.desired.model import Person, Solicitud, Source
from reconciler.desired.naming import assign_account_names, ascii_fold, base_name, common_name
from reconciler import dn as dnlib


def make(key: str, given: str, first: str, second: str | None = None, sam: str | None = None) -> Person:
    return Person(employee_key=key, given_names=given, first_surname=first, second_surname=second, unit="U",
                  title="t", direction="d", phone="777 000 0000", status="activo", entitlements=(),
                  solicitud=Solicitud("F", "2026-01-01", "j", "r"), source=Source("f", None), explicit_sam=sam)


def test_base_names_fold_accents_and_punctuation():
    assert base_name(make("1", "José Luis", "Ñúñez", "O'Brien")) == "jnunezo"
    assert base_name(make("1", "María de los Ángeles", "de la Fuente", "Güemes")) == "mdelafuenteg"
    assert base_name(make("1", "Xóchitl", "Zúñiga")) == "xzuniga"
    assert base_name(make("1", "Ana", "Villaseñor-Xicoténcatl Bárcenas", "Ibáñez")) == "avillasenorxicotenci"
    assert len(base_name(make("1", "Ana", "Villaseñor-Xicoténcatl Bárcenas", "Ibáñez"))) == 20


def test_collisions_lowest_key_keeps_the_base_others_get_their_key_digits():
    names, clashes = assign_account_names([make("SSM-000200", "Juan", "Núñez", "Ortiz"),
                                           make("SSM-000100", "José", "Nuñez", "Orozco")])
    assert names == {"SSM-000100": "jnunezo", "SSM-000200": "jnunezo000200"} and clashes == []


def test_an_explicit_name_wins_and_pushes_derived_ones_aside():
    names, clashes = assign_account_names([make("E1", "José", "Núñez", "Ortiz"), make("E9", "X", "Y", sam="JNUNEZO")])
    assert names == {"E9": "jnunezo", "E1": "jnunezo1"} and clashes == []


def test_explicit_clashes_are_reported():
    _, clashes = assign_account_names([make("E1", "A", "B", sam="same"), make("E2", "C", "D", sam="Same")])
    assert [(sam, [p.employee_key for p in group]) for sam, group in clashes] == [("same", ["E1", "E2"])]


def test_common_name_has_surnames_first_with_a_comma():
    assert common_name(make("1", "José", "Ñúñez", "O'Brien")) == "Ñúñez O'Brien, José"
    assert common_name(make("1", "Xóchitl", "Zúñiga")) == "Zúñiga, Xóchitl"


letters = "abcdefghijklmnopqrstuvwxyzáéíóúñüÁÉÑÜ"
words = st.text(alphabet=letters, min_size=1, max_size=12)
names = st.builds(lambda a, b: f"{a}'{b}" if b else a, words, st.one_of(st.none(), words))


@st.composite
def people(draw, min_size=0, max_size=12):
    n = draw(st.integers(min_size, max_size))
    keys = draw(st.lists(st.integers(1, 99999), min_size=n, max_size=n, unique=True))
    return [make(f"SSM-{k:06d}", draw(names), draw(names), draw(st.one_of(st.none(), names))) for k in keys]


@settings(max_examples=300, deadline=None)
@given(people())
def test_derived_names_are_short_ascii_and_unique(group):
    names, clashes = assign_account_names(group)
    assert clashes == []
    assert len(set(names.values())) == len(group)
    for sam in names.values():
        assert len(sam) <= 20 and re.fullmatch(r"[a-z0-9]+", sam)


@settings(max_examples=300, deadline=None)
@given(people(), people(max_size=5))
def test_adding_unrelated_people_changes_no_existing_name(existing, newcomers):
    existing_keys = {p.employee_key for p in existing}
    newcomers = [p for p in newcomers if p.employee_key not in existing_keys]
    bases = {base_name(p) for p in existing}
    unrelated = [p for p in newcomers if base_name(p) not in bases]
    before, _ = assign_account_names(existing)
    after, _ = assign_account_names(existing + unrelated)
    assert {k: after[k] for k in before} == before


@settings(max_examples=300, deadline=None)
@given(people(min_size=1))
def test_a_namesake_hired_later_never_renames_anyone(existing):
    top = max(int(p.employee_key[4:]) for p in existing)
    assume(top < 99999)
    twin = existing[0]
    newcomer = make(f"SSM-{top + 1:06d}", twin.given_names, twin.first_surname, twin.second_surname)
    before, _ = assign_account_names(existing)
    after, _ = assign_account_names(existing + [newcomer])
    assert {k: after[k] for k in before} == before


def test_curp():
    valid = "NUOJ850412HMSXBS0" + str(check_digit("NUOJ850412HMSXBS0"))
    assert curp_problem(valid) is None
    assert "check digit" in curp_problem(valid[:17] + str((int(valid[17]) + 1) % 10))
    assert "impossible birth date" in curp_problem("NUOJ850230HMSXBS0" + str(check_digit("NUOJ850230HMSXBS0")))
    assert "unknown state" in curp_problem("NUOJ850412HZZXBS0" + str(check_digit("NUOJ850412HZZXBS0")))
    assert "is not a CURP" in curp_problem("nuoj850412hmsxbs01")
    # born in 2000 or later: the 17th character is a letter
    assert curp_problem("GAXL050101MDFRXBA" + str(check_digit("GAXL050101MDFRXBA"))) is None


@given(st.text(min_size=1, max_size=30))
def test_dn_escaping_round_trips(value):
    assume(value == value.strip() and "\x00" not in value)
    dn = dnlib.child("CN", value, r"OU=Oficinas\, Centrales,DC=salud,DC=lab")
    assert dnlib.split(dn)[0] == ("cn", value)
    assert dnlib.parent(dn) == r"OU=Oficinas\, Centrales,DC=salud,DC=lab"
    assert dnlib.same(dn, dn.upper() if value.upper().lower() == value.lower() else dn)


def test_dn_forms_the_server_may_return_compare_equal():
    ours = dnlib.child("CN", "Núñez O'Brien, José", "OU=U,DC=x")
    assert dnlib.same(ours, r"cn=N\C3\BA\C3\B1ez O'Brien\2C José,ou=u,dc=X")
    assert ascii_fold("Ñúñez Güemes") == "nunez guemes"
