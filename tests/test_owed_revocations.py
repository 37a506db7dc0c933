"""Revocations owed by an earlier run (issue 13 item 6), without a server: only what the
target itself shows as the reconciler's, closed or removed, is ever acted on."""
from __future__ import annotations

import dataclasses

from test_mail_diff import TARGET, entry

from reconciler.providers.mail.apply import SESSIONS, kick_file, pending_kicks
from reconciler.providers.mail.host import LocalHost
from reconciler.providers.mail.provider import owed_kicks
from reconciler.providers.mail.records import actual_mail
from reconciler.providers.sip.diff import REGISTRATIONS, ActualLines, Subscriber, diff


def test_owed_kicks_end_only_sessions_of_managed_mailboxes_the_registry_shows_closed(tmp_path):
    target = dataclasses.replace(TARGET, registry=str(tmp_path / "users"))
    (tmp_path / "users.kick-pending").write_text(
        "ana@salud.lab\nluis@salud.lab\n*\n0.0.0.0/0\nmano@salud.lab\n", encoding="utf-8")
    assert kick_file(target) == str(tmp_path / "users.kick-pending")
    actual = actual_mail([entry("ana@salud.lab", closed="2026-11-20"),  # closed by the reconciler: owed
                          entry("luis@salud.lab", owner="SSM-2"),  # open again since: never kicked
                          entry("mano@salud.lab", owner=None, closed="2026-01-01")],  # made by hand
                         {}, {}, ("salud.lab",))
    [owed] = owed_kicks(target, [], actual, pending_kicks(LocalHost(), target))
    assert (owed.kind, owed.key, owed.movement.value) == (SESSIONS, "ana@salud.lab", "baja")


def test_owed_unregistrations_never_touch_a_subscriber_the_reconciler_does_not_own():
    # 4401 and 4402 were removed (their subscribers are gone); 5000 was made by hand.
    actual = ActualLines({"5000": Subscriber("5000", False)},
                         unregister={"4401": "2026-12-01", "5000": "2026-12-01", "4402": "2026-12-01"})
    changes, conflicts = diff({}, actual, "phone")
    assert not conflicts
    assert [(c.kind, c.key) for c in changes] == [(REGISTRATIONS, "4401"), (REGISTRATIONS, "4402")]


def test_what_removes_access_goes_ahead_while_another_target_is_out_of_reach():
    """The directory's own judgement (ADProvider.removes_access): groups taken away, an account
    disabled, a password reset; never a change that also grants or renames."""
    from reconciler.plan import AttributeChange, Change, Movement
    from reconciler.providers.ad.provider import ADProvider

    ad = ADProvider.__new__(ADProvider)  # the judgement needs no connection

    def account(*attributes, movement=Movement.MODIFICACION, kind="account"):
        return Change(movement, "ad", kind, "SSM-1", "ana", tuple(attributes))
    vpn_off = AttributeChange("groups", ("GG-VPN", "GG-Internet"), ("GG-Internet",))
    vpn_on = AttributeChange("groups", ("GG-Internet",), ("GG-VPN", "GG-Internet"))
    disabled = AttributeChange("enabled", True, False)
    title = AttributeChange("title", "Médico", "Director")
    assert ad.removes_access(account(vpn_off)) and ad.removes_access(account(vpn_off, disabled))
    assert ad.removes_access(account(movement=Movement.BAJA))
    assert ad.removes_access(account(kind="password-reset"))
    assert not ad.removes_access(account(vpn_on)) and not ad.removes_access(account(vpn_off, title))
    assert not ad.removes_access(account(movement=Movement.ALTA)) and not ad.removes_access(account())
