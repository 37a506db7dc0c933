"""The mailbox diff is a pure function: examples of each movement, and properties checked with
hypothesis (the registry line format round-trips; applying a plan to the registry leaves
nothing more to do)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.desired.model import Request
from reconciler.config.inventory import SecretSource
from reconciler.providers.mail.target import MailTarget
from reconciler.plan import Movement
from reconciler.plan import Outcome
from reconciler.providers.mail.apply import MailApplier
from reconciler.providers.mail.diff import diff
from reconciler.providers.mail.records import PERSON, SHARED_KIND, Mailbox, actual_mail, shared_key
from reconciler.providers.mail import registry
from reconciler.providers.mail.registry import SHARED, Entry, Registry, maps, parse_line

TARGET = MailTarget(name="mail", domains=("salud.lab",), doveadm_url="http://127.0.0.1:1/", doveadm_key=SecretSource(env="X"),
                    registry="/nonexistent/users", recipients="/nonexistent/r", aliases="/nonexistent/a",
                    denied="/nonexistent/d", mail_root="/nonexistent/vmail", default_quota="1G", retention_days=365)
TODAY = "2026-11-22"


def box(key="SSM-1", address="ana@salud.lab", quota="1G", aliases=(), is_open=True, **kw) -> Mailbox:
    return Mailbox(key, PERSON, address, quota, tuple(sorted(aliases)), is_open, label=address, **kw)


def entry(address="ana@salud.lab", owner="SSM-1", quota="1G", **kw) -> Entry:
    return Entry(address, f"/nonexistent/vmail/{address}", quota, owner is not None, owner, **kw)


def actual(*entries: Entry, members=None, synced_maps=True):
    files = maps(list(entries), TARGET.new_mail_after_baja) if synced_maps else {}
    return actual_mail(list(entries), members or {}, files, TARGET.domains)


def plan(desired: list[Mailbox], *entries: Entry, **kw):
    return diff({b.key: b for b in desired}, actual(*entries, **kw), TARGET, TODAY)


def test_a_declared_mailbox_without_an_entry_is_an_alta():
    [c], conflicts = plan([box()])
    assert c.movement is Movement.ALTA and not conflicts
    assert [(a.name, a.after) for a in c.attributes] == [("address", "ana@salud.lab"), ("quota", "1G"),
                                                          ("status", "open")]


def test_nothing_to_do_when_the_registry_matches():
    assert plan([box(aliases=("a@salud.lab",))], entry(aliases=("a@salud.lab",))) == ([], [])


def test_quota_and_aliases_are_modificaciones():
    [c], _ = plan([box(quota="2G", aliases=("b@salud.lab",))], entry(aliases=("a@salud.lab",)))
    assert c.movement is Movement.MODIFICACION
    assert {a.name: (a.before, a.after) for a in c.attributes} == {
        "quota": ("1G", "2G"), "aliases": (("a@salud.lab",), ("b@salud.lab",))}


def test_a_person_given_baja_closes_the_mailbox_and_a_closed_one_stays_closed():
    [c], _ = plan([box(is_open=False)], entry())
    assert c.movement is Movement.BAJA
    assert plan([box(is_open=False)], entry(closed="2026-01-01")) == ([], [])


def test_an_undeclared_managed_mailbox_is_closed_and_a_hand_made_one_left_alone():
    [c], _ = plan([], entry(), entry("mano@salud.lab", owner=None))
    assert c.movement is Movement.BAJA and c.key == "SSM-1" and c.reason == "no longer declared in desired_state"


def test_a_hand_made_entry_at_the_declared_address_is_adopted():
    [c], _ = plan([box()], entry(owner=None, quota="5M"))
    assert c.movement is Movement.ADOPCION and c.reason.startswith("adopted")
    assert {a.name: a.after for a in c.attributes} == {"quota": "1G", "owner": "SSM-1"}


def test_an_address_held_by_another_persons_mailbox_is_a_conflict():
    changes, [conflict] = plan([box("SSM-2", aliases=("ana@salud.lab",), address="bea@salud.lab")], entry())
    assert "already belongs to the mailbox of employee SSM-1" in conflict.message
    assert [c.key for c in changes] == ["SSM-1"]  # SSM-1 itself is undeclared: closed


def test_an_address_change_keeps_the_old_address():
    [c], _ = plan([box(address="ana.lopez@salud.lab")], entry())
    assert {a.name: a.after for a in c.attributes} == {"address": "ana.lopez@salud.lab",
                                                        "former addresses": ("ana@salud.lab",)}
    # and once applied, the former address stays without being declared
    assert plan([box(address="ana.lopez@salud.lab")], entry("ana.lopez@salud.lab", former=("ana@salud.lab",))) == ([], [])


def test_a_purge_waits_for_the_retention_period():
    purge = Request("SSM/STI/2027/1", "2027-01-01")
    _, [conflict] = plan([box(is_open=False, purge=purge)], entry(closed="2026-06-01"))
    assert "2027-06-01" in conflict.message
    [c], _ = plan([box(is_open=False, purge=purge)], entry(closed="2025-06-01"))
    assert c.movement is Movement.BAJA and c.reason.startswith("purge")


def test_shared_mailbox_members_are_compared_by_address():
    shared = Mailbox(shared_key("rec@salud.lab"), SHARED_KIND, "rec@salud.lab", "1G", (), True, ("bea@salud.lab",))
    have = Entry("rec@salud.lab", "/x", "1G", True, SHARED)
    [c], _ = plan([shared], have, members={shared.key: ("ana@salud.lab",)})
    [members] = [a for a in c.attributes if a.name == "members"]
    assert members.removed() == ("ana@salud.lab",) and members.added() == ("bea@salud.lab",)


def test_an_incremental_plan_looks_only_at_the_given_keys():
    desired = {b.key: b for b in [box("SSM-1", quota="2G"), box("SSM-2", "bea@salud.lab", quota="2G")]}
    changes, _ = diff(desired, actual(entry(), entry("bea@salud.lab", "SSM-2")), TARGET, TODAY, keys={"SSM-2"})
    assert [c.key for c in changes] == ["SSM-2"]


def test_maps_edited_by_hand_are_drift():
    changed = actual(entry())
    changed.maps["recipients"] += "intruso@salud.lab OK\n"
    changes, _ = diff({"SSM-1": box()}, changed, TARGET, TODAY)
    [c] = changes
    assert c.kind == "mail-maps" and c.drift and [a.name for a in c.attributes] == ["recipients"]


def test_other_domains_in_a_shared_registry_are_not_touched():
    assert plan([], entry("x@otro.gob.mx")) == ([], [])


# -- properties ------------------------------------------------------------------------

LOCALS = st.sampled_from(["ana", "bea", "ceci", "dani", "eli", "fer", "gus", "hugo"])
ADDRESSES = st.builds(lambda local: f"{local}@salud.lab", LOCALS)
QUOTAS = st.sampled_from(["50M", "1G", "2G"])
KEYS = st.sampled_from([f"SSM-{i}" for i in range(1, 7)])

entries = st.builds(  # a hand-made entry (no owner) carries no reconciler metadata
    lambda address, owner, quota, aliases, closed: Entry(
        address, f"/nonexistent/vmail/{address}", quota, owner is not None, owner,
        aliases=tuple(sorted(set(aliases) - {address})) if owner else (), closed=closed if owner else None),
    ADDRESSES, st.none() | KEYS, QUOTAS, st.lists(ADDRESSES, max_size=2),
    st.none() | st.sampled_from(["2020-01-01", "2026-11-01"]))
desired_boxes = st.builds(
    lambda key, address, quota, aliases, is_open: box(key, address, quota, tuple(sorted(set(aliases) - {address})),
                                                      is_open),
    KEYS, ADDRESSES, QUOTAS, st.lists(ADDRESSES, max_size=2), st.booleans())


def _unique(items, key, addresses=lambda item: ()):
    """Drop items whose key, or any address they answer to, an earlier item has: validation
    guarantees it for declarations, and the reconciler keeps it for the registry."""
    seen, taken, out = set(), set(), []
    for item in items:
        mine = set(addresses(item))
        if key(item) not in seen and not mine & taken:
            seen.add(key(item))
            taken |= mine
            out.append(item)
    return out


@given(entries)
def test_a_registry_line_reads_back_as_written(e):
    assert parse_line(e.line()) == e


@settings(max_examples=300, deadline=None)
@given(st.lists(desired_boxes, max_size=6), st.lists(entries, max_size=6))
def test_applying_a_plan_leaves_nothing_to_do(wanted, existing):
    wanted = _unique(wanted, lambda b: b.key, lambda b: (b.address, *b.aliases))
    existing = _unique(existing, lambda e: e.owner or e.address, lambda e: (e.address, *e.aliases))
    desired = {b.key: b for b in wanted}
    before = actual(*existing)
    changes, conflicts = diff(desired, before, TARGET, TODAY)
    registry = Registry(list(existing))
    applier = MailApplier(TARGET, api=None, today=TODAY)
    for c in changes:
        applier._stage(Outcome(c), registry)
    after = actual(*registry.entries())
    again, conflicts_again = diff(desired, after, TARGET, TODAY)
    stuck = {c.key for c in conflicts}
    assert [c for c in again if c.key not in stuck] == []
    # a mailbox is never registered twice, and no address answers for two mailboxes
    addresses = [a for e in registry.entries() for a in (e.address, *e.aliases, *e.former)]
    owners = [e.owner for e in registry.entries() if e.managed]
    assert len(owners) == len(set(owners))
    assert len([e.address for e in registry.entries()]) == len({e.address for e in registry.entries()})
    assert set(addresses) >= {e.address for e in registry.entries()}


def test_the_new_mail_policy_decides_whether_a_closed_address_still_receives():
    closed = entry(aliases=("a@salud.lab",), closed="2026-11-01")
    bounce = maps([closed], "bounce")
    keep = maps([closed], "keep")
    assert "ana@salud.lab OK" not in bounce["recipients"] and "a@salud.lab" not in bounce["aliases"]
    assert "ana@salud.lab OK\n" in keep["recipients"] and "a@salud.lab ana@salud.lab\n" in keep["aliases"]
    assert bounce["denied"].endswith("ana@salud.lab\n") and keep["denied"].endswith("ana@salud.lab\n")


def test_a_hand_edited_baja_date_stops_a_purge_with_a_message():
    purge = Request("SSM/STI/2027/1", "2027-01-01")
    _, [conflict] = plan([box(is_open=False, purge=purge)], entry(closed="ayer"))
    assert "is not a date" in conflict.message


def test_adopting_the_mailbox_of_a_baja_is_an_adoption_that_closes_it_and_goes_first():
    """Taking over a hand-made mailbox is an adopción whatever the person's status (approved by
    the reconciler's own approvers, not by a unit head alone), and closing it removes access:
    applied first, kicked, and even while another target is out of reach."""
    from reconciler.approval.review import scope_of
    from reconciler.providers.mail.apply import kicked
    from reconciler.providers.mail.provider import revokes

    [c], _ = plan([box(is_open=False, unit="HG")], entry(owner=None))
    assert c.movement is Movement.ADOPCION and c.reason.startswith("adopted")
    assert {a.name: a.after for a in c.attributes}["status"] == "closed"
    assert revokes(c) and kicked(c) == "ana@salud.lab" and scope_of(c, {}).unit is None


def test_staged_rollout_looks_only_at_the_managed_units_mailboxes():
    """managed_units: a mailbox of another unit is neither created, adopted, changed nor closed;
    a managed one whose owner is now declared there is said, not silently skipped; and the maps,
    derived from the whole registry, keep delivering to every unit."""
    from dataclasses import replace

    staged = replace(TARGET, managed_units=frozenset({"HG"}))
    desired = [box("SSM-1", "ana@salud.lab", unit="HG"), box("SSM-2", "beto@salud.lab", unit="OTRA"),
               box("SSM-3", "caro@salud.lab", unit="OTRA", quota="2G"), box("SSM-4", "dani@salud.lab", unit="OTRA")]
    registry = [entry("caro@salud.lab", "SSM-3", unit="OTRA"), entry("eva@salud.lab", "SSM-5", unit="OTRA"),
                entry("dani@salud.lab", owner=None)]
    changes, conflicts = diff({b.key: b for b in desired}, actual(*registry), staged, TODAY)
    assert [(c.movement, c.key) for c in changes] == [(Movement.ALTA, "SSM-1")]
    assert [c.key for c in conflicts] == ["SSM-3"] and "managed_units" in conflicts[0].message
    # Every unit managed: the same registry gives the other units' changes too.
    everything, _ = diff({b.key: b for b in desired}, actual(*registry), TARGET, TODAY)
    assert {(c.movement, c.key) for c in everything} == {
        (Movement.ALTA, "SSM-1"), (Movement.ALTA, "SSM-2"), (Movement.MODIFICACION, "SSM-3"),
        (Movement.ADOPCION, "SSM-4"), (Movement.BAJA, "SSM-5")}


def test_managed_units_must_name_declared_units():
    from dataclasses import replace

    import pytest

    from reconciler.errors import ReconcilerError

    with pytest.raises(ReconcilerError, match="managed_units names HG-TYPO"):
        replace(TARGET, managed_units=frozenset({"HG", "HG-TYPO"})).check_managed_units(["HG", "OTRA"])


def test_staged_rollout_judges_a_mailbox_by_its_current_unit_and_never_skips_an_orphans_baja():
    """The registry records each mailbox's unit and a move updates it, so a later baja is judged
    by the unit the person was last in; a mailbox whose recorded unit units.yaml no longer
    declares belongs to no other unit, and its baja goes ahead."""
    from dataclasses import replace

    staged = replace(TARGET, managed_units=frozenset({"NEW"}))
    manages = staged.scope({"NEW", "OLD"})  # as the provider judges it
    [move], _ = diff({"SSM-1": box(unit="NEW")}, actual(entry(unit="OLD")), staged, TODAY, manages=manages)
    assert move.movement is Movement.MODIFICACION and ("unit", "OLD", "NEW") in [
        (a.name, a.before, a.after) for a in move.attributes]
    [gone], _ = diff({}, actual(entry(unit="RENAMED")), staged, TODAY, manages=manages)
    assert gone.movement is Movement.BAJA
    assert diff({}, actual(entry(unit="OLD")), staged, TODAY, manages=manages) == ([], [])  # another unit's


def _put_by_scanning(lines: list, entry, was=None) -> None:
    """The registry's put as it was (a scan of every line): the reference of the indexed one."""
    look = (was or entry.address).lower()
    for i, line in enumerate(lines):
        if isinstance(line, registry.Entry) and line.address == look:
            lines[i] = entry
            return
    lines.append(entry)


ADDRESSES = st.sampled_from(["ana@salud.lab", "jose@salud.lab", "ines@salud.lab", "pena@salud.lab"])


@given(st.lists(st.tuples(st.sampled_from(["put", "rename", "remove"]), ADDRESSES, ADDRESSES), max_size=30))
def test_the_indexed_put_is_the_scanning_one(steps):
    text = "# registro\nana@salud.lab::::reconciler owner=SSM-000001:/vmail/ana::\nana@salud.lab::::::\n"
    fast, slow = registry.Registry.parse(text), registry.Registry.parse(text).lines
    for op, address, other in steps:
        entry = registry.Entry(address, f"/vmail/{address}")
        if op == "put":
            fast.put(entry)
            _put_by_scanning(slow, entry)
        elif op == "rename":
            fast.put(entry, was=other)
            _put_by_scanning(slow, entry, was=other)
        else:
            fast.remove(address)
            slow[:] = [x for x in slow if not (isinstance(x, registry.Entry) and x.address == address)]
        assert fast.lines == slow
