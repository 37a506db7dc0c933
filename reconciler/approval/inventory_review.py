"""The inventory is reviewed desired state.

It decides where the reconciler connects and with which checks: the AD host and whether TLS is
validated, the firewall's pinned host key and default policy, the mail server's reload, where
audit records and credentials go, how many bajas a run may make.  So a run uses the newest
version of the inventory file that landed with approval (approvers whose `paths` cover it),
never a version pushed straight to the branch; and a change that weakens a check or points a
target elsewhere needs the privileged number of approvals, like the approval policy.
"""
from __future__ import annotations

from reconciler.desired.yamlfile import parse_yaml

# Settings whose change can hand credentials to another machine or switch off a check.
SENSITIVE = {"host", "port", "url", "validate", "ca_file", "known_hosts", "host_key", "default_policy",
             "bind_dn", "user", "key_file", "audit_dir", "credentials_dir", "reload", "registry", "maps"}


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
            if leaf in SENSITIVE:
                found.append(f"{where}: {before.get(path)!r} → {after.get(path)!r}")
            elif leaf == "max_bajas" and isinstance(after.get(path), int) and after.get(path) > (before.get(path) or 0):
                found.append(f"{where} raised to {after.get(path)}")
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
