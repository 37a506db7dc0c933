"""Settled mail plans against the lab's real Dovecot, over the mail host's SSH (providers/mail/
settled.py): a mail plan that found nothing to do stands while nothing it reads changes, and
never hides what did, however quietly it was written."""
from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler.config.inventory import load_inventory
from reconciler.desired.source import at_ref
from reconciler.providers.mail.doveadm import Command, Doveadm
from reconciler.render.plan import plan_json
from reconciler.run.engine import Run
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
    yield bed
    MailBed.clear()


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


def test_a_new_commit_or_another_day_is_planned_again(held, monkeypatch):
    held.sandbox.repo.git.git.commit("--allow-empty", "-m", "Otro commit")
    found, scope = drift_check(held.sandbox)
    assert HELD not in scope and found["changes"] == []
    assert HELD in drift_check(held.sandbox)[1]  # remembered again, for this commit


@pytest.mark.parametrize("forged", ["damaged", "another target's", "open to others", "a link"])
def test_a_damaged_or_foreign_memory_is_never_trusted(held, cache_home, forged):  # noqa: F811
    [path] = memory_files(cache_home)
    raw = json.loads(path.read_text(encoding="utf-8"))
    edit_quota(held, 0)  # drift a memory that were trusted would hide
    if forged == "damaged":  # its inputs where they belong, so that it is read
        path.write_text(path.read_text(encoding="utf-8")[:150] + "[" * 100_000, encoding="utf-8")
    elif forged == "another target's":
        raw["key"] = "0" * 64
        path.write_text(json.dumps(raw, separators=(",", ":")), encoding="utf-8")
    elif forged == "open to others":
        path.chmod(path.stat().st_mode | stat.S_IWOTH)
    else:
        elsewhere = path.with_name("elsewhere.json")
        path.rename(elsewhere)
        path.symlink_to(elsewhere)
    full, _ = drift_check(held.sandbox, full_read=True)
    found, scope = drift_check(held.sandbox)
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
    """Random hand edits: the drift check is the full plan, and it stands on the remembered one
    only when the full plan is empty.  (The examples share the sandbox, so one may start from
    another's drift: a plan that is not empty is never remembered.)"""
    drift_check(held.sandbox)
    for edit, i in edits:
        edit(held, i)
    checked, scope = drift_check(held.sandbox)
    full, _ = drift_check(held.sandbox, full_read=True)
    assert checked == full
    event("stood on the remembered plan" if HELD in scope else "planned again")
    if HELD in scope:
        assert full == NOTHING
