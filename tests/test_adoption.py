"""Adoption in the AD diff (a pure function): a declared person whose account was made by hand
adopts it, never gets a second one; examples, and properties checked with hypothesis."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.plan import Movement
from reconciler.providers.ad.diff import ActualDirectory, diff
from reconciler.providers.ad.records import MARKER, Account, undo_ldif
from test_diff import GROUPS, KEYS, TARGET, TODAY, UNIT_OUS, account, actual_dir, as_actual, desired_dir, sams

LEGACY_OU = "OU=Hospital General,OU=Usuarios,OU=Legado,DC=x"


def hand_made(key: str | None, sam: str, **kw) -> Account:
    """An account someone made by hand: no marker, somewhere outside the managed OUs."""
    a = account(key or "", sam, **{"parent": LEGACY_OU, "groups": frozenset(), **kw})
    return replace(a, dn=a.target_dn, uac=512 if a.enabled else 514, marker=kw.get("marker"))


def with_adoptable(actual: ActualDirectory, *found: Account) -> ActualDirectory:
    return replace(actual, adoptable=tuple(found))


def test_a_hand_made_account_carrying_the_employee_key_is_adopted_with_every_difference_shown():
    want = account("E1", "jnunez", title="Médico General")
    legacy = hand_made("E1", "jnunez", title="medico", cn="Jose Nunez", marker="cuenta de Pepe")
    [change], conflicts = diff(desired_dir(want), with_adoptable(actual_dir(), legacy), TARGET, TODAY)
    assert conflicts == [] and change.movement is Movement.ADOPCION and change.actual is legacy
    shown = {a.name: (a.before, a.after) for a in change.attributes}
    assert shown["adminDescription"] == ("cuenta de Pepe", MARKER)  # what the marker overwrites is shown
    assert shown["title"] == ("medico", "Médico General")
    assert shown["ou"] == (LEGACY_OU, UNIT_OUS[0]) and shown["cn"] == ("Jose Nunez", want.cn)
    assert shown["groups"] == ((), ("GG-A",))
    assert "made by hand" in str(change.reason)


def test_adopt_names_an_account_without_employee_key():
    want = replace(account("E1", "jnunez"), adopt="Jose.Nunez")
    legacy = hand_made(None, "jose.nunez")
    [change], conflicts = diff(desired_dir(want), with_adoptable(actual_dir(), legacy), TARGET, TODAY)
    assert conflicts == [] and change.movement is Movement.ADOPCION
    assert ("employeeID", None, "E1") in {(a.name, a.before, a.after) for a in change.attributes}


def test_adopt_wins_over_another_account_carrying_the_key():
    want = replace(account("E1", "jnunez"), adopt="jose.nunez")
    chosen, other = hand_made("E1", "jose.nunez"), hand_made("E1", "jnunez.viejo")
    [change], conflicts = diff(desired_dir(want), with_adoptable(actual_dir(), other, chosen), TARGET, TODAY)
    assert change.actual is chosen and conflicts == []


def test_two_accounts_carrying_the_key_are_a_conflict_naming_both():
    want = account("E1", "jnunez")
    one, two = hand_made("E1", "jose.nunez"), hand_made("E1", "jnunez.viejo")
    changes, [conflict] = diff(desired_dir(want), with_adoptable(actual_dir(), one, two), TARGET, TODAY)
    assert [c for c in changes if c.kind == "account"] == []
    assert one.dn in conflict.message and two.dn in conflict.message and "adopt:" in conflict.message


def test_adopt_of_a_missing_account_or_of_someone_elses_is_a_conflict():
    missing = replace(account("E1", "jnunez"), adopt="nadie.aqui")
    changes, [conflict] = diff(desired_dir(missing), with_adoptable(actual_dir(), hand_made("E1", "x.y")),
                               TARGET, TODAY)
    assert "does not exist" in conflict.message and not [c for c in changes if c.kind == "account"]
    theirs = replace(account("E1", "jnunez"), adopt="ana.mora")
    changes, [conflict] = diff(desired_dir(theirs), with_adoptable(actual_dir(), hand_made("E9", "ana.mora")),
                               TARGET, TODAY)
    assert "E9" in conflict.message and not [c for c in changes if c.kind == "account"]


def test_built_in_and_privileged_accounts_are_never_adopted():
    want = replace(account("E1", "jnunez"), adopt="Administrator")
    admin = replace(hand_made(None, "Administrator"), protected=True)
    changes, [conflict] = diff(desired_dir(want), with_adoptable(actual_dir(), admin), TARGET, TODAY)
    assert "never adopts" in conflict.message and not [c for c in changes if c.kind == "account"]


def test_a_declared_baja_adopts_the_hand_made_account_into_the_bajas():
    want = account("E1", "jnunez", enabled=False, parent=TARGET.bajas_ou, groups=frozenset())
    legacy = hand_made("E1", "jose.nunez")
    [change], _ = diff(desired_dir(want), with_adoptable(actual_dir(), legacy), TARGET, TODAY)
    assert change.movement is Movement.ADOPCION
    assert ("enabled", True, False) in {(a.name, a.before, a.after) for a in change.attributes}


def test_a_managed_account_is_never_adopted_again():
    want = account("E1", "jnunez")
    legacy = hand_made("E1", "otra.cuenta")
    changes, _ = diff(desired_dir(want), with_adoptable(actual_dir(as_actual(want)), legacy), TARGET, TODAY)
    assert changes == []


def test_the_before_image_of_an_adoption_puts_the_old_description_back():
    want = account("E1", "jnunez")
    legacy = hand_made("E1", "jose.nunez", marker="cuenta de Pepe")
    text = undo_ldif(legacy, want, {}, TARGET.groups_ou)
    assert "replace: adminDescription\nadminDescription: cuenta de Pepe\n-" in text
    bare = undo_ldif(hand_made("E1", "jose.nunez"), want, {}, TARGET.groups_ou)
    assert "replace: adminDescription\n-" in bare  # it had none: the marker is removed


@st.composite
def worlds(draw):
    """Desired people; some hold managed accounts, some have hand-made ones (by key or named)."""
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, min_size=1, max_size=6))
    want, managed, legacy = {}, [], []
    for i, k in enumerate(keys):
        a = account(k, f"{draw(sams)}{i}", enabled=draw(st.booleans()))
        if not a.enabled:
            a = replace(a, parent=TARGET.bajas_ou, groups=frozenset())
        fate = draw(st.sampled_from(["new", "managed", "by-key", "named", "two"]))
        if fate == "managed":
            managed.append(as_actual(a))
        elif fate in ("by-key", "two"):
            legacy.append(hand_made(k, f"legacy.{k}", title=draw(st.sampled_from(["x", "Médico"])),
                                    groups=draw(st.frozensets(st.sampled_from(sorted(GROUPS))))))
            if fate == "two":
                legacy.append(hand_made(k, f"otra.{k}"))
        elif fate == "named":
            legacy.append(hand_made(None, f"a.mano.{k}"))
            a = replace(a, adopt=f"A.Mano.{k}")
        want[k] = a
    return desired_dir(*want.values()), with_adoptable(actual_dir(*managed), *legacy)


def simulate(actual: ActualDirectory, changes) -> ActualDirectory:
    """Apply the account changes as the provider does: the account, adopted or not, becomes the
    desired one, marked; an adopted account is no longer among the hand-made ones."""
    accounts, adopted = dict(actual.accounts), set()
    for c in changes:
        if c.kind == "account":
            accounts[c.key] = as_actual(c.desired)
            if c.movement is Movement.ADOPCION:
                adopted.add(c.actual.dn)
    return replace(actual, accounts=accounts, adoptable=tuple(a for a in actual.adoptable if a.dn not in adopted))


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_a_person_with_a_hand_made_account_is_adopted_never_given_a_second_one(world):
    desired, actual = world
    changes, conflicts = diff(desired, actual, TARGET, TODAY)
    blocked = {c.key for c in conflicts}
    for c in (c for c in changes if c.kind == "account"):
        carrying = [a for a in actual.adoptable if a.key == c.key or a.sam.casefold() == (c.desired.adopt or "").casefold()]
        if c.movement is Movement.ALTA:
            assert not carrying  # an alta only where nothing could be adopted
        if c.movement is Movement.ADOPCION:
            assert c.key not in actual.accounts and c.actual in carrying and c.key not in blocked
    after = simulate(actual, changes)
    again, _ = diff(desired, after, TARGET, TODAY)
    assert [c for c in again if c.kind == "account" and c.key not in blocked] == []


def test_staged_rollout_leaves_the_units_not_yet_managed_alone():
    """managed_units: the people of other units are neither created nor given baja, and an
    undeclared account in such a unit's OU is not called a baja either."""
    other_ou = UNIT_OUS[1]
    mine, theirs = account("E1", "jnunez"), account("E2", "amora", parent=other_ou)
    stray = as_actual(account("E3", "lpena", parent=other_ou))
    desired = replace(desired_dir(mine), out_of_scope=frozenset({"E2"}), unmanaged_ous=(other_ou,))
    moved_away = as_actual(replace(theirs, attributes={**theirs.attributes, "title": "editado"}))  # not touched
    changes, conflicts = diff(desired, actual_dir(moved_away, stray), TARGET, TODAY)
    assert [(c.movement, c.key) for c in changes if c.kind == "account"] == [(Movement.ALTA, "E1")]


def test_an_adoption_is_approved_by_the_declaring_files_approvers_never_by_a_unit_head_alone():
    from reconciler.approval.policy import Approver
    from reconciler.approval.review import scope_of
    from reconciler.desired.model import Source

    want = replace(account("E1", "jnunez"), adopt="ana.mora", unit="HG-CUERNAVACA",
                   origins=(Source("desired_state/users/hg-cuernavaca.yaml", 3),))
    [change], _ = diff(desired_dir(want), with_adoptable(actual_dir(), hand_made(None, "ana.mora")), TARGET, TODAY)
    scope = scope_of(change, {})
    head = Approver(None, units=("HG-CUERNAVACA",))
    it = Approver(None, paths=("desired_state/*",))
    assert not head.may_approve(scope.unit, scope.files) and it.may_approve(scope.unit, scope.files)


def test_adopt_with_nothing_to_adopt_is_a_conflict_never_an_alta():
    want = replace(account("E1", "jnunez"), adopt="erratum.typo")
    changes, [conflict] = diff(desired_dir(want), actual_dir(), TARGET, TODAY)
    assert "does not exist" in conflict.message and not [c for c in changes if c.kind == "account"]


def test_an_account_in_a_unit_not_yet_managed_is_not_adopted_and_an_out_of_scope_account_is_said():
    other_ou = UNIT_OUS[1]
    want = account("E1", "jnunez")
    theirs = hand_made("E1", "jose.nunez", parent=other_ou)
    kept = as_actual(account("E2", "amora", parent=other_ou))
    desired = replace(desired_dir(want), out_of_scope=frozenset({"E2"}), unmanaged_ous=(other_ou,))
    changes, conflicts = diff(desired, with_adoptable(actual_dir(kept), theirs), TARGET, TODAY)
    assert not [c for c in changes if c.kind == "account"]
    assert {c.key: "managed_units" in c.message for c in conflicts} == {"E1": True, "E2": True}


def test_an_adoption_whose_key_another_object_holds_is_a_conflict():
    from reconciler.providers.ad.diff import ForeignObject

    want = account("E1", "jnunez", cn="Jose Nunez")
    legacy = replace(hand_made(None, "jnunez", cn="Jose Nunez"))
    want = replace(want, adopt="jnunez", parent=LEGACY_OU)
    holder = ForeignObject("CN=Otro,CN=Users,DC=x", "otro.x", None, "E1")
    changes, [conflict] = diff(desired_dir(want), with_adoptable(actual_dir(foreign=[holder]), legacy), TARGET, TODAY)
    assert "E1" in conflict.message and not [c for c in changes if c.kind == "account"]


def test_one_account_adopted_by_two_declarations_is_refused_by_validation(repo):
    from conftest import person
    from reconciler.desired.load import load_desired_state
    from reconciler.errors import ValidationFailed

    repo.add("HG-CUERNAVACA", person("SSM-000001", adopt="jose.nunez"),
             person("SSM-000002", given_names="Ana", curp=None, adopt="JOSE.NUNEZ"))
    repo.write()
    try:
        load_desired_state(repo.root / "desired_state")
    except ValidationFailed as failed:
        [problem] = failed.problems
        assert problem.field == "people[1].adopt" and "also adopted" in problem.message
    else:
        raise AssertionError("two declarations adopting one account were accepted")


def test_a_second_object_carrying_the_key_is_seen_even_when_the_adopted_one_is_listed_too():
    from reconciler.providers.ad.diff import ForeignObject

    want = replace(account("E1", "jnunez"), adopt="jnunez.viejo")
    legacy = hand_made("E1", "jnunez.viejo")
    itself = ForeignObject(legacy.dn, legacy.sam, None, "E1")
    other = ForeignObject("CN=Otro,CN=Users,DC=x", "otro.x", None, "E1")
    for foreign in ([itself, other], [other, itself]):  # whichever order the directory answers in
        changes, [conflict] = diff(desired_dir(want), with_adoptable(actual_dir(foreign=foreign), legacy), TARGET, TODAY)
        assert "CN=Otro" in conflict.message and not [c for c in changes if c.kind == "account"]


def test_adopting_a_disabled_account_as_active_makes_it_change_its_password():
    want = account("E1", "jnunez")
    legacy = hand_made("E1", "jose.nunez", enabled=False)
    [change], _ = diff(desired_dir(want), with_adoptable(actual_dir(), legacy), TARGET, TODAY)
    shown = {(str(a.name), a.before, a.after) for a in change.attributes}
    assert ("enabled", False, True) in shown and ("change at next logon", None, True) in shown


def test_a_mailbox_adopted_for_a_new_account_is_told_to_the_approvers():
    """The mail target adopts the hand-made mailbox at a person's address; the AD target creates
    their account.  Only the plan as a whole shows both: the stored mail may be a former holder's."""
    from reconciler.plan import Change
    from reconciler.run.crosscheck import adopted_for_new_accounts

    account_alta = Change(Movement.ALTA, "ad", "account", "SSM-1", "jnunez (José Núñez)")
    mailbox = Change(Movement.ADOPCION, "mail", "mailbox", "SSM-1", "jose.nunez@salud.lab (José Núñez)")
    adopted_account = Change(Movement.ADOPCION, "ad", "account", "SSM-2", "amora (Ana Mora)")
    her_mailbox = Change(Movement.ADOPCION, "mail", "mailbox", "SSM-2", "ana.mora@salud.lab (Ana Mora)")
    [warning] = adopted_for_new_accounts([account_alta, mailbox, adopted_account, her_mailbox])
    assert "jose.nunez@salud.lab" in warning and "someone else's" in warning and "ad" in warning


def test_a_computer_whose_holder_is_not_managed_here_keeps_its_managed_by():
    """Staged rollout: the computer's unit is managed, its holder's is not, so the holder's
    account is not the target's to know.  A change of the computer never clears managedBy."""
    from ldap3 import MODIFY_REPLACE

    from reconciler.plan import Change
    from reconciler.providers.ad.computers import Computer, apply_computer

    parent = UNIT_OUS[0]
    holder_dn = "CN=Ana Mora,OU=Otra,DC=salud,DC=lab"
    have = Computer("INV-1", "HGC-PC01", parent, "viejo", "Urgencias", "E9", True, dn=f"CN=HGC-PC01,{parent}",
                    uac=0x1000, managed_by=holder_dn)
    want = Computer("INV-1", "HGC-PC01", parent, "nuevo", "Urgencias", "E9", True)
    calls = []
    apply_computer(lambda what, op, *args, **kw: calls.append((op, args)),
                   Change(Movement.MODIFICACION, "ad", "computer", "INV-1", "HGC-PC01", desired=want, actual=have), {})
    [(op, (dn, mods))] = calls
    assert op == "modify" and mods["managedBy"] == [(MODIFY_REPLACE, [holder_dn])]
    # Handed to another person of such a unit, the old holder's DN is not kept: managedBy is cleared.
    calls.clear()
    apply_computer(lambda what, op, *args, **kw: calls.append((op, args)),
                   Change(Movement.MODIFICACION, "ad", "computer", "INV-1", "HGC-PC01",
                          desired=replace(want, holder="E8"), actual=have), {})
    assert calls[0][1][1]["managedBy"] == [(MODIFY_REPLACE, [])]
