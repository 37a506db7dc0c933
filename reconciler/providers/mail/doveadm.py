"""The doveadm HTTP API: many commands in one request, errors named per command.

Requests are `[[command, parameters, tag], ...]`; each answer is `["doveadmResponse", result,
tag]` or `["error", {"exitCode": N}, tag]`.  The API key goes in `X-Dovecot-API base64(key)`;
it never appears in a message.  Dovecot answers a wrong key late (it holds failed
authentications back), so a timeout says to check the key.
"""
from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.i18n import _, ngettext

EX_NOUSER = 67  # the user is not in the userdb
EX_NOTFOUND = 68  # nothing to act on (kick: no session)
TIMEOUT = 20  # s for any request, plus PER_COMMAND for each command in it
PER_COMMAND = 0.5
BATCH = 100  # commands per request
# Commands that only read.  A request of nothing else that times out is asked once more, on a
# new connection: in the lab at 100,000 users, Dovecot now and then answers the list of its
# users 60 s late (the length of its auth process's lookup timer for an auth worker,
# AUTH_WORKER_LOOKUP_TIMEOUT_SECS), while a request sent meanwhile is answered in 0.2 s.  A
# request that writes is never sent twice: Dovecot may still be carrying the first one out.
READS = frozenset({"user", "aclGet", "mailboxList", "quotaGet"})


class Late(ReconcilerError):
    """Dovecot did not answer a request within its time limit."""


class Unanswered(ReconcilerError):
    """A request failed after earlier batches were answered: their answers, and why."""

    def __init__(self, message: str, answers: dict):
        super().__init__(message)
        self.answers = answers


@dataclass(frozen=True)
class Command:
    name: str
    parameters: dict
    tag: str


@dataclass(frozen=True)
class Answer:
    tag: str
    result: Any = None
    exit_code: int | None = None  # None: it succeeded

    @property
    def ok(self) -> bool:
        return self.exit_code is None


class Doveadm:
    def __init__(self, url: str, key: str, timeout: float = TIMEOUT, ca_file: str | None = None):
        self.url = url
        self.timeout = timeout
        # https: the certificate and its name always checked, against ca_file or the system's CAs.
        try:
            self._tls = ssl.create_default_context(cafile=ca_file) if url.startswith("https://") else None
        except (OSError, ssl.SSLError) as exc:
            raise ReconcilerError(_("cannot read the CA file {path} of the doveadm API: {error}", path=ca_file,
                                    error=getattr(exc, "strerror", None) or str(exc))) from None
        self._auth = "X-Dovecot-API " + base64.b64encode(key.encode("utf-8")).decode("ascii")

    def run(self, commands: list[Command]) -> dict[str, Answer]:
        """Send the commands in batches of BATCH, each allowed time in proportion to its size
        (creating 300 mailboxes' folders takes Dovecot longer than any fixed limit); answers
        by tag.  A batch that fails raises Unanswered with what the earlier ones answered."""
        out: dict[str, Answer] = {}
        for start in range(0, len(commands), BATCH):
            batch = commands[start:start + BATCH]
            try:
                out.update(self._asked(batch))
            except ReconcilerError as exc:
                raise Unanswered(str(exc), out) from None
        return out

    def _asked(self, batch: list[Command]) -> dict[str, Answer]:
        try:
            return self._request(batch)
        except Late:
            if not all(c.name in READS for c in batch):
                raise
        return self._request(batch)

    def limit(self, commands: int) -> float:
        """Seconds one request of `commands` commands may take."""
        return self.timeout + PER_COMMAND * commands

    def _request(self, commands: list[Command]) -> dict[str, Answer]:
        body = json.dumps([[c.name, c.parameters, c.tag] for c in commands]).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Authorization": self._auth, "Content-Type": "application/json"})
        limit = self.limit(len(commands))
        try:
            with urllib.request.urlopen(request, timeout=limit, context=self._tls) as response:
                answers = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise ReconcilerError(_("doveadm API {url} refused the request: HTTP {code} (the API key is wrong)",
                                        url=self.url, code=exc.code)) from None
            raise ReconcilerError(_("doveadm API {url} refused the request: HTTP {code}",
                                    url=self.url, code=exc.code)) from None
        except TimeoutError:
            raise Late(ngettext(
                "doveadm API {url} did not answer {n} command in {limit:g} s; Dovecot may still finish it (the "
                "read back and the next plan show what is left). If it never answers, check the API key: Dovecot "
                "answers a wrong one late",
                "doveadm API {url} did not answer {n} commands in {limit:g} s; Dovecot may still finish them (the "
                "read back and the next plan show what is left). If it never answers, check the API key: Dovecot "
                "answers a wrong one late",
                len(commands), url=self.url, limit=limit)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReconcilerError(_("cannot reach the doveadm API {url}: {reason}",
                                    url=self.url, reason=reason)) from None
        except ValueError:
            raise ReconcilerError(_("doveadm API {url} answered something that is not JSON", url=self.url)) from None
        out: dict[str, Answer] = {}
        for kind, result, tag in answers:
            if kind == "error":
                out[tag] = Answer(tag, exit_code=int((result or {}).get("exitCode", 1)))
            else:
                out[tag] = Answer(tag, result)
        return out

    def one(self, name: str, **parameters) -> Answer:
        return self.run([Command(name, parameters, "1")])["1"]
