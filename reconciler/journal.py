"""The run journal: what an apply was about to do, and what came of it (JSON Lines).

Every planned change is written before the first LDAP operation, and every result after
verification, so a run that is killed halfway still leaves a record of the changes it was
making; the next plan shows which of them remain.  No secrets are ever written here.  The
approvals issue turns this into the hash-chained audit trail.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from . import __version__
from .errors import ReconcilerError


class Journal:
    def __init__(self, directory: str | Path, name: str):
        self.path = Path(directory) / f"{name}.jsonl"
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise ReconcilerError(f"cannot write the run journal {self.path}: {exc.strerror}") from None

    def write(self, event: str, **fields) -> None:
        record = {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "event": event, **fields}
        os.write(self._fd, (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8"))

    def start(self, run_id: str, target: str, source: str, changes) -> None:
        self.write("start", run=run_id, target=target, source=source, reconciler=__version__,
                   operator=os.environ.get("GITHUB_ACTOR") or os.environ.get("GITLAB_USER_LOGIN")
                   or os.environ.get("SUDO_USER") or os.environ.get("USER") or f"uid {os.getuid()}")
        for change in changes:
            self.write("planned", **change.to_dict())

    def results(self, outcomes) -> None:
        for o in outcomes:
            self.write("result", **o.change.to_dict(), status=o.status, verified=o.verified, error=o.error)

    def close(self, aborted: BaseException | None = None) -> None:
        if aborted is not None:
            self.write("aborted", reason=f"{type(aborted).__name__}: {aborted}")
        self.write("end")
        os.fsync(self._fd)
        os.close(self._fd)
