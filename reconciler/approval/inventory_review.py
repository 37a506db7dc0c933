"""The inventory is reviewed desired state.

It decides where the reconciler connects and with which checks: the AD host and whether TLS is
validated, the firewall's pinned host key and default policy, the mail server's reload, where
audit records and credentials go, which OUs and tables are managed, how many bajas a run may
make.  So a run uses the newest version of the inventory file that landed with approval
(approvers whose `paths` cover it), never a version pushed straight to the branch; and any
change but a few that only make a run more careful (a lower max_bajas, a shorter lock) needs
the privileged number of approvals, like the approval policy.
"""
from __future__ import annotations

from reconciler.desired.yamlfile import parse_yaml
from reconciler.i18n import lazy

# Settings whose change needs only the ordinary approvals, when it goes in this direction:
# everything else can hand credentials to another machine, switch off a check or widen what a
# run manages (an AD OU that holds Domain Admins, a password source, a device's ACL name).
# (A shorter lock_ttl_minutes is not careful: another apply may take over a running one's lock.)
CAREFUL = {"max_bajas": "lower", "description": "any"}


# The delivery block, compared like a target of that name (no target can be called so): who
# receives the secrets an apply makes is decided like where a password is sent.
DELIVERY = "[delivery]"


def _targets(text: str | None) -> dict | None:
    """The targets of an inventory text, and its delivery block, read by the desired state's
    strict parser (no anchors or aliases, bounded depth): None when it cannot be read, which
    counts as a change of everything."""
    data, problems = parse_yaml(text or "", "inventory")
    if problems:
        return None
    targets = data.get("targets") if isinstance(data, dict) else None
    settings = dict(targets) if isinstance(targets, dict) else {}
    if isinstance(data, dict) and "delivery" in data:
        settings[DELIVERY] = data["delivery"]
    return settings


def _flat(value, prefix: tuple = ()) -> dict[tuple, object]:
    if isinstance(value, dict):
        out: dict[tuple, object] = {}
        for k, v in value.items():
            out.update(_flat(v, prefix + (str(k),)))
        return out
    return {prefix: value}


def _differences(old: dict, new: dict):
    """(target, setting path, before, after) of every setting that differs; (target, None, …)
    for a target added or removed."""
    for name in sorted(set(old) | set(new), key=str):
        if name not in old or name not in new:
            yield name, None, old.get(name), new.get(name)
            continue
        before, after = _flat(old[name]), _flat(new[name])
        for path in sorted(set(before) | set(after)):
            if before.get(path) != after.get(path):
                yield name, path, before.get(path), after.get(path)


def weakened(old_text: str | None, new_text: str | None) -> list[str]:
    """What the change from `old_text` to `new_text` does that needs the privileged number of
    approvals, in words."""
    old, new = _targets(old_text), _targets(new_text)
    if old is None or new is None:
        return [lazy("an inventory that cannot be read")]
    found = []
    for name, path, before, after in _differences(old, new):
        if path is None:
            if name == DELIVERY:
                found.append(lazy("changes how secrets are delivered"))
            elif after is not None:  # removing a target reaches nothing more
                found.append(lazy("adds target {target}", target=name))
            continue
        # Inside the delivery block nothing is careful (a unit may be called `description`).
        careful = None if name == DELIVERY else CAREFUL.get(path[-1] if path else "")
        if careful == "any" or (careful == "lower" and isinstance(before, int) and isinstance(after, int)
                                and after < before):
            continue
        found.append(f"{'.'.join((str(name),) + path)}: {before!r} → {after!r}")
    return found


def changed(old_text: str | None, new_text: str | None) -> list[str]:
    """Every setting the change touches, for the plan's note."""
    old, new = _targets(old_text), _targets(new_text)
    if old is None or new is None:
        return [lazy("(unreadable)")]
    return [".".join((str(name),) + (path or ())) for name, path, _, _ in _differences(old, new)]
