"""Settled mail plans against the lab's real Dovecot, over the mail host's SSH (providers/mail/
settled.py): a mail plan that found nothing to do stands while nothing it reads changes, and
never hides what did, however quietly it was written."""
from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler.config.inventory import load_inventory
from reconciler.desired.source import at_ref
from reconciler.providers.mail.apply import RIGHTS
from reconciler.providers.mail.doveadm import Answer, Command, Doveadm
from reconciler.providers.mail.provider import MailProvider
from reconciler.providers.mail.settled import FILES, files_digest, server_digest
from reconciler.render.plan import plan_json
from reconciler.run.engine import Run
from conftest import UNTRUSTED, forged_memory, untrust
from test_delta_read_lab import cache_home  # noqa: F401 (fixture)
from test_mail_provider_lab import MAIL_DIR, REGISTRO, MailBed, with_mailbox

pytestmark = pytest.mark.lab

HELD = "mail-test: nothing it reads has changed since its plan of"
NOTHING = {"changes": [], "conflicts": [], "warnings": []}


def drift_check(sandbox, full_read: bool = False) -> tuple[dict, str]:
    """`reconciler plan` as the scheduled drift check runs it (or with --full-read)."""
    with Run(at_ref(sandbox.repo.root), sandbox.inventory, settle=not full_read, full_read=full_read) as run:
        found = json.loads(plan_json(run.plan()))
    return {k: found[k] for k in ("changes", "conflicts", "warnings")}, found["scope"]


def memory_files(cache_home):  # noqa: F811
    return sorted((cache_home / "reconciler" / "mail").glob("*.settled.json"))


@pytest.fixture
def held(sandbox, cache_home):  # noqa: F811
    """Two people with mailboxes and a shared mailbox, applied, and a drift check that found
    nothing: remembered."""
    bed = MailBed(sandbox)
    ana, luis, shared = bed.address("ana"), bed.address("luis"), bed.address("recepcion")
    sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", ana), with_mailbox(
        "SSM-000002", luis, given_names="Luis Ángel", first_surname="Yáñez", second_surname="Zúñiga"))
    sandbox.repo.shared = {"HG-CUERNAVACA": [{
        "address": shared, "name": "Recepción", "members": ["SSM-000001"],
        "solicitud": {"folio": "SSM/STI/2026/00412", "date": "2026-10-14", "justification": "Recepción",
                      "requested_by": "Dirección del hospital"}}]}
    sandbox.apply()
    found, scope = drift_check(sandbox)
    assert found == NOTHING and HELD not in scope
    assert len(memory_files(cache_home)) == 1
    bed.addresses = (ana, luis, shared)
    bed.applied = {path: path.read_bytes() if path.exists() else None for path in FILES_READ}
    yield bed
    MailBed.clear()


FILES_READ = [REGISTRO / name for name in ("users", "recipients", "aliases", "denied", "users.kick-pending")]


def undo_edits(bed) -> None:
    """Every file as the apply left it, and the shared mailbox's rights: Ana's alone."""
    for path, data in bed.applied.items():
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)
    ana, luis, shared = bed.addresses
    api = doveadm(bed.sandbox)
    api.run([Command("aclDelete", {"user": shared, "mailbox": "INBOX", "id": f"user={luis}"}, "luis"),
             Command("aclSet", {"user": shared, "mailbox": "INBOX", "id": f"user={ana}", "right": RIGHTS}, "ana")])
    time.sleep(1.1)  # Dovecot notices a rewritten registry by its modification time, in whole seconds


def quiet_edit(path, one: str, other: str) -> None:
    """A hand edit of one word for another of the same length (back, if it was made already),
    in place, keeping the file's size, inode and modification time: what a stat cannot see."""
    assert len(one.encode()) == len(other.encode())
    before = os.stat(path)
    text = path.read_text(encoding="utf-8")
    old, new = (one, other) if one in text else (other, one)
    assert old in text
    with open(path, "r+", encoding="utf-8") as f:
        f.write(text.replace(old, new, 1))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)


def doveadm(sandbox) -> Doveadm:
    target = load_inventory(sandbox.inventory)["mail-test"]
    return Doveadm(target.doveadm_url, target.doveadm_key.read(), ca_file=target.doveadm_ca_file)


# The hand edits a full mail plan reports, each as quiet as it can be.
def edit_quota(bed, _i):
    quiet_edit(REGISTRO / "users", "storage=50M", "storage=40M")


def edit_closed_by_hand(bed, i):
    with open(REGISTRO / "denied", "a", encoding="utf-8") as f:
        f.write(f"{bed.addresses[i % 2]}\n")


def edit_recipients_map(bed, i):
    address = bed.addresses[i % 2]
    quiet_edit(REGISTRO / "recipients", address, address.replace(".", "_", 1))


def edit_shared_rights(bed, i):
    member = bed.addresses[i % 2]
    answers = doveadm(bed.sandbox).run([Command("aclGet", {"user": bed.addresses[2], "mailbox": "INBOX"}, "now")])
    holds = any(r.get("id") == f"user={member}" for r in answers["now"].result or ())
    arguments = {"user": bed.addresses[2], "mailbox": "INBOX", "id": f"user={member}"}
    command = Command("aclDelete", arguments, "hand") if holds else \
        Command("aclSet", {**arguments, "right": ["lookup", "read"]}, "hand")
    assert doveadm(bed.sandbox).run([command])["hand"].ok


def edit_hand_made_line(bed, i):
    with open(REGISTRO / "users", "a", encoding="utf-8") as f:
        f.write(f"a.mano{i}@salud.lab:::::::userdb_quota_rule=*:storage=1G\n")


DRIFT = [edit_quota, edit_closed_by_hand, edit_recipients_map, edit_shared_rights, edit_hand_made_line]


# Read by the plan, yet no drift: sessions owed a kick for a mailbox that is open.
def edit_owed_kick(bed, i):
    (REGISTRO / "users.kick-pending").write_text(f"{bed.addresses[i % 2]}\n", encoding="utf-8")


def edit_nothing_it_reads(bed, i):
    """What delivering and reading mail writes: the mailboxes, which the plan does not read."""
    home = MAIL_DIR / "vmail"
    os.utime(home)


def test_the_mail_plan_stands_while_nothing_it_reads_changes(held):
    found, scope = drift_check(held.sandbox)
    assert found == NOTHING and HELD in scope
    assert drift_check(held.sandbox, full_read=True)[0] == NOTHING


@pytest.mark.parametrize("edit", [*DRIFT, edit_owed_kick], ids=lambda e: e.__name__)
def test_each_hand_edit_is_planned_as_a_full_plan_plans_it(held, edit):
    edit(held, 0)
    full, _ = drift_check(held.sandbox, full_read=True)
    assert (full == NOTHING) == (edit is edit_owed_kick)  # drift (or a warning) a full plan reports
    found, scope = drift_check(held.sandbox)
    assert HELD not in scope and found == full


def test_a_new_commit_is_planned_again(held):
    held.sandbox.repo.git.git.commit("--allow-empty", "-m", "Otro commit")
    found, scope = drift_check(held.sandbox)
    assert HELD not in scope and found["changes"] == []
    assert HELD in drift_check(held.sandbox)[1]  # remembered again, for this commit


def forged_text(bed, path, how: str) -> str:
    """The memory as a forger would write it: the digests of what the mail server holds now,
    after a hand edit, so that trusted it would hide that edit; then damaged as `how` says."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    with MailProvider(load_inventory(bed.sandbox.inventory)["mail-test"].for_reading()) as provider:
        raw["files"] = files_digest({name: provider._read_text(name) for name in FILES})
        raw["server"] = server_digest(*provider._ask_dovecot([tuple(s) for s in raw["shared"]]))
    return forged_memory(raw, how)


@pytest.mark.parametrize("forged", ["the runner's own", "damaged", "nested too deep", "another target's",
                                    "not a time", *UNTRUSTED])
def test_a_damaged_or_foreign_memory_is_never_trusted(held, cache_home, forged):  # noqa: F811
    """Each memory below holds digests that match the mail server after a hand edit.  Only one
    the runner's own user wrote whole is trusted (the documented limit of every cache); any
    other is read as absent, and the edit is planned."""
    [path] = memory_files(cache_home)
    edit_quota(held, 0)  # drift a trusted memory would hide
    path.write_text(forged_text(held, path, forged), encoding="utf-8")
    untrust(path, forged)
    found, scope = drift_check(held.sandbox)
    if forged == "the runner's own":
        assert HELD in scope and found == NOTHING  # the control: this forgery would work
    else:
        full, _ = drift_check(held.sandbox, full_read=True)
        assert HELD not in scope and found == full != NOTHING


def test_a_file_written_otherwise_and_back_holds_again(held):
    """The memory proves the bytes, not a time: a registry rewritten otherwise is planned
    again, and once it is written back as it was, what the plan reads is the same again."""
    text = (REGISTRO / "users").read_text(encoding="utf-8")
    (REGISTRO / "users").write_text(text.replace("storage=50M", "storage=40M"), encoding="utf-8")
    assert HELD not in drift_check(held.sandbox)[1]
    (REGISTRO / "users").write_text(text, encoding="utf-8")
    found, scope = drift_check(held.sandbox)
    assert found == NOTHING and HELD in scope


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.sampled_from([*DRIFT, edit_owed_kick, edit_nothing_it_reads]), st.integers(0, 3)),
                      max_size=3))
def test_a_settled_mail_plan_never_hides_a_hand_edit(held, edits):
    """Random hand edits, from the applied state: the drift check is the full plan, and it
    stands on the remembered plan exactly when no edit touched what the plan reads."""
    undo_edits(held)
    assert HELD in drift_check(held.sandbox)[1]  # each example starts where the memory holds
    for edit, i in edits:
        edit(held, i)
    checked, scope = drift_check(held.sandbox)
    full, _ = drift_check(held.sandbox, full_read=True)
    assert checked == full
    # The proof is exact: it stands exactly when what the plan reads is as the apply left it
    # (two edits may undo each other: a word changed and changed back, a right taken and given).
    same = {path: (path.read_bytes() if path.exists() else None) == data for path, data in held.applied.items()}
    rights = doveadm(held.sandbox).run([Command("aclGet", {"user": held.addresses[2], "mailbox": "INBOX"}, "now")])
    drifted = not all(same[path] for path in FILES_READ[:4]) \
        or {r.get("id") for r in rights["now"].result or ()} != {f"user={held.addresses[0]}"}
    assert (HELD in scope) == (not drifted and same[FILES_READ[4]])  # a kick owed to an open mailbox: read, no drift
    assert (full != NOTHING) == drifted
    event("stood on the remembered plan" if HELD in scope else "planned again")


def test_rights_doveadm_cannot_read_are_said_and_never_remembered(held, monkeypatch):
    """Read as "no members" in silence, rights granted by hand would never be planned, and a
    memory of that plan would hold.  The plan says so instead (and goes on: the other mailboxes'
    bajas must not wait for it), the memory is not used, and the plan is not remembered."""
    real = Doveadm.run

    def acl_fails(self, commands):
        answers = real(self, commands)
        return {tag: (Answer(tag, exit_code=68) if tag.startswith("acl-") else a) for tag, a in answers.items()}
    monkeypatch.setattr(Doveadm, "run", acl_fails)
    said = f"could not read who may use the shared mailbox {held.addresses[2]}"
    for full_read in (True, False, False):
        found, scope = drift_check(held.sandbox, full_read=full_read)
        assert HELD not in scope and any(said in w for w in found["warnings"]), found["warnings"]
    monkeypatch.setattr(Doveadm, "run", real)  # not undo(): that would also drop the test's own cache
    assert HELD in drift_check(held.sandbox)[1]  # the memory of the plan before stands again
