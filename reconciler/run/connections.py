"""The targets of a run, opened in the background.

Reaching a target waits on the network (the lab's domain controller takes 60 ms for the TLS
handshake and the bind), so the connections are made on a thread while the caller imports
the rest of the program and reads Git and the YAML.  A target out of reach is not raised here:
`wait()` hands its error over, so that a problem in the YAML is reported first.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from reconciler.config.inventory import TargetSettings, load_inventory
from reconciler.errors import ReconcilerError
from reconciler.providers import registry
from reconciler.providers.contract import Provider


class Connections:
    def __init__(self, inventory: Path, only: tuple[str, ...] = ()):
        """Select the inventory's targets (all, or `only`) in apply order and start opening
        them.  Each kind's module, and the libraries it needs, is imported here."""
        self.inventory = Path(inventory)
        self.targets: dict[str, TargetSettings] = load_inventory(self.inventory)
        unknown = [t for t in only if t not in self.targets]
        if unknown:
            raise ReconcilerError(f"unknown target {', '.join(unknown)} (the inventory {self.inventory} has "
                                  f"{', '.join(self.targets)})")
        self.selected = {n: t for n, t in sorted(self.targets.items(), key=lambda item: registry.order(item[1].kind))
                         if not only or n in only}
        self._waiting = {name: registry.kind(t.kind).provider_class()(t) for name, t in self.selected.items()}
        self.providers: dict[str, Provider] = {}  # opened, in order
        self._stack = ExitStack()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="connect")
        self._opening = self._pool.submit(self._open)

    def _open(self) -> ReconcilerError | None:
        """Open each target in order, until one cannot be reached: that one's error."""
        try:
            for name, provider in self._waiting.items():
                self.providers[name] = self._stack.enter_context(provider)
        except ReconcilerError as exc:
            return exc
        return None

    def wait(self) -> ReconcilerError | None:
        """Wait until every target is open, or one could not be: its error, not raised."""
        return self._opening.result()

    def close(self) -> None:
        """Close every opened target (after the opening has finished); again is harmless."""
        self._pool.shutdown(wait=True)
        self._stack.close()

    def __enter__(self) -> "Connections":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
