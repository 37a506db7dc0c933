"""A TEST DOUBLE of the forges' REST APIs (GitHub's and GitLab's), for the merge bot's tests: no
forge can run here.  It answers the documented paths the bot reads with the documented JSON
shapes (only the fields the bot reads), from what a test declares: merged pull requests, their
heads and their reviews.  It records each request, with its headers, so tests can check the
token is sent and nothing else is asked.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class ForgeDouble:
    def __init__(self, forge: str, repository: str):
        self.forge, self.repository = forge, repository
        self.answers: dict[str, object] = {}
        self.requests: list[tuple[str, dict]] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the stdlib's name)
                double.requests.append((self.path, dict(self.headers)))
                path = urlparse(self.path).path
                page = dict(p.split("=", 1) for p in urlparse(self.path).query.split("&") if "=" in p).get("page", "1")
                body = double.answers.get(path)
                if body is None and "/commits/" in path and path.endswith(("/pulls", "/merge_requests")):
                    body = []  # as both forges answer for a commit no pull request merged
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                if isinstance(body, list) and page != "1":
                    body = []
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def merged(self, number: int, landed: str, head: str, author: str, reviews: list[tuple[str, str, str]]) -> None:
        """A pull request merged as `landed`; reviews are (login, state, commit reviewed)."""
        if self.forge == "github":
            self.answers[f"/repos/{self.repository}/commits/{landed}/pulls"] = [{
                "number": number, "state": "closed", "merged_at": "2026-12-01T10:00:00Z",
                "merge_commit_sha": landed, "head": {"sha": head}, "base": {"ref": "main"},
                "user": {"login": author}}]
            self.answers[f"/repos/{self.repository}/pulls/{number}/reviews"] = [
                {"user": {"login": login}, "state": state, "commit_id": commit} for login, state, commit in reviews]
        else:
            project = self.repository.replace("/", "%2F")
            self.answers[f"/projects/{project}/repository/commits/{landed}/merge_requests"] = [{
                "iid": number, "state": "merged", "sha": head, "merge_commit_sha": landed,
                "squash_commit_sha": None, "author": {"username": author}}]
            self.answers[f"/projects/{project}/merge_requests/{number}/approvals"] = {
                "approved_by": [{"user": {"username": login}} for login, state, _ in reviews if state == "APPROVED"]}
