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

# Settings whose change needs only the ordinary approvals, when it goes in this direction:
# everything else can hand credentials to another machine, switch off a check or widen what a
# run manages (an AD OU that holds Domain Admins, a password source, a device's ACL name).
CAREFUL = {"max_bajas": "lower", "lock_ttl_minutes": "lower", "description": "any"}


def _targets(text: str | None) -> dict | None:
    """The targets of an inventory text, read by the desired state's strict parser (no
    anchors or aliases, bounded depth): None when it cannot be read, which counts as a change
    of everything."""
    data, problems = parse_yaml(text or "", "inventory")
    if problems:
        return None
    targets = data.get("targets") if isinstance(data, dict) else None
    return targets if isinstance(targets, dict) else {}


def _flat(value, prefix: tuple = ()) -> dict[tuple, object]:
    if isinstance(value, dict):
        out: dict[tuple, object] = {}
        for k, v in value.items():
            out.update(_flat(v, prefix + (str(k),)))
        return out
    return {prefix: value}


def weakened(old_text: str | None, new_text: str | None) -> list[str]:
    """What the change from `old_text` to `new_text` does to sensitive settings, in words."""
    old, new = _targets(old_text), _targets(new_text)
    if old is None or new is None:
        return ["an inventory that cannot be read"]
    found = []
    for name in sorted(set(old) | set(new), key=str):
        before, after = _flat(old.get(name)), _flat(new.get(name))
        if name not in old:
            found.append(f"adds target {name}")
            continue
        if name not in new:
            continue  # removing a target reaches nothing more
        for path in sorted(set(before) | set(after)):
            leaf = path[-1] if path else ""
            if before.get(path) == after.get(path):
                continue
            where = ".".join((str(name),) + path)
            old_value, new_value = before.get(path), after.get(path)
            careful = CAREFUL.get(leaf)
            if careful == "any" or (careful == "lower" and isinstance(old_value, int) and isinstance(new_value, int)
                                    and new_value < old_value):
                continue
            found.append(f"{where}: {old_value!r} → {new_value!r}")
    return found


def changed(old_text: str | None, new_text: str | None) -> list[str]:
    """Every setting the change touches, for the plan's note."""
    old, new = _targets(old_text), _targets(new_text)
    if old is None or new is None:
        return ["(unreadable)"]
    out = []
    for name in sorted(set(old) | set(new), key=str):
        before, after = _flat(old.get(name)), _flat(new.get(name))
        for path in sorted(set(before) | set(after)):
            if before.get(path) != after.get(path):
                out.append(".".join((str(name),) + path))
    return out
