"""Systems with no API (kind: manual): each alta and baja of access to one is a work order for
its operator, kept signed in the desired-state repository (refs/reconciler/work-orders/), pending
in every plan until its confirmation, landed in desired_state/work_orders.yaml by an approved
pull request, is recorded on it by an apply.

No lab: such a system has nothing to reach; the engine, the ledger in Git and the CLI are the
real ones.  Tried as an attacker with push rights would: forged and planted refs, confirmations
and entitlements pushed without approval, an incremental plan of one colleague's change."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml
from conftest import person, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from test_carta import text_of

from reconciler.audit.seal import ApplyKey
from reconciler.desired.model import Source
from reconciler.desired.source import at_ref
from reconciler.plan import Movement
from reconciler.providers.manual import diff as manual
from reconciler.providers.manual.orders import REFS, Done, Ledger, Order, new_folio
from reconciler.run.engine import Run

UNIT = "HG-CUERNAVACA"
TARGET = "siempre"
PREFIX = "OT-SIEMPRE-"


@pytest.fixture
def bed(repo, tmp_path):
    """The repository with a `siempre` entitlement granting SIEMPRE (a system with no API), and
    an inventory whose only target is that system."""
    repo.entitlements["siempre"] = {"description": "Cuenta en SIEMPRE", "system": "siempre"}
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"delivery": {"mode": "clear-text-file-lab-only"}, "targets": {TARGET: {
        "kind": "manual", "system": "siempre", "name": "SIEMPRE — Expediente clínico electrónico",
        "operator": {"name": "Mesa de ayuda SIEMPRE", "contact": "soporte.siempre@ssm.gob.mx", "channel": "correo"},
        "sla_days": 5, "audit_dir": str(tmp_path / "audit"), "credentials_dir": str(tmp_path / "credentials")}}},
        allow_unicode=True), encoding="utf-8")
    return repo, inventory


def _apply(repo, inventory, **kwargs):
    with Run(at_ref(repo.root), inventory, lock=True, **kwargs) as run:
        plan = run.plan()
        return plan, run.apply(plan)


def _plan(repo, inventory, **kwargs):
    with Run(at_ref(repo.root), inventory, **kwargs) as run:
        return run.plan()


def _orders(repo) -> list[Order]:
    return Ledger(repo.git, ApplyKey.from_env()).orders(TARGET)[0]


def _one_alta_issued(repo, inventory) -> Order:
    """SSM-000001 declared with SIEMPRE, landed approved and applied: their alta order."""
    repo.add(UNIT, person("SSM-000001", entitlements=["siempre"]))
    repo.squash_merge()
    _apply(repo, inventory)
    [order] = _orders(repo)
    return order


def _confirm(repo, order: Order, **landing) -> None:
    repo.confirmations.append({"folio": order.folio, "confirmado": {"fecha": dt.date.today().isoformat(),
                                                                     "por": "Ana Ruiz", "ticket": "SIEMPRE-4411"}})
    (repo.direct_push if landing.get("unapproved") else repo.squash_merge)("Confirmación de la orden")


def test_an_alta_issues_a_signed_work_order_pending_until_its_approved_confirmation_is_recorded(bed):
    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001", entitlements=["internet", "siempre"]))
    repo.squash_merge("Alta con SIEMPRE")
    plan, report = _apply(repo, inventory)
    [change] = plan.changes
    assert (change.movement, change.kind, change.key) == (Movement.ALTA, "work-order", "SSM-000001")
    assert report.ok and [o.status for o in report.outcomes] == ["applied"] and report.outcomes[0].verified
    [order] = _orders(repo)
    assert order.folio.startswith(PREFIX) and order.movement == "alta" and order.person == "José Ñúñez O'Brien"
    document = Ledger(repo.git, ApplyKey.from_env()).document(TARGET, order.folio)
    assert "Mesa de ayuda SIEMPRE" in document and "José Ñúñez O'Brien" in document and order.folio in document
    # The same on paper, as poppler reads it: the folio, the person, the system, the operator.
    paper = repo.git.git.execute(["git", "show", f"{REFS}{TARGET}/{order.folio}:orden.pdf"], stdout_as_string=False)
    words = text_of(paper)
    for said in (order.folio, "José Ñúñez O'Brien", "SSM-000001", "SIEMPRE", "Mesa de ayuda SIEMPRE"):
        assert said in words, said
    # Issued is not done: the next plan asks for nothing new and shows the order pending.
    plan = _plan(repo, inventory)
    assert not plan.changes and any(order.folio in str(w) and "pending" in str(w) for w in plan.warnings)
    # The operator answers; the confirmation lands by pull request, and the next apply records it.
    _confirm(repo, order)
    plan, report = _apply(repo, inventory)
    [change] = plan.changes
    assert change.kind == "work-order-confirmation" and change.key == order.folio and change.approved and report.ok
    [order] = _orders(repo)
    assert order.done == Done(dt.date.today().isoformat(), "Ana Ruiz", "SIEMPRE-4411", repo.git.head.commit.hexsha)
    plan = _plan(repo, inventory)
    assert not plan.changes and not any(order.folio in str(w) for w in plan.warnings)


def test_a_confirmation_pushed_without_approval_is_not_recorded_and_the_order_stays_pending(bed):
    repo, inventory = bed
    order = _one_alta_issued(repo, inventory)
    _confirm(repo, order, unapproved=True)
    plan, report = _apply(repo, inventory)
    assert [s.change.key for s in report.skipped] == [order.folio] and _orders(repo)[0].done is None
    assert any(order.folio in str(w) and "pending" in str(w) for w in _plan(repo, inventory).warnings)


def test_a_baja_raises_a_baja_order_and_access_counts_as_kept_until_it_is_confirmed(bed):
    repo, inventory = bed
    alta = _one_alta_issued(repo, inventory)
    _confirm(repo, alta)
    repo.baja("SSM-000001")
    repo.squash_merge("Baja")
    plan, report = _apply(repo, inventory)
    assert sorted(c.kind for c in plan.changes) == ["work-order", "work-order-confirmation"]
    assert report.ok, (report.outcomes, report.skipped)
    baja = [o for o in _orders(repo) if o.movement == "baja"]
    assert len(baja) == 1 and baja[0].person == "José Ñúñez O'Brien" and baja[0].done is None
    assert any(baja[0].folio in str(w) for w in _plan(repo, inventory).warnings)


def test_access_granted_by_an_entitlement_pushed_without_approval_is_not_applied(bed):
    """The order rests on the person's entry, their unit and the entitlement that grants the
    system: an unapproved line in entitlements.yaml is not covered by the person's old approval."""
    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001", entitlements=["internet"]))
    repo.squash_merge()
    repo.entitlements["internet"]["system"] = "siempre"
    repo.direct_push("internet también da SIEMPRE")
    plan, report = _apply(repo, inventory)
    assert [c.key for c in plan.changes] == ["SSM-000001"] and not plan.changes[0].approved
    assert [s.change.key for s in report.skipped] == ["SSM-000001"] and _orders(repo) == []


def test_access_to_a_privileged_system_takes_the_privileged_number_of_approvals(bed):
    """SIEMPRE flagged privileged: one approver, enough for an ordinary alta, issues no order;
    the second approval lets it through.  A baja of that access takes the ordinary number."""
    from conftest import APPROVER_1

    repo, inventory = bed
    repo.entitlements["siempre"]["privileged"] = True
    repo.add(UNIT, person("SSM-000001"))
    repo.squash_merge("Entitlements y persona")
    _apply(repo, inventory)
    repo.find("SSM-000001")["entitlements"] = ["siempre"]
    repo.squash_merge("SIEMPRE para SSM-000001", approvers=(APPROVER_1,))
    plan, report = _apply(repo, inventory)
    [change] = plan.changes
    assert not change.approved and "privileged" in str(change.approval.reason) and _orders(repo) == []
    assert [s.change.key for s in report.skipped] == ["SSM-000001"]
    repo.find("SSM-000001")["title"] = "Médica Especialista"
    repo.squash_merge("Y otro puesto")  # two approvers this time
    plan, report = _apply(repo, inventory)
    assert [o.movement for o in _orders(repo)] == ["alta"] and report.ok
    _confirm(repo, _orders(repo)[0])
    repo.find("SSM-000001")["entitlements"] = []
    repo.squash_merge("Sin SIEMPRE", approvers=(APPROVER_1,))
    plan, report = _apply(repo, inventory)
    assert [o.movement for o in _orders(repo)] == ["alta", "baja"] and report.ok


def test_an_incremental_plan_of_one_colleague_raises_nothing_for_the_others(bed):
    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001", entitlements=["siempre"]),
             person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes", entitlements=["siempre"]))
    repo.squash_merge()
    _apply(repo, inventory)
    repo.find("SSM-000002")["phone"] = "777 000 0000"
    repo.squash_merge("Otro teléfono")
    plan = _plan(repo, inventory, since_applied=True)
    assert plan.changes == ()


def test_a_confirmation_for_an_unknown_folio_is_a_clear_error_naming_its_line(bed):
    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001"))
    repo.confirmations.append({"folio": "OT-SIEMPRE-ABCDEF", "confirmado": {"fecha": "2026-12-03", "por": "Ana",
                                                                             "ticket": "T-9"}})
    repo.squash_merge()
    plan = _plan(repo, inventory)
    [conflict] = plan.conflicts
    assert conflict.target == TARGET and "desired_state/work_orders.yaml:2" in str(conflict.message)
    assert "no work order OT-SIEMPRE-ABCDEF was issued on target siempre" in str(conflict.message)
    code, out, err = run_cli("--repo", str(repo.root), "--lang", "en", "pending", "--inventory", str(inventory))
    assert code == 1 and "OT-SIEMPRE-ABCDEF" in err  # the nightly job says it too


def test_an_order_not_signed_by_the_apply_key_is_not_counted(bed):
    """Anyone able to push refs could forge an open baja order to keep the real one from being
    issued: with an apply key configured, only the orders it signed count."""
    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001", entitlements=["siempre"]))
    repo.squash_merge()
    forged = Order("OT-SIEMPRE-000000", TARGET, "siempre", "alta", "SSM-000001", "José", UNIT,
                   "2026-12-01T10:00:00+00:00", "2026-12-06")
    Ledger(repo.git, key=None).issue(forged, {"orden.md": b"forjada"})
    plan = _plan(repo, inventory)
    assert [c.key for c in plan.changes] == ["SSM-000001"]  # still to issue: the forged one does not count
    assert any("is not signed by the apply key" in str(w) for w in plan.warnings)
    # Nor is its document shown as one: the service desk prints what the apply key signed.
    code, out, err = run_cli("--repo", str(repo.root), "--lang", "en", "pending", "--inventory", str(inventory),
                             "--show", forged.folio)
    assert code == 1 and "forjada" not in out and "no work order OT-SIEMPRE-000000 signed by the apply key" in err
    _apply(repo, inventory)
    [order] = _orders(repo)
    code, out, err = run_cli("--repo", str(repo.root), "pending", "--inventory", str(inventory), "--show", order.folio)
    assert code == 0 and out.startswith("# Work order " + order.folio)  # in the language the apply spoke


def test_a_ref_planted_at_the_folio_a_plan_would_use_does_not_block_the_order(bed):
    """Folios are predictable (the same plan, the same folio): a ref pushed there beforehand is
    taken, and the order gets the next folio instead of failing on every apply."""
    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001", entitlements=["siempre"]))
    repo.squash_merge()
    predicted = next(a.after for a in _plan(repo, inventory).changes[0].attributes if a.name == "work_order")
    Ledger(repo.git, key=None).issue(Order(predicted, TARGET, "siempre", "baja", "SSM-000001", "x", UNIT,
                                           "2026-12-01T10:00:00+00:00", "2026-12-06"), {})
    plan, report = _apply(repo, inventory)
    assert report.ok and [o.folio for o in _orders(repo)] != [predicted] and len(_orders(repo)) == 1


def test_pending_lists_open_orders_and_fails_once_one_is_past_its_sla(bed, monkeypatch):
    repo, inventory = bed
    order = _one_alta_issued(repo, inventory)
    code, out, err = run_cli("--repo", str(repo.root), "--lang", "en", "pending", "--inventory", str(inventory))
    assert code == 0 and "1 work order pending" in out and order.folio in out  # the folio is never cut
    code, out, err = run_cli("--repo", str(repo.root), "pending", "--inventory", str(inventory), "--output", "json")
    [row] = json.loads(out)["open"]
    assert code == 0 and row["folio"] == order.folio and row["overdue"] is False and row["sla_days"] == 5
    code, out, err = run_cli("--repo", str(repo.root), "pending", "--inventory", str(inventory), "--target", "siempr")
    assert code == 1 and "siempr" in err  # a mistyped target is an error, not "nothing pending"
    # After its due date, nobody has answered: the nightly job fails, and says why.
    later = (dt.date.fromisoformat(order.due) + dt.timedelta(days=1)).isoformat()
    monkeypatch.setattr("reconciler.run.engine.today_here", lambda: later)
    code, out, err = run_cli("--repo", str(repo.root), "--lang", "en", "pending", "--inventory", str(inventory))
    assert code == 2 and "OVERDUE" in out and "past its SLA" in out
    assert any(order.folio in str(w) and "OVERDUE" in str(w) for w in _plan(repo, inventory, today=later).warnings)
    _confirm(repo, order)
    _apply(repo, inventory)
    code, out, err = run_cli("--repo", str(repo.root), "--lang", "en", "pending", "--inventory", str(inventory))
    assert code == 0 and "No work order is pending." in out


# -- the diff, a pure function ---------------------------------------------------------------

def _order(key: str, movement: str, second: int, done: bool = False) -> Order:
    return Order(f"{PREFIX}{second:06X}", "t", "s", movement, key, key, "U", f"2026-01-01T00:{second // 60:02d}:"
                 f"{second % 60:02d}+00:00", "2026-01-06", done=Done("2026-01-02", "x", "t") if done else None)


keys = st.sampled_from(["A", "B", "C"])
histories = st.lists(st.tuples(keys, st.sampled_from(["alta", "baja"]), st.booleans()), max_size=12)


def _wanted(want_keys) -> dict:
    return {k: manual.Wanted(k, k, "U", "F-" + k, (Source("f", 1),)) for k in want_keys}


@settings(max_examples=300, deadline=None)
@given(histories, st.sets(keys), st.randoms(use_true_random=False))
def test_issuing_what_the_diff_asks_then_confirming_it_converges(history, want_keys, rng):
    """Whatever orders were issued and confirmed before, in whatever order the ledger lists
    them: the orders the diff asks for, once issued, leave nothing to issue; once confirmed,
    access is exactly who is wanted; nothing is asked twice; a folio is never reused."""
    orders = [_order(k, m, i, c) for i, (k, m, c) in enumerate(history)]
    listed = rng.sample(orders, len(orders))  # the ledger's order is not the issue order
    changes = manual.diff(_wanted(want_keys), listed, "t", PREFIX, set())
    assert len({c.key for c in changes}) == len(changes)
    issued = orders + [Order(next(a.after for a in c.attributes if a.name == "work_order"), "t", "s",
                             c.movement.value, c.key, c.key, "U", f"2026-02-01T00:00:{i:02d}+00:00", "2026-02-06")
                       for i, c in enumerate(changes)]
    assert len({o.folio for o in issued}) == len(issued)
    assert manual.diff(_wanted(want_keys), issued, "t", PREFIX, set()) == []
    done = [o if o.done else Order(**{**o.__dict__, "done": Done("2026-02-02", "x", "t")}) for o in issued]
    assert {k for k, h in manual.holders(done).items() if h.granted} == set(want_keys)
    assert manual.pending(done) == []


def test_an_order_confirmed_supersedes_the_ones_issued_before_it():
    alta, baja = _order("A", "alta", 1), _order("A", "baja", 2, done=True)
    assert manual.pending([alta, baja]) == [] and not manual.holders([baja, alta])["A"].granted
    later = _order("A", "alta", 3)
    assert manual.pending([alta, baja, later]) == [later]


def test_a_new_folio_never_repeats_one_taken_or_confirmed():
    first = new_folio(PREFIX, "A", "baja", "F", set())
    assert new_folio(PREFIX, "A", "baja", "F", {first}) != first
    assert manual.is_folio(first, PREFIX) and not manual.is_folio(first + "0", PREFIX)
    assert not manual.is_folio("OT-SIEMPRE-X-ABCDEF", PREFIX)  # another system's, whose key starts alike


def test_two_targets_cannot_serve_one_system(bed, tmp_path):
    """Their folios would look alike, and one confirmation would close both targets' orders."""
    from reconciler.config.inventory import load_inventory
    from reconciler.errors import ValidationFailed

    repo, inventory = bed
    data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    data["targets"]["siempre-2"] = {**data["targets"][TARGET], "system": "siempre"}
    data["targets"]["otro"] = {**data["targets"][TARGET], "system": "sie_mpre"}
    data["targets"]["otra"] = {**data["targets"][TARGET], "system": "sie-mpre"}  # the same folios as sie_mpre
    inventory.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValidationFailed) as failed:
        load_inventory(inventory)
    fields = sorted(p.field for p in failed.value.problems)
    assert fields == ["targets.otro.system", "targets.siempre-2.system"], fields  # the later of each pair (keys sorted)


def test_the_audit_record_of_an_order_names_its_ref_and_commit(bed):
    from reconciler.audit import trail
    from reconciler.config.inventory import load_inventory

    repo, inventory = bed
    order = _one_alta_issued(repo, inventory)
    audit_dir = load_inventory(inventory)[TARGET].audit_dir
    [record] = [r for r in trail.load_records([audit_dir]) if r.get("kind") == "change"]
    ref = f"{REFS}{TARGET}/{order.folio}"
    assert record["evidence"] == {"ref": ref, "commit": repo.git.git.rev_parse(ref)}


def test_an_order_ref_deleted_or_moved_fails_pending_naming_it(bed):
    repo, inventory = bed
    order = _one_alta_issued(repo, inventory)
    ref = f"{REFS}{TARGET}/{order.folio}"
    args = ("--lang", "en", "--repo", str(repo.root), "pending", "--inventory", str(inventory))
    assert run_cli(*args)[0] == 0
    stored = repo.git.git.rev_parse(ref)
    # A "confirmation" on top of it that the apply key did not sign: moved, not confirmed.
    child = repo.git.git.commit_tree(f"{stored}^{{tree}}", "-p", stored, "-m", "confirmado")
    repo.git.git.update_ref(ref, child)
    code, _out, err = run_cli(*args)
    assert code == 1 and f"{ref} was moved" in err
    loose = repo.root / "x.txt"
    loose.write_text("x\n", encoding="utf-8")
    blob = repo.git.git.hash_object("-w", str(loose))
    repo.git.git.update_ref(ref, blob)  # a ref to a blob: said, not a crash
    code, _out, err = run_cli(*args)
    assert code == 1 and f"{ref} was moved" in err and "Internal error" not in err
    repo.git.git.update_ref(ref, repo.git.head.commit.hexsha)  # pushed over by someone
    code, _out, err = run_cli(*args)
    assert code == 1 and f"{ref} was moved: apply stored {stored[:12]} there" in err
    repo.git.git.update_ref("-d", ref)
    code, _out, err = run_cli(*args)
    assert code == 1 and f"{ref} is gone: apply stored it" in err


def test_a_system_made_privileged_before_an_alta_is_applied_holds_that_alta(bed):
    """The alta landed with one approval while SIEMPRE was ordinary; SIEMPRE is flagged
    privileged (two approvals) before any apply: the alta now needs the privileged number."""
    from conftest import APPROVER_1

    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001", entitlements=["siempre"]))
    repo.squash_merge("SIEMPRE para SSM-000001", approvers=(APPROVER_1,))
    repo.entitlements["siempre"]["privileged"] = True
    repo.squash_merge("SIEMPRE es privilegiado", approvers=(APPROVER_1,))
    plan, report = _apply(repo, inventory)
    [change] = plan.changes
    assert not change.approved and "privileged" in str(change.approval.reason) and _orders(repo) == []
