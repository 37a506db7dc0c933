"""The rules in force before a change: the approval policy (with the approvers' keys), the
privileged entitlements and the thresholds are read from the commit the approved change went
onto (the base its signatures name, the first parent of what landed it), never from what it
brings.  A pull request that adds approvers, lowers a threshold or drops an
entitlement's `privileged` flag is judged by the rules it wants to change; its new rules take
effect for what lands after it.  The repository's first commit has nothing before it: it is
the trust root (the policy its administrators wrote), and nothing it declares is approved:
no signature can name a base before it.
"""
from __future__ import annotations

from dataclasses import dataclass

from reconciler.approval.policy import POLICY_FILE, Policy, parse_policy
from reconciler.desired.files import blob_text
from reconciler.desired.model import DesiredState
from reconciler.desired.source import DESIRED_DIR, DesiredSource
from reconciler.desired.yamlfile import parse_yaml
from reconciler.errors import ValidationFailed


@dataclass(frozen=True)
class Rules:
    """What a change is judged by."""

    policy: Policy | None
    privileged: dict[str, str]  # casefolded AD group -> privileged entitlement key
    before: str | None  # the commit they were read from (None: there is none)
    problem: str = ""  # why there is no policy


class RulesInForce:
    """The rules in force before each landing commit, read once per commit and per file."""

    def __init__(self, source: DesiredSource, state: DesiredState):
        self.source, self.state = source, state
        self._policies: dict[str, Policy | None] = {}  # by blob id: the policy seldom changes
        self._by_commit: dict[str, Rules] = {}

    def at(self, sha: str) -> Rules:
        """The rules as of commit `sha` (a proposal's base, or the base of approved changes)."""
        if sha not in self._by_commit:
            self._by_commit[sha] = self._read(sha)
        return self._by_commit[sha]

    def _read(self, sha: str) -> Rules:
        commit = self.source.repo.commit(sha)
        path = self.source.path_in_repo(POLICY_FILE)
        try:
            blob = (commit.tree / path).hexsha
        except (KeyError, TypeError):  # TypeError: a link where the inventory folder belongs
            return Rules(None, {}, sha, f"commit {sha[:10]} has no approval policy {path}")
        if blob not in self._policies:
            try:
                self._policies[blob] = parse_policy(blob_text(commit, path), path)
            except ValidationFailed as exc:
                self._policies[blob] = None
                return Rules(None, {}, sha, f"the approval policy {path} at {sha[:10]} is invalid ({exc})")
        policy = self._policies[blob]
        return Rules(policy, self._privileged(commit, policy), sha,
                     "" if policy else f"the approval policy {path} at {sha[:10]} cannot be read")

    def _privileged(self, commit, policy: Policy | None) -> dict[str, str]:
        """Privileged entitlements: flagged in entitlements.yaml at that commit, or listed by
        its policy; each by its group there and its group now (a renamed group stays one)."""
        path = self.source.path_in_repo(f"{DESIRED_DIR}/entitlements.yaml")
        then = _entitlements(blob_text(commit, path), path)
        keys = {k for k, e in then.items() if e.get("privileged") is True}
        keys |= set(policy.privileged_entitlements) if policy else set()
        # Flagged privileged now counts too: an unreadable file then never lowers the bar.
        keys |= {e.key for e in self.state.entitlements.values() if e.privileged}
        groups = {str(e.get("group", "")).casefold(): k for k, e in then.items() if k in keys and e.get("group")}
        groups.update({e.group.casefold(): e.key for e in self.state.entitlements.values() if e.key in keys})
        return groups


def _entitlements(text: str | None, display: str) -> dict[str, dict]:
    """entitlements.yaml's entries, as far as they can be read (it was validated when it landed;
    what cannot be read grants no privilege here, and the current file still counts)."""
    if text is None:
        return {}
    data, problems = parse_yaml(text, display)
    entries = data.get("entitlements") if not problems and isinstance(data, dict) else None
    return {str(k): v for k, v in entries.items() if isinstance(v, dict)} if isinstance(entries, dict) else {}
