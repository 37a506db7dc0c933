"""What no single target can see in its own plan: a hand-made object adopted on one target for
a person whose account another target is creating.  A new account means a new person, or one
whose old account was not found; either way what the adopted object holds (stored mail) may be
someone else's, and the approvers must be told before they approve.  Pure."""
from __future__ import annotations

from typing import Iterable

from reconciler.i18n import Message, lazy
from reconciler.plan import Change, Movement


def adopted_for_new_accounts(changes: Iterable[Change]) -> list[Message]:
    changes = list(changes)
    new = {c.key: c for c in changes if c.kind == "account" and c.movement is Movement.ALTA}
    return [lazy("{label} on {target} was made by hand and is adopted for {key}, whose account on {account_target} "
                 "is new: what it holds (stored mail) may be someone else's; check whose it was before approving",
                 label=c.label, target=c.target, key=c.key, account_target=new[c.key].target)
            for c in changes if c.movement is Movement.ADOPCION and c.kind != "account" and c.key in new]
