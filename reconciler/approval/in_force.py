"""The rules in force before a change: the approval policy (with the approvers' keys), the
privileged entitlements and the thresholds are read from the commit the approved change went
onto (the base its signatures name, the first parent of what landed it), never from what it
brings.  A pull request that adds approvers, lowers a threshold or drops an
entitlement's `privileged` flag is judged by the rules it wants to change; its new rules take
effect for what lands after it.  The repository's first commit has nothing before it: it is
the trust root (the policy its administrators wrote), and nothing it declares is approved:
no signature can name a base before it.

Only approved rules are in force.  The policy at a commit is the one the newest approved change
of the policy file brought (or the trust root's): a policy edit pushed straight to the branch
(an approver's key swapped for the attacker's) is ignored, and changing the policy needs the
privileged number of approvals.  Likewise an entitlement's `privileged` flag stays in force
until an approved change removes it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from reconciler.approval.policy import POLICY_FILE, Policy, parse_policy
from reconciler.desired.files import blob_id, blob_text
from reconciler.desired.model import DesiredState
from reconciler.desired.source import DESIRED_DIR, DesiredSource
from reconciler.desired.yamlfile import parse_yaml
from reconciler.errors import ValidationFailed
from reconciler.i18n import lazy


@dataclass(frozen=True)
class Rules:
    """What a change is judged by."""

    policy: Policy | None
    privileged: dict[str, str]  # casefolded AD group -> privileged entitlement key
    before: str | None  # the commit they were read from (None: there is none)
    problem: str = ""  # why there is no policy


class RulesInForce:
    """The rules in force before each landing commit, read once per commit and per file."""

    def __init__(self, source: DesiredSource, state: DesiredState | None,
                 approved: Callable[[str, str], bool] | None = None):
        """approved(landed, file): did that landing's change of the policy or the entitlements
        get the approvals it needs (under the rules in force before it)?  None: trust every
        commit's own files, for callers that judge nothing (validate's checks)."""
        self.source, self.state, self.approved = source, state, approved
        self._policies: dict[str, Policy | None] = {}  # by blob id: the policy seldom changes
        self._by_commit: dict[str, Rules] = {}
        self._last_approved: dict[tuple[str, str], str | None] = {}
        self.ignored: dict[str, str] = {}  # landing -> file it changed without approval (for warnings)
        # The runner may pin the repository's first commit: a history pushed with a root of its
        # own (its own policy and keys) then has no rules in force at all.
        self.trust_root = os.environ.get("RECONCILER_TRUST_ROOT") or None

    def at(self, sha: str) -> Rules:
        """The rules as of commit `sha` (a proposal's base, or the base of approved changes)."""
        if sha not in self._by_commit:
            self._by_commit[sha] = self._read(sha)
        return self._by_commit[sha]

    def last_approved(self, sha: str, path: str) -> str | None:
        """The commit whose version of `path` is in force at `sha`: the newest landing on
        sha's first-parent line that changed it with approval, or the trust root (the first
        commit; with RECONCILER_TRUST_ROOT set, only that commit)."""
        if (sha, path) not in self._last_approved:
            rows = self.source.repo.git.log("--first-parent", "--format=%H %P", sha, "--", path).splitlines()
            current = None
            # Oldest first, remembering the answer at each step: judging a landing asks only
            # about older commits, which are then known (no recursion through the history).
            for row in reversed(rows):
                landed, *parents = row.split()
                if parents:
                    self._last_approved.setdefault((parents[0], path), current)
                if not parents:
                    current = landed if self.trust_root in (None, landed) else None
                elif self.approved is None or self.approved(landed, path):
                    current = landed
                else:
                    self.ignored[landed] = path
                self._last_approved.setdefault((landed, path), current)
            self._last_approved[sha, path] = current
        return self._last_approved[sha, path]

    def _read(self, sha: str) -> Rules:
        path = self.source.path_in_repo(POLICY_FILE)
        in_force = self.last_approved(sha, path)
        if in_force is None:
            return Rules(None, {}, sha, lazy("no approved approval policy {file} at {commit} (the repository's "
                                             "first commit must hold it)", file=path, commit=sha[:10]))
        commit = self.source.repo.commit(in_force)
        blob = blob_id(commit, path)
        if blob is None:
            return Rules(None, {}, sha, lazy("commit {commit} has no approval policy {file}", commit=sha[:10],
                                             file=path))
        if blob not in self._policies:
            try:
                self._policies[blob] = parse_policy(blob_text(commit, path), path)
            except ValidationFailed as exc:
                self._policies[blob] = None
                return Rules(None, {}, sha, lazy("the approval policy {file} at {commit} is invalid ({error})",
                                                 file=path, commit=sha[:10], error=str(exc)))
        policy = self._policies[blob]
        return Rules(policy, self._privileged(self.source.repo.commit(sha), policy), sha,
                     "" if policy else lazy("the approval policy {file} at {commit} cannot be read",
                                            file=path, commit=sha[:10]))

    def _privileged(self, commit, policy: Policy | None) -> dict[str, str]:
        """Privileged AD groups (casefolded) -> the entitlement that names them: flagged in
        entitlements.yaml, or listed by the policy, at that commit, in the last approved
        version of the file, and now.  Privilege follows the group: renaming the entitlement,
        or pointing it elsewhere and giving its group to a new one, keeps the group privileged
        until a change approved as privileged drops it."""
        path = self.source.path_in_repo(f"{DESIRED_DIR}/entitlements.yaml")
        listed = frozenset(policy.privileged_entitlements) if policy else frozenset()
        texts = [blob_text(commit, path)]
        approved = self.last_approved(commit.hexsha, path)
        if approved is not None and approved != commit.hexsha:
            texts.append(blob_text(self.source.repo.commit(approved), path))
        groups: dict[str, str] = {}
        for text in texts:
            for group, key in privileged_groups(text, path, listed).items():
                groups.setdefault(group, key)
        for e in self.state.entitlements.values() if self.state is not None else ():
            if (e.privileged or e.key in listed) and e.group:
                groups.setdefault(e.group.casefold(), e.key)
            if (e.privileged or e.key in listed) and e.system:
                groups.setdefault(SYSTEM + e.system.casefold(), e.key)
        return groups


def _entitlements(text: str | None, display: str) -> dict[str, dict]:
    """entitlements.yaml's entries, as far as they can be read (it was validated when it landed;
    what cannot be read grants no privilege here, and the current file still counts)."""
    if text is None:
        return {}
    data, problems = parse_yaml(text, display)
    entries = data.get("entitlements") if not problems and isinstance(data, dict) else None
    return {str(k): v for k, v in entries.items() if isinstance(v, dict)} if isinstance(entries, dict) else {}


SYSTEM = "system:"  # not for people: how a system with no API is keyed among the privileged groups


def privileged_groups(text: str | None, display: str, listed: frozenset[str] = frozenset()) -> dict[str, str]:
    """Casefolded AD group (or "system:" and a system with no API) -> entitlement key, for the
    entitlements of an entitlements.yaml text that are flagged `privileged: true` or `listed`
    by the policy."""
    out = {}
    for k, e in _entitlements(text, display).items():
        if e.get("privileged") is True or k in listed:
            if e.get("group"):
                out[str(e["group"]).casefold()] = k
            if e.get("system"):  # a system with no API: its work order grants it (approval/review.py)
                out[SYSTEM + str(e["system"]).casefold()] = k
    return out
