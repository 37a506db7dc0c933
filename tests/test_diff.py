"""The diff is a pure function: examples, and properties checked with hypothesis."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.inventory import SecretSource
from reconciler.providers.ad.target import ADTarget
from reconciler.plan import Movement
from reconciler.providers.ad.diff import ActualDirectory, ForeignObject, diff
from reconciler.providers.ad.records import MANAGED_ATTRIBUTES, Account, DesiredDirectory
from reconciler import dn as dnlib

TARGET = ADTarget(
    name="ad", host="h", port=636, base_dn="DC=x", upn_suffix="x", people_ou="OU=P,DC=x",
    groups_ou="OU=G,DC=x", bajas_ou="OU=B,DC=x", bind_dn="b", bind_password=SecretSource(env="X"),
    ca_file=None, validate_tls=True, max_bajas=5, credentials_dir="/tmp",
)
UNIT_OUS = ["OU=U1,OU=P,DC=x", r"OU=Oficinas\, Centrales,OU=P,DC=x"]
ALL_OUS = ("OU=P,DC=x", "OU=G,DC=x", "OU=B,DC=x", *UNIT_OUS)
GROUPS = {"GG-A": "a", "GG-B": "b", "GG-C": "c"}
TODAY = "2026-11-22"


def account(key: str, sam: str, **kw) -> Account:
    attrs = {name: None for name in MANAGED_ATTRIBUTES}
    attrs.update(sAMAccountName=sam, userPrincipalName=f"{sam}@x", employeeID=key, displayName=f"Name {key}",
                 title=kw.pop("title", "Médico"))
    defaults = dict(cn=f"Ñúñez, {key}", parent=UNIT_OUS[0], attributes=attrs, enabled=True,
                    groups=frozenset({"GG-A"}))
    defaults.update(kw)
    return Account(key=key, **defaults)


def as_actual(a: Account) -> Account:
    """What the directory holds after the reconciler applied `a`."""
    return replace(a, dn=a.target_dn, applied_hash=a.state_hash(), must_change_password=True, uac=512)


def desired_dir(*accounts: Account) -> DesiredDirectory:
    return DesiredDirectory({a.key: a for a in accounts}, GROUPS, ALL_OUS)


def actual_dir(*accounts: Account, foreign=()) -> ActualDirectory:
    return ActualDirectory({a.key: a for a in accounts}, tuple(foreign), frozenset(dnlib.key(o) for o in ALL_OUS),
                           {g.casefold(): f"CN={g},OU=G,DC=x" for g in GROUPS})


def test_nothing_to_do_when_actual_matches():
    a = account("E1", "jnunez")
    changes, conflicts = diff(desired_dir(a), actual_dir(as_actual(a)), TARGET, TODAY)
    assert changes == [] and conflicts == []


def test_alta_of_a_new_person_and_of_missing_ous_and_groups():
    a = account("E1", "jnunez")
    empty = ActualDirectory({})
    changes, _ = diff(desired_dir(a), empty, TARGET, TODAY)
    kinds = [(c.movement, c.kind) for c in changes]
    assert kinds[:len(ALL_OUS)] == [(Movement.ALTA, "ou")] * len(ALL_OUS)
    assert kinds[len(ALL_OUS):] == [(Movement.ALTA, "group")] * 3 + [(Movement.ALTA, "account")]
    assert changes[-1].label == "jnunez (Name E1)"


def test_modificacion_lists_before_and_after():
    have = as_actual(account("E1", "jnunez"))
    want = account("E1", "jnunez", title="Jefe", groups=frozenset({"GG-B"}), parent=UNIT_OUS[1])
    [change], _ = diff(desired_dir(want), actual_dir(have), TARGET, TODAY)
    assert change.movement is Movement.MODIFICACION and not change.drift
    by_name = {a.name: a for a in change.attributes}
    assert (by_name["title"].before, by_name["title"].after) == ("Médico", "Jefe")
    assert by_name["groups"].added() == ("GG-B",) and by_name["groups"].removed() == ("GG-A",)
    assert by_name["ou"].after == UNIT_OUS[1]


def test_hand_edits_are_drift():
    want = account("E1", "jnunez")
    have = replace(as_actual(want), attributes={**want.attributes, "title": "Director"})
    [change], _ = diff(desired_dir(want), actual_dir(have), TARGET, TODAY)
    assert change.drift and "drift" in change.reason


def test_group_names_compare_without_case():
    want = account("E1", "jnunez", groups=frozenset({"GG-A"}))
    have = replace(as_actual(want), groups=frozenset({"gg-a"}))
    assert diff(desired_dir(want), actual_dir(have), TARGET, TODAY)[0] == []


def test_declared_baja_and_undeclared_account():
    have1, have2 = as_actual(account("E1", "jnunez")), as_actual(account("E2", "amora"))
    baja = account("E1", "jnunez", enabled=False, groups=frozenset(), parent=TARGET.bajas_ou,
                   cn="Ñúñez, E1 (jnunez)")
    changes, _ = diff(desired_dir(baja), actual_dir(have1, have2), TARGET, TODAY)
    assert [(c.movement, c.key) for c in changes] == [(Movement.BAJA, "E1"), (Movement.BAJA, "E2")]
    orphan = changes[1]
    assert orphan.reason == "no longer declared in desired_state"
    assert orphan.desired.attributes["description"].startswith(f"Baja {TODAY} sin folio")
    assert not orphan.desired.enabled and not orphan.desired.groups


def test_a_baja_already_done_is_left_alone():
    gone = account("E2", "amora", enabled=False, groups=frozenset(), parent=TARGET.bajas_ou)
    assert diff(desired_dir(), actual_dir(as_actual(gone)), TARGET, TODAY)[0] == []


def test_a_baja_for_someone_without_account_does_nothing():
    baja = account("E1", "jnunez", enabled=False, groups=frozenset(), parent=TARGET.bajas_ou)
    assert diff(desired_dir(baja), actual_dir(), TARGET, TODAY) == ([], [])


def test_unmanaged_collisions_are_conflicts_not_changes():
    want = account("E1", "jnunez")
    for foreign in (ForeignObject("CN=x,CN=Users,DC=x", sam="JNUNEZ"),
                    ForeignObject("CN=y,CN=Users,DC=x", employee_id="E1"),
                    ForeignObject(want.target_dn.upper())):
        changes, conflicts = diff(desired_dir(want), actual_dir(foreign=[foreign]), TARGET, TODAY)
        assert [c.key for c in conflicts] == ["E1"]
        assert all(c.kind != "account" for c in changes)


def test_a_group_name_held_elsewhere_is_a_conflict():
    actual = replace(actual_dir(foreign=[ForeignObject("CN=GG-A,CN=Users,DC=x", sam="GG-A")]), groups={})
    changes, conflicts = diff(DesiredDirectory({}, GROUPS, ALL_OUS), actual, TARGET, TODAY)
    assert [c.key for c in conflicts] == ["GG-A"]
    assert sorted(c.key for c in changes if c.kind == "group") == ["GG-B", "GG-C"]


def test_a_rename_onto_a_managed_name_is_a_conflict():
    other = as_actual(account("E2", "amora"))
    me = as_actual(account("E1", "jnunez"))
    want = account("E1", "amora")
    changes, conflicts = diff(desired_dir(want, account("E2", "amora")), actual_dir(me, other), TARGET, TODAY)
    assert [c.key for c in conflicts] == ["E1"] and changes == []


# -- properties --------------------------------------------------------------------------

KEYS = [f"E{i}" for i in range(8)]
sams = st.sampled_from(["jnunez", "amora", "lpena", "xzuniga", "bdacosta", "mmunoz"])
groups = st.frozensets(st.sampled_from(sorted(GROUPS)))
texts = st.one_of(st.none(), st.sampled_from(["Médico", "Enfermera", "Jefa de Área", "O'Brien, Ñ"]))


@st.composite
def accounts(draw, key):
    enabled = draw(st.booleans())
    parent = draw(st.sampled_from(UNIT_OUS)) if enabled else TARGET.bajas_ou
    return account(key, draw(sams), title=draw(texts), enabled=enabled, parent=parent,
                   groups=draw(groups) if enabled else frozenset(), cn=draw(st.sampled_from(["A, B", "Ñúñez, José"])))


@st.composite
def worlds(draw):
    """A desired directory, and an actual one that overlaps it with arbitrary differences."""
    desired_keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=6))
    actual_keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=6))
    want = {}
    for k in desired_keys:
        a = draw(accounts(k))
        if any(o.sam == a.sam for o in want.values()):
            a = replace(a, attributes={**a.attributes, "sAMAccountName": f"{a.sam}{k}",
                                       "userPrincipalName": f"{a.sam}{k}@x"})
        want[k] = a
    have = {}
    for k in actual_keys:
        a = as_actual(draw(accounts(k)))
        if any(o.sam == a.sam for o in have.values()):
            continue  # the directory itself never holds two accounts with one sAMAccountName
        if draw(st.booleans()):  # sometimes edited by hand after the reconciler applied it
            a = replace(a, attributes={**a.attributes, "title": "editado a mano"})
        have[k] = a
    foreign = draw(st.lists(st.builds(ForeignObject, st.just("CN=f,CN=Users,DC=x"), sams), max_size=1))
    return DesiredDirectory(want, GROUPS, ALL_OUS), actual_dir(*have.values(), foreign=foreign)


def simulate(actual: ActualDirectory, changes) -> ActualDirectory:
    """Apply changes to an in-memory directory the way the provider does."""
    accounts = dict(actual.accounts)
    for c in changes:
        if c.kind == "account":
            accounts[c.key] = as_actual(c.desired)
    return replace(actual, accounts=accounts)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_applying_the_plan_converges(world):
    desired, actual = world
    changes, conflicts = diff(desired, actual, TARGET, TODAY)
    after = simulate(actual, changes)
    again, _ = diff(desired, after, TARGET, TODAY)
    blocked = {c.key for c in conflicts}
    assert [c for c in again if c.kind == "account" and c.key not in blocked] == []


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_diff_is_deterministic_and_safe(world):
    desired, actual = world
    changes, conflicts = diff(desired, actual, TARGET, TODAY)
    assert (changes, conflicts) == diff(desired, actual, TARGET, TODAY)
    account_changes = [c for c in changes if c.kind == "account"]
    assert len({c.key for c in account_changes}) == len(account_changes)  # one change per object
    for c in account_changes:
        if c.movement is Movement.ALTA:
            assert c.key not in actual.accounts and c.desired.enabled
        else:
            assert c.key in actual.accounts  # only accounts we own are modified or given baja
        if c.movement is Movement.BAJA:
            assert not c.desired.enabled and not c.desired.groups
            assert dnlib.same(c.desired.parent, TARGET.bajas_ou)
        assert c.drift == (c.actual is not None and c.actual.applied_hash != c.actual.state_hash())
    for key in set(actual.accounts) - set(desired.accounts):  # undeclared: baja or already offboarded
        if actual.accounts[key].enabled:
            assert any(c.key == key and c.movement is Movement.BAJA for c in account_changes)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_no_changes_once_actual_equals_desired(world):
    desired, _ = world
    actual = actual_dir(*(as_actual(a) for a in desired.accounts.values()))
    changes, conflicts = diff(desired, actual, TARGET, TODAY)
    assert changes == [] and conflicts == []


def test_an_undeclared_baja_reenabled_by_hand_is_disabled_again_without_a_second_suffix():
    given_baja = as_actual(account("E2", "amora", cn="Mora, Ana (amora)", enabled=True, groups=frozenset(),
                                   parent=TARGET.bajas_ou))
    [change], _ = diff(desired_dir(), actual_dir(given_baja), TARGET, TODAY)
    assert change.movement is Movement.BAJA
    assert change.desired.cn == "Mora, Ana (amora)"
    assert "cn" not in {a.name for a in change.attributes}
    assert not change.desired.enabled
