"""The inventory is reviewed desired state (issue 12): a run uses the newest approved version of
the inventory file, and weakening a setting takes the privileged number of approvals."""
from __future__ import annotations

import json

import yaml
from conftest import APPROVER_1, APPROVER_2, run_cli
from fakes import UNIT, Fakes

from reconciler.approval.inventory_review import weakened
from reconciler.providers.fake.provider import FakeObject, write_state


def edit(inventory, target: str, **settings) -> None:
    data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    data["targets"][target].update(settings)
    inventory.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def plan(fakes: Fakes, inventory) -> tuple[int, dict, str]:
    code, out, err = run_cli("--repo", str(fakes.repo.root), "plan", "--inventory", str(inventory), "--output", "json")
    return code, (json.loads(out) if out.strip() else {}), err


def test_an_inventory_edit_pushed_straight_to_main_is_not_used(fakes: Fakes):
    inventory = fakes.inventory_in_repo()
    elsewhere = fakes.tmp / "elsewhere.json"
    write_state(elsewhere, {"SSM-000001": FakeObject("José Ñúñez O'Brien", UNIT)})
    edit(inventory, "a-first", state_file=str(elsewhere), audit_dir=str(fakes.tmp / "otro"))
    fakes.repo.direct_push("Apunto a-first a otro lado")
    code, data, err = plan(fakes, inventory)
    assert code == 2, err
    # The approved inventory still points at the real state: SSM-000001 is still an alta there.
    assert ("a-first", "alta", "SSM-000001") in {(c["target"], c["movement"], c["key"]) for c in data["changes"]}
    [note] = [w for w in data["warnings"] if "inventory/fakes.yaml changed without the approvals" in w]
    assert "a-first.audit_dir" in note and "a-first.state_file" in note and "this run uses the version approved" in note


def test_weakening_a_setting_needs_the_privileged_number_of_approvals(fakes: Fakes):
    inventory = fakes.inventory_in_repo()
    edit(inventory, "b-second", max_bajas=500)
    fakes.repo.squash_merge("Más bajas por corrida", approvers=(APPROVER_1,))
    code, data, err = plan(fakes, inventory)
    assert any("changed without the approvals it needs (b-second.max_bajas" in w for w in data["warnings"])
    # Back to what is in force (a revert needs nobody), then the raise approved by two is in
    # force; lowering it needs one.
    data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    del data["targets"]["b-second"]["max_bajas"]
    inventory.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    fakes.repo.direct_push("Se revierte")
    edit(inventory, "b-second", max_bajas=500)
    fakes.repo.squash_merge("Más bajas, revisado", approvers=(APPROVER_1, APPROVER_2))
    edit(inventory, "b-second", max_bajas=400)
    fakes.repo.squash_merge("Menos bajas", approvers=(APPROVER_2,))
    code, data, err = plan(fakes, inventory)
    assert not any("inventory/fakes.yaml" in w for w in data["warnings"]), data["warnings"]


def test_what_counts_as_weakening():
    old = "targets:\n  ad:\n    host: dc1\n    tls: {validate: true}\n    max_bajas: 25\n    description: A\n"
    assert weakened(old, old.replace("validate: true", "validate: false")) == ["ad.tls.validate: True → False"]
    assert weakened(old, old.replace("dc1", "evil")) == ["ad.host: 'dc1' → 'evil'"]
    assert weakened(old, old.replace("25", "10")) == []
    assert weakened(old, old.replace("description: A", "description: B")) == []
    assert weakened(old, old + "  fw:\n    kind: nftables\n") == ["adds target fw"]


def test_an_inventory_pushed_as_a_link_to_another_approved_one_is_refused(fakes: Fakes):
    """`inventory/fakes.yaml` replaced by a link to another approved inventory: the run never
    follows the link to use that file."""
    import os

    inventory = fakes.inventory_in_repo()
    other = inventory.with_name("otro.yaml")
    other.write_text(inventory.read_text(encoding="utf-8"), encoding="utf-8")
    fakes.repo.squash_merge("Otro inventario", approvers=(APPROVER_1, APPROVER_2))
    inventory.unlink()
    os.symlink("otro.yaml", inventory)
    fakes.repo.direct_push("fakes.yaml es ahora un enlace")
    code, data, err = plan(fakes, inventory)
    assert code == 1 and "the inventory inventory/fakes.yaml is a symbolic link" in err, err


def test_an_inventory_kept_outside_inventory_is_judged_as_an_inventory(fakes: Fakes):
    """Wherever the run keeps it in the repository, weakening it takes the privileged number
    (it was judged as entitlements.yaml, which one approval changes)."""
    for approver in fakes.repo.policy["approvers"][:2]:  # the two approvers may approve config/
        approver["paths"].append("config/*")
    inventory = fakes.repo.root / "config" / "fakes.yaml"
    inventory.parent.mkdir(parents=True)
    inventory.write_text(fakes.inventory.read_text(encoding="utf-8"), encoding="utf-8")
    fakes.add("SSM-000001")
    fakes.repo.squash_merge("Inventario en config/")
    edit(inventory, "b-second", max_bajas=500)
    fakes.repo.squash_merge("Más bajas por corrida", approvers=(APPROVER_1,))
    code, data, err = plan(fakes, inventory)
    assert any("config/fakes.yaml changed without the approvals it needs (b-second.max_bajas" in w
               for w in data["warnings"]), data.get("warnings")


def test_every_change_of_who_receives_secrets_needs_the_privileged_approvals():
    """The delivery block decides where passwords go: no setting in it is 'careful', not even one
    that is named like a careful target setting (a unit called `description`)."""
    from reconciler.approval.inventory_review import weakened

    base = "delivery:\n  recipients:\n    '*':\n    - {name: Mesa, key: age1aaa}\ntargets: {}\n"
    for changed in ("delivery:\n  recipients:\n    '*':\n    - {name: Mallory, key: age1bbb}\ntargets: {}\n",
                    base.replace("targets: {}", "") + "    description:\n    - {name: Mallory, key: age1bbb}\n"
                    "targets: {}\n",
                    "delivery:\n  mode: clear-text-file-lab-only\ntargets: {}\n",
                    "targets: {}\n"):
        assert weakened(base, changed), changed
    assert not weakened(base, base)
