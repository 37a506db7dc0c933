"""The AD snapshot and the delta read's pure parts (no directory): what is in scope, which
watermark continues which, and a snapshot kept and read back only when it is ours."""
from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.config.inventory import load_inventory
from reconciler.providers.ad import snapshot
from reconciler.providers.ad.delta import in_scope
from reconciler.providers.ad.snapshot import Snapshot, Watermark

ROOTS = ["OU=Personal,OU=Reconciler,DC=salud,DC=lab", "OU=Bajas,OU=Reconciler,DC=salud,DC=lab"]


@pytest.mark.parametrize("dn, expected", [
    (r"CN=Ñúñez O'Brien\, José,OU=HG-CUERNAVACA,OU=Personal,OU=Reconciler,DC=salud,DC=lab", True),
    ("CN=a,OU=Piso 2,OU=HG-CUERNAVACA,OU=Personal,OU=Reconciler,DC=salud,DC=lab", True),  # deeper in a unit OU
    ("CN=a,OU=Personal,OU=Reconciler,DC=salud,DC=lab", True),  # directly in the people OU
    ("cn=a,ou=bajas,ou=reconciler,dc=SALUD,dc=lab", True),  # DNs compare without case
    ("CN=a,CN=Contenedor,OU=Personal,OU=Reconciler,DC=salud,DC=lab", False),  # a container: not searched
    ("CN=a,OU=Fuera,OU=Reconciler,DC=salud,DC=lab", False),
    ("CN=a,CN=Users,DC=salud,DC=lab", False),
    ("OU=Personal,OU=Reconciler,DC=salud,DC=lab", False),
])
def test_in_scope_is_what_a_full_read_searches(dn, expected):
    assert in_scope(dn, ROOTS) is expected


MARK = Watermark("CN=NTDS Settings,CN=DC1,CN=Servers,CN=Sitio,CN=Sites,CN=Configuration,DC=salud,DC=lab",
                 "ab" * 16, 5000)


@given(st.integers(min_value=0, max_value=10 ** 9))
def test_a_watermark_continues_only_on_the_same_dc_and_never_backwards(usn):
    later = Watermark(MARK.server.upper(), MARK.invocation, usn)
    assert later.continues(MARK) is (usn >= MARK.usn)
    assert not Watermark(MARK.server.replace("DC1", "DC2"), MARK.invocation, usn).continues(MARK)
    assert not Watermark(MARK.server, "cd" * 16, usn).continues(MARK)


@pytest.fixture
def target(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RECONCILER_SCHEMA_CACHE", raising=False)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("""
targets:
  ad:
    kind: active_directory
    host: dc1.salud.lab
    base_dn: DC=salud,DC=lab
    upn_suffix: salud.lab
    ous: {people: "OU=Personal,DC=salud,DC=lab", groups: "OU=Grupos,DC=salud,DC=lab", bajas: "OU=Bajas,DC=salud,DC=lab"}
    bind_dn: svc-reconciler@SALUD.LAB
    bind_password: {env: AD_PASSWORD}
    delta_read_hours: 24
""", encoding="utf-8")
    return load_inventory(inventory)["ad"]


def _snapshot(target) -> Snapshot:
    entries = {"0f" * 16: (r"CN=Ñúñez O'Brien\, José,OU=HG,OU=Personal,DC=salud,DC=lab",
                           {"employeeID": ["SSM-000001"], "title": ["Médico General"], "memberOf": []})}
    return Snapshot(snapshot.key_of(target), MARK, 1_700_000_000.0, entries, {"1f" * 16: "CN=GG,OU=Grupos,DC=salud,DC=lab"})


def test_a_snapshot_is_kept_for_its_user_alone_and_read_back_whole(target, tmp_path):
    kept = _snapshot(target)
    snapshot.save(kept, target)
    [path] = list((tmp_path / "cache" / "reconciler" / "directory").glob("*.json"))
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert snapshot.load(kept.key, target) == kept


def test_a_snapshot_is_another_targets_when_a_setting_or_the_bind_differs(target):
    from dataclasses import replace

    key = snapshot.key_of(target)
    for other in (replace(target, host="dc2.salud.lab"), replace(target, people_ou="OU=Otra,DC=salud,DC=lab"),
                  replace(target, bind_dn="svc-otra@SALUD.LAB"), replace(target, name="ad2")):
        assert snapshot.key_of(other) != key
    snapshot.save(_snapshot(target), target)
    other = replace(target, host="dc2.salud.lab")
    assert snapshot.load(snapshot.key_of(other), other) is None and snapshot.load(key, target) is not None


def test_a_new_snapshot_of_a_target_replaces_its_others_and_forget_removes_them(target, tmp_path):
    from dataclasses import replace

    older = replace(_snapshot(target), key="e" * 64)  # another release's, say
    snapshot.save(older, target)
    kept = _snapshot(target)
    snapshot.save(kept, target)
    other_target = replace(target, name="ad2")
    snapshot.save(replace(_snapshot(other_target)), other_target)
    folder = tmp_path / "cache" / "reconciler" / "directory"
    assert len(list(folder.glob("*.json"))) == 2 and snapshot.load(older.key, target) is None
    snapshot.forget(target)
    assert snapshot.load(kept.key, target) is None and snapshot.load(snapshot.key_of(other_target), other_target)


@pytest.mark.parametrize("damage", [b"", b"{", b"[]", b'{"format": 1}', b"\xff\xfe"])
def test_a_damaged_snapshot_is_none_never_a_crash(target, tmp_path, damage):
    kept = _snapshot(target)
    snapshot.save(kept, target)
    [path] = list((tmp_path / "cache" / "reconciler" / "directory").glob("*.json"))
    path.write_bytes(damage)
    assert snapshot.load(kept.key, target) is None


def test_a_snapshot_others_could_write_is_not_read(target, tmp_path):
    kept = _snapshot(target)
    snapshot.save(kept, target)
    [path] = list((tmp_path / "cache" / "reconciler" / "directory").glob("*.json"))
    path.chmod(0o620)
    assert snapshot.load(kept.key, target) is None
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    assert snapshot.load(kept.key, target) is None
