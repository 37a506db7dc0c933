"""What the forge says about a merge: the pull request, its head, its author and who approved
exactly that head.  Read by the merge bot (`reconciler attest`) in the protected pipeline only;
nothing else in the product trusts the forge.

GitHub (REST, documented answers):
  GET /repos/{repo}/commits/{sha}/pulls          pull requests associated with a commit
  GET /repos/{repo}/pulls/{number}/reviews       reviews, oldest first, each with `commit_id`
A reviewer's approval counts if their latest review that is not a comment is APPROVED and was
given for the head commit that merged: a review of an earlier head does not count.

GitLab (REST v4):
  GET /projects/{id}/repository/commits/{sha}/merge_requests
  GET /projects/{id}/merge_requests/{iid}/approvals
GitLab does not tie an approval to a commit: the project must reset approvals when commits are
added (README, "Setting up the merge bot"), and the merge request's `sha` must be the head.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from reconciler.errors import ReconcilerError
from reconciler.i18n import _


@dataclass(frozen=True)
class Merge:
    """A merged pull request as the forge reports it."""

    number: str  # "#12" or "!12"
    head: str  # the head commit that merged
    landed: str  # the commit the merge made on the protected branch
    author: str  # forge account
    approved_by: tuple[str, ...]  # forge accounts that approved exactly `head`


class Forge:
    def __init__(self, api: str, repository: str, token: str | None):
        if not api.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ReconcilerError(_("the forge API must be reached over https, not {api!r}", api=api))
        self.api, self.repository, self.token = api.rstrip("/"), repository, token

    def _get(self, path: str) -> object:
        request = urllib.request.Request(self.api + path, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return json.loads(answer.read(8 << 20).decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise ReconcilerError(_("the forge answered {code} for {path}", code=exc.code, path=path)) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ReconcilerError(_("cannot read {path} from the forge: {error}", path=path, error=exc)) from None

    def _pages(self, path: str, limit: int = 50) -> list:
        items: list = []
        for page in range(1, limit + 1):
            sep = "&" if "?" in path else "?"
            batch = self._get(f"{path}{sep}per_page=100&page={page}")
            if not isinstance(batch, list):
                raise ReconcilerError(_("the forge's answer for {path} is not a list", path=path))
            items += batch
            if len(batch) < 100:
                return items
        # A later "changes requested" could be on a page not read: attest nothing.
        raise ReconcilerError(_("{path} has more than {count} entries: not attested", path=path, count=limit * 100))

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def merge_of(self, landed: str) -> Merge | None:
        """The pull request whose merge made commit `landed`, or None."""
        try:
            return self._merge_of(landed)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ReconcilerError(_("the forge's answer about {commit} is not shaped as its documentation "
                                    "says: not attested", commit=landed[:10])) from None

    def _merge_of(self, landed: str) -> Merge | None:
        raise NotImplementedError


class GitHub(Forge):
    name = "github"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _merge_of(self, landed: str) -> Merge | None:
        repo = urllib.parse.quote(self.repository, safe="/")
        pulls = self._get(f"/repos/{repo}/commits/{landed}/pulls")
        pull = next((p for p in pulls if isinstance(p, dict) and p.get("merge_commit_sha") == landed
                     and p.get("merged_at")), None) if isinstance(pulls, list) else None
        if pull is None:
            return None
        head = pull["head"]["sha"]
        latest: dict[str, dict] = {}
        for review in self._pages(f"/repos/{repo}/pulls/{int(pull['number'])}/reviews"):
            login = (review.get("user") or {}).get("login") if isinstance(review, dict) else None
            if login and review.get("state") in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[login] = review  # a deleted account (user: null) approves nothing
        approved = tuple(sorted(login for login, r in latest.items()
                                if r["state"] == "APPROVED" and r.get("commit_id") == head))
        return Merge(f"#{int(pull['number'])}", head, landed, pull["user"]["login"], approved)


class GitLab(Forge):
    name = "gitlab"

    def _headers(self) -> dict[str, str]:
        return {"PRIVATE-TOKEN": self.token} if self.token else {}

    def _merge_of(self, landed: str) -> Merge | None:
        project = urllib.parse.quote(self.repository, safe="")
        found = self._get(f"/projects/{project}/repository/commits/{landed}/merge_requests")
        mr = next((m for m in found if isinstance(m, dict) and m.get("state") == "merged"
                   and landed in (m.get("merge_commit_sha"), m.get("squash_commit_sha"))), None) \
            if isinstance(found, list) else None
        if mr is None:
            return None
        approvals = self._get(f"/projects/{project}/merge_requests/{int(mr['iid'])}/approvals")
        entries = approvals.get("approved_by", ()) if isinstance(approvals, dict) else ()
        approved = tuple(sorted(u for a in entries if isinstance(a, dict)
                                for u in [(a.get("user") or {}).get("username")] if u))
        return Merge(f"!{int(mr['iid'])}", mr["sha"], landed, mr["author"]["username"], approved)


FORGES = {"github": GitHub, "gitlab": GitLab}
