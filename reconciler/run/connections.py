"""The targets of a run, opened in the background.

Reaching a target waits on the network (the lab's domain controller takes 60 ms for the TLS
handshake and the bind), so the connections are made on a thread while the run reads Git and
the YAML.  A target out of reach is not raised here: `wait()` hands its error over, so that a
problem in the YAML is reported first, and the others are still opened (an apply goes ahead
with their bajas).  A run that stops early (bad YAML, Ctrl-C) does not wait
for a slow target: it abandons the opening, and the thread closes whatever it opened.
"""
from __future__ import annotations

import threading
from contextlib import ExitStack

from reconciler.config.inventory import TargetSettings
from reconciler.errors import ReconcilerError
from reconciler.i18n import _
from reconciler.providers import registry
from reconciler.providers.contract import Provider


def select(targets: dict[str, TargetSettings], only: tuple[str, ...] = (),
           inventory=None) -> dict[str, TargetSettings]:
    """The targets a run reconciles (all, or `only`), in apply order.  `inventory`: the file
    they come from, named when a target is unknown."""
    unknown = [t for t in only if t not in targets]
    if unknown and inventory is not None:
        raise ReconcilerError(_("unknown target {targets} (the inventory {inventory} has {known})",
                                targets=", ".join(unknown), inventory=inventory, known=", ".join(targets)))
    if unknown:
        raise ReconcilerError(_("unknown target {targets} (the inventory has {known})",
                                targets=", ".join(unknown), known=", ".join(targets)))
    return {n: t for n, t in sorted(targets.items(), key=lambda item: registry.order(item[1].kind))
            if not only or n in only}


class Connections:
    def __init__(self, selected: dict[str, TargetSettings], reading: bool = False, full_read: bool = False):
        """Start opening `selected`, in order; for a run that only reads (`reading`), with each
        target's read-only account where it has one.  Each kind's module, and the libraries it
        needs, is imported here, before the thread starts (imports on two threads compete for
        the GIL and can deadlock on each other's module locks)."""
        self._waiting = {name: registry.kind(t.kind).provider_class()(t.for_reading() if reading else t)
                         for name, t in selected.items()}
        for provider in self._waiting.values():
            provider.full_read = full_read
        self.providers: dict[str, Provider] = {}  # opened, in order
        self.unreachable: dict[str, ReconcilerError] = {}  # could not be opened: why
        self._stack = ExitStack()
        self._guard = threading.Lock()
        self._abandoned = self._finished = self._prefetch = False
        self._skipped: frozenset = frozenset()
        self._error: BaseException | None = None
        # A daemon: an interrupted command exits without waiting for a target that hangs.
        self._thread = threading.Thread(target=self._open, name="connect", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        prefetch = abandoned = False
        try:
            for name, provider in self._waiting.items():
                try:
                    opened = self._stack.enter_context(provider)
                except ReconcilerError as exc:  # out of reach: the others are still opened
                    self.unreachable[name] = exc
                    continue
                with self._guard:
                    if self._abandoned:
                        break
                    self.providers[name] = opened
        except BaseException as exc:  # handed to wait(): a bug, or an interruption
            self._error = exc
        finally:
            with self._guard:  # one decision: prefetch() either sets the flag before this, or starts the reads
                self._finished = True
                abandoned = self._abandoned
                prefetch = self._prefetch and not abandoned and self._error is None and not self.unreachable
            if abandoned:
                self._stack.close()
        if prefetch:
            try:
                self._start_reads()
            except BaseException as exc:
                self._error = exc

    def prefetch(self, but: frozenset = frozenset()) -> None:
        """Start every target's bulk read (`but` those planned from their memory) as soon as
        all are open (a full plan), without waiting for it here: the YAML is loaded meanwhile."""
        self._skipped = but
        with self._guard:
            if not self._finished:
                self._prefetch = True
                return
        if self._error is None and not self.unreachable:
            self._start_reads()

    def _start_reads(self) -> None:
        for name, provider in self.providers.items():
            if name not in self._skipped:
                provider.prefetch()

    def wait(self) -> dict[str, ReconcilerError]:
        """Wait until every target was tried: those that could not be opened, with why (not
        raised).  Any other failure (a bug) is raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return dict(self.unreachable)

    def close(self) -> None:
        """Close every opened target; while the opening still runs, abandon it instead (the
        thread closes what it opened).  Again is harmless."""
        with self._guard:
            if not self._finished:
                self._abandoned = True
                return
        self._stack.close()

    def __enter__(self) -> "Connections":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
