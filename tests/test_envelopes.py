"""Envelopes in a Git repository, without the lab: names Git accepts for any folio, sealing that
only the recipients open, and files taken back out."""
from __future__ import annotations

import datetime
import io
import subprocess
from pathlib import Path
from unittest import mock

import git
import pyrage
import pytest
from gitdb import IStream
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.delivery import Delivery, Recipient
from reconciler.delivery.envelopes import REFS, Envelopes, envelopes, ref_name, remove_files
from reconciler.errors import ReconcilerError


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=300), st.text(min_size=0, max_size=300))
def test_every_holder_and_folio_makes_its_own_ref_name_git_accepts_inside_the_namespace(holder, folio):
    name = ref_name(holder, folio)
    assert subprocess.run(["git", "check-ref-format", name]).returncode == 0, name
    assert name.startswith(REFS) and len(name[len(REFS):].split("/")) == 2  # never climbs out, never deeper
    assert name != ref_name(holder + ".", folio) and name != ref_name(holder, folio + ".lock")  # a digest: distinct


@pytest.fixture
def box(tmp_path):
    repo = git.Repo.init(tmp_path / "repo")
    desk, other = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    delivery = Delivery(recipients={"*": (Recipient("Mesa", str(desk.to_public())),)})
    announced = []
    made = Envelopes(repo, "ad-x", "run-1", delivery, unit_of=lambda key, account: "HG",
                     letter=lambda **f: f"secret {f['secret']}\n",
                     carta=lambda holder, folio: b"%PDF-carta", announce=announced.append)
    return repo, made, desk, other, announced


def test_a_secret_is_sealed_to_the_recipients_only_and_announced_without_it(box):
    repo, made, desk, other, announced = box
    made.record("jnunezo", "jnunezo@salud.lab", "SSM-1", "=HYPERLINK(\"x\")/../2026", "S3cr3t-1")
    made.record("424", "424@salud.lab", "SSM-1", "=HYPERLINK(\"x\")/../2026", "L1ne-2")  # same request: same envelope
    [envelope] = envelopes(repo)
    assert envelope.holder == "SSM-1" and envelope.folio == "=HYPERLINK(\"x\")/../2026"
    assert envelope.files == ("ad-x.424.age", "ad-x.jnunezo.age")
    tree = repo.commit(envelope.commit).tree
    sealed = tree["ad-x.jnunezo.age"].data_stream.read()
    assert pyrage.decrypt(sealed, [desk]) == b"secret S3cr3t-1\n"
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(sealed, [other])
    assert tree["carta.pdf"].data_stream.read() == b"%PDF-carta"
    assert [a["key"] for a in announced] == ["jnunezo", "424"]
    assert all(s not in str(a) for a in announced for s in ("S3cr3t", "L1ne-2"))
    # One file out: a new commit without it and without history (the blob is not reachable from
    # the ref); the last one out: an envelope holding envelope.json only, which is not listed.
    line_blob = tree["ad-x.424.age"].hexsha
    remove_files(repo, envelope, {"ad-x.424.age"}, "never-used run-1")
    [envelope] = envelopes(repo)
    assert envelope.files == ("ad-x.jnunezo.age",) and line_blob not in repo.git.rev_list("--objects", envelope.ref)
    remove_files(repo, envelope, {"ad-x.jnunezo.age"}, "never-used run-1")
    assert envelopes(repo) == [] and [b.name for b in repo.commit(envelope.ref).tree.blobs] == ["envelope.json"]


def test_an_envelope_someone_else_put_at_the_name_is_not_built_on(box):
    """A ref made in advance at the predictable name (a forged file, a blob): the apply writes
    its own envelope over it, holding only what it sealed."""
    repo, made, desk, other, announced = box
    forged = repo.odb.store(IStream(b"blob", 4, io.BytesIO(b"evil"))).hexsha.decode()
    repo.git.update_ref(ref_name("SSM-1", "F-1"), forged)
    made.record("jnunezo", "", "SSM-1", "F-1", "S3cr3t-1")
    [envelope] = envelopes(repo)
    assert envelope.files == ("ad-x.jnunezo.age",)


def test_nobody_to_seal_to_is_refused_before_anything_is_written(tmp_path):
    repo = git.Repo.init(tmp_path / "repo")
    made = Envelopes(repo, "ad-x", "run-1", Delivery(recipients={}), unit_of=lambda key, account: "HG",
                     letter=lambda **f: "", carta=lambda h, f: None, announce=lambda r: None)
    with pytest.raises(ReconcilerError, match="no recipient to seal the secret of jnunezo"):
        made.record("jnunezo", "", "SSM-1", "F-1", "S3cr3t")
    assert envelopes(repo) == []


def _envelope(files, folio="F-1", holder="SSM-1", days_old=0):
    import datetime as dt

    from reconciler.delivery.envelopes import Envelope

    made = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc) - dt.timedelta(days=days_old)
    return Envelope(ref_name(holder, folio), "0" * 40, holder, folio, made, tuple(files))


def test_a_target_takes_back_its_own_files_of_acknowledged_or_expired_envelopes():
    import datetime as dt

    from reconciler.delivery.envelopes import due
    from reconciler.desired.model import Acuse

    now = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    signed = {"SSM-1": Acuse("F-1", "2026-11-30", "a" * 64), "SSM-2": Acuse("F-old", "2026-01-01", "b" * 64)}
    found = [_envelope(["ad-x.jnunezo.age", "sip-x.424.age"]),                 # acknowledged
             _envelope(["ad-x.anunezo.age"], holder="SSM-2", days_old=5),      # an acuse of another folio: kept
             _envelope(["ad-x.old.age"], holder="SSM-3", days_old=31),         # expired
             _envelope(["sip-x.500.age"], holder="SSM-4", days_old=90)]        # another target's file
    removals = due(found, "ad-x", signed.get, now, 30)
    assert [(r.envelope.holder, set(r.files), r.reason, r.acuse_sha256) for r in removals] == [
        ("SSM-1", {"ad-x.jnunezo.age"}, "acknowledged", "a" * 64), ("SSM-3", {"ad-x.old.age"}, "expired", None)]
    assert due(found, "ad-x", lambda holder: None, now, 30)[0].envelope.holder == "SSM-3"  # not loaded: not judged


def test_validate_warns_of_an_envelope_older_than_the_limit(tmp_path):
    """validate reads the repository's envelopes: one nobody acknowledged for 40 days is named."""
    import os

    import yaml

    from conftest import run_cli

    repo = git.Repo.init(tmp_path / "repo")
    (tmp_path / "repo" / "desired_state" / "users").mkdir(parents=True)
    (tmp_path / "repo" / "desired_state" / "units.yaml").write_text("units:\n  LESP:\n    name: Laboratorio\n    kind: oficina_central\n")
    (tmp_path / "repo" / "desired_state" / "entitlements.yaml").write_text("entitlements: {}\n")
    key = str(pyrage.x25519.Identity.generate().to_public())
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"delivery": {"recipients": {"*": [{"name": "Mesa", "key": key}]}},
                                         "targets": {"ad-x": {
                                             "kind": "active_directory", "host": "127.0.0.1", "base_dn": "DC=x",
                                             "upn_suffix": "x", "bind_dn": "x", "bind_password": {"env": "X"},
                                             "ous": {"people": "OU=P,DC=x", "groups": "OU=G,DC=x",
                                                     "bajas": "OU=B,DC=x"}}}}))
    made = Envelopes(repo, "ad-x", "run-1", Delivery(recipients={"*": (Recipient("Mesa", key),)}),
                     unit_of=lambda k, a: None, letter=lambda **f: "x", carta=lambda h, f: None,
                     announce=lambda r: None)
    with mock.patch("reconciler.delivery.envelopes.dt") as clock:  # sealed on New Year's Day
        clock.datetime.now.return_value = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        clock.timezone = datetime.timezone
        made.record("jnunezo", "", "SSM-9", "F/1", "S3cr3t")
    code, out, err = run_cli("--repo", str(tmp_path / "repo"), "validate", "--inventory", str(inventory))
    assert code == 0, err
    assert "Not acknowledged: the envelope of SSM-9, folio F/1, is " in out and "days old (limit 30)" in out


def test_the_report_lists_envelopes_no_acknowledgement_has_closed():
    import datetime as dt

    from reconciler.audit.indicators import unacknowledged

    def sealed(ref, file, time, **extra):
        return {"kind": "envelope", "envelope": ref, "envelope_file": file, "time": time, "folio": "F", **extra}

    records = [sealed("r1", "ad.a.age", "2026-11-01T10:00:00+00:00", employee_key="SSM-1"),
               sealed("r1", "sip.424.age", "2026-11-02T10:00:00+00:00", employee_key="SSM-1"),
               sealed("r2", "ad.b.age", "2026-11-20T10:00:00+00:00", employee_key="SSM-2"),
               {"kind": "envelope-removed", "envelope": "r2", "envelope_file": "ad.b.age", "reason": "acknowledged"},
               sealed("r3", "ad.c.age", "2026-11-25T10:00:00+00:00", employee_key="SSM-3")]
    waiting = unacknowledged(records, dt.datetime(2026, 12, 1, 10, tzinfo=dt.timezone.utc))
    assert [(d.holder, d.envelope, d.days) for d in waiting] == [("SSM-1", "r1", 30), ("SSM-3", "r3", 6)]


def test_a_recipient_opens_only_envelopes_the_apply_key_signed(tmp_path, monkeypatch):
    """age does not say who sealed a file: an envelope forged with the recipients' public key
    (the inventory publishes it) is refused when the apply key did not sign it."""
    from conftest import run_cli
    from reconciler.audit.seal import ApplyKey

    repo = git.Repo.init(tmp_path / "repo")
    keys = {}
    for name in ("apply", "forger"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)], check=True)
        keys[name] = ApplyKey.from_env({"RECONCILER_APPLY_KEY": str(tmp_path / name)})
    (tmp_path / "desk.key").write_text(str(desk := pyrage.x25519.Identity.generate()) + "\n")
    delivery = Delivery(recipients={"*": (Recipient("Mesa", str(desk.to_public())),)})
    for holder, key, secret in (("SSM-1", keys["apply"], "Real-1"), ("SSM-2", keys["forger"], "Call-me-at-555")):
        Envelopes(repo, "ad-x", "run-1", delivery, unit_of=lambda k, a: None, letter=lambda **f: f"{f['secret']}\n",
                  carta=lambda h, f: None, announce=lambda r: None, key=key).record("acct", "", holder, "F-1", secret)
    monkeypatch.delenv("RECONCILER_APPLY_KEY", raising=False)
    monkeypatch.setenv("RECONCILER_APPLY_PUBLIC_KEY", str(tmp_path / "apply.pub"))
    code, out, err = run_cli("--repo", str(tmp_path / "repo"), "credentials", "open", "F-1", "--identity",
                             str(tmp_path / "desk.key"), "--out", str(tmp_path / "out"))
    assert code == 0 and "Real-1" in out and "Call-me-at-555" not in out
    assert f"{ref_name('SSM-2', 'F-1')}: not signed by the apply key: ignored" in err


def test_the_requester_named_by_the_solicitud_also_receives_it_when_the_inventory_declares_them():
    """solicitud.deliver_to names a requester; the key comes from the approved inventory, and
    only for the units listed there: a deliver_to the inventory does not declare for the unit
    adds nobody."""
    head, other = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    delivery = Delivery.from_inventory({"delivery": {
        "recipients": {"*": [{"name": "Mesa", "key": str(other.to_public())}]},
        "requesters": {"Ana.Ordonez@ssm.example.gob.mx": {"name": "Dra. Ana Lucía Ordóñez",
                                                          "key": str(head.to_public()),
                                                          "units": ["HG-CUERNAVACA"]}}}})
    assert delivery.requester("ana.ordonez@ssm.example.gob.mx", "HG-CUERNAVACA").name == "Dra. Ana Lucía Ordóñez"
    assert delivery.requester("ana.ordonez@ssm.example.gob.mx", "CS-JIUTEPEC") is None  # not her unit
    assert delivery.requester("mallory@example.com", "HG-CUERNAVACA") is None  # not declared
    assert delivery.requester(None, "HG-CUERNAVACA") is None


def test_a_sealed_secret_opens_with_the_requesters_key_too(tmp_path):
    repo = git.Repo.init(tmp_path / "repo")
    desk, head = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    delivery = Delivery(recipients={"*": (Recipient("Mesa", str(desk.to_public())),)})
    announced = []
    made = Envelopes(repo, "ad-x", "run-1", delivery, unit_of=lambda k, a: "HG", letter=lambda **f: f["secret"],
                     carta=lambda h, f: None, announce=announced.append,
                     requester=lambda key, folio: Recipient("Jefa", str(head.to_public())) if folio == "F-1" else None)
    made.record("jnunezo", "", "SSM-1", "F-1", "S3cr3t-1")
    made.record("anunezo", "", "SSM-2", "F-2", "S3cr3t-2")
    sealed = {e.holder: repo.commit(e.commit).tree for e in envelopes(repo)}
    assert pyrage.decrypt(sealed["SSM-1"]["ad-x.jnunezo.age"].data_stream.read(), [head]) == b"S3cr3t-1"
    with pytest.raises(pyrage.DecryptError):  # another request: not hers
        pyrage.decrypt(sealed["SSM-2"]["ad-x.anunezo.age"].data_stream.read(), [head])
    assert [a["recipients"] for a in announced] == [["Mesa", "Jefa"], ["Mesa"]]


def test_validate_names_a_deliver_to_the_inventory_does_not_declare(tmp_path):
    import yaml

    from conftest import run_cli

    root = _one_person(tmp_path, deliver_to="mallory@example.com")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"delivery": {"recipients": {"*": [
        {"name": "Mesa", "key": str(pyrage.x25519.Identity.generate().to_public())}]}},
        "targets": {"ad-x": {"kind": "active_directory", "host": "127.0.0.1", "base_dn": "DC=x", "upn_suffix": "x",
                             "bind_dn": "x", "bind_password": {"env": "X"},
                             "ous": {"people": "OU=P,DC=x", "groups": "OU=G,DC=x", "bajas": "OU=B,DC=x"}}}}))
    code, out, err = run_cli("--repo", str(root), "validate", "--inventory", str(inventory))
    assert code == 0, err
    assert ("Not a declared requester: E1: deliver_to mallory@example.com is not in the inventory's "
            "delivery.requesters for LESP") in out


@pytest.mark.parametrize("layout", ["repository", "linked worktree"])
def test_an_envelope_is_on_disk_before_its_ref_moves(tmp_path, monkeypatch, layout):
    """Its loose objects (the sealed file among them), their folders and the new ref with its
    folders are synced (fsync): a power cut after the account is created must not lose the only
    copy of its password.  In a linked worktree the objects live in the common directory."""
    import os

    main = git.Repo.init(tmp_path / "repo")
    main.index.commit("first")
    if layout == "linked worktree":
        main.git.worktree("add", "-q", str(tmp_path / "wt"))
    repo = git.Repo(tmp_path / ("wt" if layout == "linked worktree" else "repo"))
    desk = pyrage.x25519.Identity.generate()
    made = Envelopes(repo, "ad-x", "run-1", Delivery(recipients={"*": (Recipient("Mesa", str(desk.to_public())),)}),
                     unit_of=lambda k, a: None, letter=lambda **f: "x", carta=lambda h, f: None,
                     announce=lambda r: None)
    synced, real = [], os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    made.record("jnunezo", "", "SSM-1", "F-1", "S3cr3t-1")
    [envelope] = envelopes(repo)
    objects = os.path.join(main.git_dir, "objects")
    sealed = repo.commit(envelope.commit).tree["ad-x.jnunezo.age"].hexsha
    for sha in (envelope.commit, envelope.tree, sealed):
        assert os.path.join(objects, sha[:2], sha[2:]) in synced, sha
    assert objects in synced
    assert os.path.join(main.git_dir, envelope.ref) in synced
    assert os.path.join(main.git_dir, "refs") in synced


def test_a_reset_never_reaches_the_alta_s_requester(tmp_path):
    """A reset is a request of its own: a reset whose folio is the solicitud's is refused by
    validation, so the requester of the alta never receives a later password."""
    from conftest import run_cli

    root = _one_person(tmp_path, deliver_to="jefa@example.com", password_resets=[{"folio": "F-1", "date": "2026-12-02"}])
    code, out, err = run_cli("--repo", str(root), "validate", "--inventory", str(tmp_path / "none.yaml"))
    assert code == 1 and "password_resets[0].folio: folio F-1 is the person's solicitud" in err


def _one_person(tmp_path, deliver_to: str, **extra) -> Path:
    """A desired state of one person in one unit (LESP), whose solicitud F-1 names `deliver_to`."""
    import yaml

    root = tmp_path / "repo"
    (root / "desired_state" / "users").mkdir(parents=True)
    (root / "desired_state" / "units.yaml").write_text("units:\n  LESP:\n    name: Laboratorio\n    kind: oficina_central\n")
    (root / "desired_state" / "entitlements.yaml").write_text("entitlements: {}\n")
    person = {"employee_key": "E1", "given_names": "Zoé", "first_surname": "Güemes", "second_surname": "O'Brien",
              "title": "Química", "direction": "Dirección", "phone": "777 000 0000", "status": "activo",
              "entitlements": [], "solicitud": {"folio": "F-1", "date": "2026-12-01", "justification": "Alta",
                                                "requested_by": "Jefa", "deliver_to": deliver_to}, **extra}
    (root / "desired_state" / "users" / "lesp.yaml").write_text(
        yaml.safe_dump({"unit": "LESP", "people": [person]}, allow_unicode=True), encoding="utf-8")
    return root
