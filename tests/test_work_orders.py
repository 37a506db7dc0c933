"""Systems with no API (kind: manual): each alta and baja of access to one is a work order for
its operator, kept signed in the desired-state repository (refs/reconciler/work-orders/), pending
in every plan until its confirmation lands in desired_state/work_orders.yaml by pull request.

No lab: such a system has nothing to reach; the engine, the ledger in Git and the CLI are the
real ones."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml
from conftest import person, run_cli
from test_carta import text_of
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.desired.model import Confirmation, Source
from reconciler.desired.source import at_ref
from reconciler.plan import Movement
from reconciler.providers.manual import diff as manual
from reconciler.providers.manual.orders import REFS, Ledger, Order
from reconciler.run.engine import Run

UNIT = "HG-CUERNAVACA"
TARGET = "siempre"


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


def _apply(repo, inventory):
    with Run(at_ref(repo.root), inventory, lock=True) as run:
        plan = run.plan()
        return plan, run.apply(plan)


def _plan(repo, inventory):
    with Run(at_ref(repo.root), inventory) as run:
        return run.plan()


def _orders(repo) -> list[Order]:
    from reconciler.audit.seal import ApplyKey

    return Ledger(repo.git, ApplyKey.from_env()).orders(TARGET)[0]


def test_an_alta_issues_a_signed_work_order_pending_until_its_confirmation_lands(bed):
    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001", entitlements=["internet", "siempre"]))
    repo.squash_merge("Alta con SIEMPRE")
    plan, report = _apply(repo, inventory)
    [change] = plan.changes
    assert (change.movement, change.kind, change.key) == (Movement.ALTA, "work-order", "SSM-000001")
    assert report.ok and [o.status for o in report.outcomes] == ["applied"] and report.outcomes[0].verified
    [order] = _orders(repo)
    assert order.folio.startswith("OT-SIEMPRE-") and order.movement == "alta" and order.person == "José Ñúñez O'Brien"
    document = Ledger(repo.git).document(TARGET, order.folio)
    assert "Mesa de ayuda SIEMPRE" in document and "José Ñúñez O'Brien" in document and order.folio in document
    # The same on paper, as poppler reads it: the folio, the person, the system, the operator.
    paper = repo.git.git.execute(["git", "show", f"{REFS}{TARGET}/{order.folio}:orden.pdf"], stdout_as_string=False)
    words = text_of(paper)
    for said in (order.folio, "José Ñúñez O'Brien", "SSM-000001", "SIEMPRE", "Mesa de ayuda SIEMPRE"):
        assert said in words, said
    # Issued is not done: the next plan asks for nothing new and shows the order pending.
    plan = _plan(repo, inventory)
    assert not plan.changes and any(order.folio in str(w) and "pending" in str(w) for w in plan.warnings)
    # The operator answers; the confirmation lands by pull request: nothing pending any more.
    repo.confirmations.append({"folio": order.folio, "confirmado": {"fecha": "2026-12-03", "por": "Ana Ruiz",
                                                                     "ticket": "SIEMPRE-4411"}})
    repo.squash_merge("Confirmación de la orden")
    plan = _plan(repo, inventory)
    assert not plan.changes and not any(order.folio in str(w) for w in plan.warnings)


def test_a_baja_raises_a_baja_order_and_access_counts_as_kept_until_it_is_confirmed(bed):
    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001", entitlements=["siempre"]))
    repo.squash_merge()
    _apply(repo, inventory)
    [alta] = _orders(repo)
    repo.confirmations.append({"folio": alta.folio, "confirmado": {"fecha": "2026-12-03", "por": "Ana Ruiz",
                                                                    "ticket": "T-1"}})
    repo.baja("SSM-000001")
    repo.squash_merge("Baja")
    plan, report = _apply(repo, inventory)
    [change] = plan.changes
    assert change.movement is Movement.BAJA and report.ok, (report.outcomes, report.skipped)
    baja = [o for o in _orders(repo) if o.movement == "baja"]
    assert len(baja) == 1 and baja[0].person == "José Ñúñez O'Brien"
    assert any(baja[0].folio in str(w) for w in _plan(repo, inventory).warnings)


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


def test_an_order_not_signed_by_the_apply_key_is_not_counted(bed, tmp_path):
    """Anyone able to push refs could forge an open baja order to keep the real one from being
    issued: with an apply key configured, only the orders it signed count."""
    from reconciler.providers.manual.orders import Ledger as Unsigned

    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001", entitlements=["siempre"]))
    repo.squash_merge()
    forged = Order("OT-SIEMPRE-000000", TARGET, "siempre", "alta", "SSM-000001", "José", UNIT,
                   "2026-12-01T10:00:00+00:00", "2026-12-06")
    Unsigned(repo.git, key=None).issue(forged, {"orden.md": b"forjada"})
    plan = _plan(repo, inventory)
    assert [c.key for c in plan.changes] == ["SSM-000001"]  # still to issue: the forged one does not count
    assert any("is not signed by the apply key" in str(w) for w in plan.warnings)


# -- the diff, a pure function ---------------------------------------------------------------

def _order(key: str, movement: str, n: int) -> Order:
    return Order(f"OT-S-{n:06X}", "t", "s", movement, key, key, "U", f"2026-01-01T00:00:{n:02d}+00:00", "2026-01-06")


keys = st.sampled_from(["A", "B", "C"])
histories = st.lists(st.tuples(keys, st.sampled_from(["alta", "baja"]), st.booleans()), max_size=12)


@settings(max_examples=200, deadline=None)
@given(histories, st.sets(keys))
def test_issuing_what_the_diff_asks_and_confirming_it_converges(history, want_keys):
    """Whatever orders were issued and confirmed before: the orders the diff asks for, once
    issued, leave nothing to issue; once confirmed, access is exactly who is wanted."""
    orders = [_order(k, m, i) for i, (k, m, _c) in enumerate(history)]
    confirmed = {o.folio: Confirmation(o.folio, "2026-01-02", "x", "t", Source("f", 1))
                 for o, (_k, _m, c) in zip(orders, history) if c}
    want = {k: manual.Wanted(k, k, "U", "F-" + k, Source("f", 1)) for k in want_keys}
    changes = manual.diff(want, orders, confirmed, "t", "OT-S-")
    assert len({c.key for c in changes}) == len(changes)  # one order per person at most
    issued = orders + [Order(next(a.after for a in c.attributes if a.name == "work_order"), "t", "s",
                             c.movement.value, c.key, c.key, "U", f"2026-02-01T00:00:{i:02d}+00:00", "2026-02-06")
                       for i, c in enumerate(changes)]
    assert len({o.folio for o in issued}) == len(issued)  # a new folio never repeats an old one
    assert manual.diff(want, issued, confirmed, "t", "OT-S-") == []
    everything = {**confirmed, **{o.folio: Confirmation(o.folio, "2026-02-02", "x", "t", Source("f", 1))
                                  for o in issued}}
    assert {k for k, h in manual.holders(issued, everything).items() if h.granted} == set(want_keys)
    assert manual.diff(want, orders, confirmed, "t", "OT-S-") == changes  # deterministic


def test_pending_lists_open_orders_and_fails_once_one_is_past_its_sla(bed, monkeypatch):
    repo, inventory = bed
    repo.add(UNIT, person("SSM-000001", entitlements=["siempre"]))
    repo.squash_merge()
    _apply(repo, inventory)
    [order] = _orders(repo)
    code, out, err = run_cli("--repo", str(repo.root), "--lang", "en", "pending", "--inventory", str(inventory))
    assert code == 0 and "1 work order pending" in out
    code, out, err = run_cli("--repo", str(repo.root), "pending", "--inventory", str(inventory), "--output", "json")
    [row] = json.loads(out)["open"]
    assert code == 0 and row["folio"] == order.folio and row["overdue"] is False and row["sla_days"] == 5
    # Six days later, nobody has answered: the nightly job fails, and says why.
    later = (dt.date.fromisoformat(order.due) + dt.timedelta(days=1)).isoformat()
    monkeypatch.setattr("reconciler.run.engine.today_here", lambda: later)
    code, out, err = run_cli("--repo", str(repo.root), "--lang", "en", "pending", "--inventory", str(inventory))
    assert code == 1 and "OVERDUE" in out and "past its SLA" in out
    with Run(at_ref(repo.root), inventory, today=later) as run:  # the plan says it too
        assert any(order.folio in str(w) and "OVERDUE" in str(w) for w in run.plan().warnings)
    repo.confirmations.append({"folio": order.folio, "confirmado": {"fecha": "2026-12-03", "por": "Ana Ruiz",
                                                                     "ticket": "SIEMPRE-4411"}})
    repo.squash_merge("Confirmación")
    code, out, err = run_cli("--repo", str(repo.root), "--lang", "en", "pending", "--inventory", str(inventory))
    assert code == 0 and "No work order is pending." in out
