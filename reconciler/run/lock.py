"""One apply per target at a time: a lock file next to the target's audit trail.

The lock is created atomically (O_EXCL) and names its holder, host, process, CI job and
expiry.  A run that crashes leaves it behind; once it expires (or, on the same host, once its
process is gone) the next run takes it over and says whose lock it replaced.  The directory
must be shared by every runner that applies to the target (in practice: one runner per
production network, as the README says).
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
from pathlib import Path

from reconciler.audit.trail import operator
from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy, when
from reconciler.run import Moment

DEFAULT_TTL = dt.timedelta(hours=2)


class TargetLocked(ReconcilerError):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict) -> str:
    """Who holds the lock (a Message: it is also kept in the trail, as locks_taken_over)."""
    if not holder.get("operator"):
        return lazy("an unreadable lock file")
    if holder.get("ci_job"):
        return lazy("{operator} on {host} (pid {pid}, CI job {job}), since {since}",
                    operator=holder.get("operator"), host=holder.get("host"), pid=holder.get("pid"),
                    job=holder["ci_job"], since=Moment(holder.get("since")))
    return lazy("{operator} on {host} (pid {pid}), since {since}", operator=holder.get("operator"),
                host=holder.get("host"), pid=holder.get("pid"), since=Moment(holder.get("since")))


class TargetLock:
    def __init__(self, directory: str | Path, target: str, ttl: dt.timedelta = DEFAULT_TTL):
        self.path = Path(directory) / f"{target}.lock"
        self.target, self.ttl = target, ttl
        self.token = secrets.token_hex(8)
        self.replaced: str | None = None  # whose expired lock this run took over

    def _stale(self, holder: dict) -> str | None:
        """Why the lock is stale, or None while its holder may still be running."""
        now = dt.datetime.now(dt.timezone.utc)
        try:
            expires = dt.datetime.fromisoformat(holder["expires"])
        except (KeyError, TypeError, ValueError):
            return lazy("unreadable")  # the lock is written before it is linked into place: never half-written
        here = holder.get("host") == os.uname().nodename and isinstance(holder.get("pid"), int)
        if here:  # on this host the holder's life is known: a run past its lock's expiry is still running
            return None if _alive(holder["pid"]) else lazy("its process is gone")
        if expires <= now:
            return lazy("expired at {moment}", moment=Moment(holder["expires"]))
        return None

    def held(self) -> bool:
        """Whether another run holds the lock now (a plan, which takes none, asks)."""
        holder = self._read()
        return holder is not None and self._stale(holder) is None

    def acquire(self) -> "TargetLock":
        try:
            return self._acquire()
        except OSError as exc:  # the audit directory is a file, unwritable, on a full disk...
            raise ReconcilerError(_("target {target}: cannot take the lock {path}: {error}",
                                    target=self.target, path=self.path, error=exc.strerror or exc)) from None

    def _acquire(self) -> "TargetLock":
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        now = dt.datetime.now(dt.timezone.utc)
        holder = {**operator(), "pid": os.getpid(), "token": self.token,
                  "since": now.isoformat(timespec="seconds"), "expires": (now + self.ttl).isoformat(timespec="seconds")}
        # Written aside, then linked into place: the lock never exists without its content,
        # and link() fails if it exists, atomically.
        draft = self.path.with_name(f"{self.path.name}.{self.token}")
        draft.write_text(json.dumps(holder, ensure_ascii=False), encoding="utf-8")
        os.chmod(draft, 0o600)
        try:
            for _attempt in range(3):
                try:
                    os.link(draft, self.path)
                    return self
                except FileExistsError:
                    self._take_over_if_stale()
            raise TargetLocked(_("target {target}: other runs keep taking the lock ({path})",
                                 target=self.target, path=self.path))
        finally:
            draft.unlink(missing_ok=True)

    def _take_over_if_stale(self) -> None:
        """Remove the current lock if it is stale; raise if it is held.  Takeovers are
        serialised by a flock, and the lock is removed only if it is still the one judged
        stale, so two runs never remove each other's fresh lock."""
        with open(self.path.with_name(f"{self.path.name}.guard"), "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            current = self._read()
            if current is None:
                return  # released meanwhile: try again
            why = self._stale(current)
            if why is None:
                raise TargetLocked(_("target {target} is locked by another apply: {holder}; "
                                     "the lock expires at {expires} ({path})", target=self.target,
                                     holder=_describe(current), expires=when(current.get("expires")),
                                     path=self.path))
            if (self._read() or {}).get("token") == current.get("token"):
                self.replaced = lazy("{holder} ({why})", holder=_describe(current), why=why)
                self.path.unlink(missing_ok=True)

    def _read(self) -> dict | None:
        """The holder; None when there is no lock, {} when it cannot be read (stale)."""
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def release(self) -> None:
        if (self._read() or {}).get("token") == self.token:  # never remove a lock someone else took over
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "TargetLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
