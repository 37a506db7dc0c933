"""Network devices: nftables firewalls over SSH (pyinfra) and Cisco IOS routers (netmiko).

Both providers share the rule model (rules.py) and the probes (probes.py); each plans its
device from the declared rules that name it, applies the whole rule set in one step that can
never leave the device without rules, reads back, and runs every probe of its rules."""
from __future__ import annotations

import io
import secrets
import time

from ...credentials import CredentialFile
from ...desired.model import DesiredState
from ...errors import ReconcilerError
from ...inventory import NftablesTarget
from ...plan import Change, Conflict
from ..ad.apply import Outcome
from . import nftables
from .probes import ProbeResult, run_probes
from .rules import DeviceRules, device_rules


class NetworkProvider:
    """What both device kinds share: planning from the declared rules, probes after apply."""

    needs_full_read: str | None = None
    parallel = True  # devices are planned and applied concurrently

    def __init__(self, target):
        self.target = target
        self.timings: dict[str, float] = {}
        self.wanted = DeviceRules(())
        self.policy = None
        self.probe_results: list[ProbeResult] = []

    @staticmethod
    def revokes(change: Change) -> bool:
        return False  # a rule set is replaced whole, in one step

    def prefetch(self) -> None:
        """Nothing: devices are read in parallel by the plan."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass

    def plan(self, state: DesiredState, today: str, keys: frozenset | None = None,
             previous_keys: frozenset = frozenset()) -> tuple[list[Change], list[Conflict], list[str]]:
        if not state.assets_loaded:  # an incremental plan: people changed, rules did not
            return [], [], []
        self.prepare(state, today)
        started = time.perf_counter()
        changes = self.diff(self.read())
        self.timings["read and diff"] = time.perf_counter() - started
        return changes, [], []

    def prepare(self, state: DesiredState, today: str) -> None:
        """The rules this device must have today."""
        self.policy = state.security
        self.wanted = device_rules(state.security, self.target.name, today)

    def apply(self, changes: list[Change], credentials: CredentialFile, advance=lambda n: None) -> list[Outcome]:
        """The device's whole rule set is replaced in one step, so its changes succeed or fail
        together."""
        started = time.perf_counter()
        try:
            error = self.replace_rules()
        except ReconcilerError as exc:
            error = str(exc)
        outcomes = [Outcome(c) for c in changes]
        for o in outcomes:
            if error:
                o.fail(error)
            else:
                o.status = "applied"
        advance(len(outcomes))
        self.timings["rule set"] = time.perf_counter() - started
        return outcomes

    def replace_rules(self) -> str | None:
        """Put the wanted rules on the device; what went wrong, or None."""
        raise NotImplementedError

    def run_probes(self) -> None:
        if self.policy is None:
            return
        started = time.perf_counter()
        wanted = {r.name for r in self.wanted.rules}
        declared = [r for r in self.policy.rules if r.name in wanted]
        self.probe_results = run_probes(declared, self.policy, dict(self.target.probe_points))
        self.timings["probes"] = time.perf_counter() - started

    def verify(self, outcomes: list[Outcome], today: str) -> None:
        """Read back and re-diff; then every probe of the device's rules, recorded with the run."""
        started = time.perf_counter()
        try:
            remaining = {(c.kind, c.key) for c in self.diff(self.read())}
        except ReconcilerError as exc:
            for o in outcomes:
                if o.status == "applied":
                    o.error = f"could not read back to verify: {exc}"
            return
        for o in outcomes:
            if o.status == "applied":
                o.verified = (o.change.kind, o.change.key) not in remaining
                o.error = None if o.verified else "read back: the device does not show the change"
        self.timings["verification"] = time.perf_counter() - started
        self.run_probes()


class NftablesProvider(NetworkProvider):
    kind = "nftables"

    def __init__(self, target: NftablesTarget):
        super().__init__(target)
        self._state = None
        self._host = None

    def _connect(self):
        if self._host is None:
            from pyinfra.api import Config, Inventory, State
            from pyinfra.api.connect import connect_all

            data = {"ssh_user": self.target.user, "ssh_port": self.target.port, "ssh_key": self.target.ssh_key}
            if self.target.known_hosts:
                data.update(ssh_known_hosts_file=self.target.known_hosts, ssh_strict_host_key_checking="yes")
            from pyinfra.api.exceptions import PyinfraError

            inventory = Inventory(([self.target.host], data))
            state = State(inventory=inventory, config=Config())
            try:
                connect_all(state)
            except PyinfraError:
                pass  # the host is left out of the activated ones: said below
            host = inventory.get_host(self.target.host)
            if host not in state.activated_hosts:
                raise ReconcilerError(f"cannot reach the firewall {self.target.name} over SSH at "
                                      f"{self.target.user}@{self.target.host}:{self.target.port}")
            self._state, self._host = state, host
        return self._host

    def close(self) -> None:
        if self._host is not None:
            self._host.disconnect()

    def _run(self, *command: str) -> tuple[bool, str, str]:
        from pyinfra.api.command import StringCommand

        ok, output = self._connect().run_shell_command(StringCommand(*command))
        return ok, output.stdout, output.stderr

    def read(self) -> nftables.Chain:
        ok, out, err = self._run("nft", "-j", "list", "table", "inet", self.target.table)
        if not ok:
            if "No such file or directory" in err:
                return nftables.Chain(False)
            raise ReconcilerError(f"reading the firewall {self.target.name}: {err.strip()}")
        return nftables.parse_table(out, self.target.hook)

    def diff(self, actual: nftables.Chain) -> list[Change]:
        return nftables.diff_device(self.target.name, self.wanted, actual, self.target.default_policy,
                                    self.target.hook, self.target.table)

    def replace_rules(self) -> str | None:
        """The whole table, checked with `nft -c -f` and then loaded in one transaction: a
        ruleset nft refuses leaves the old one in place."""
        text = nftables.ruleset(self.target.table, self.target.hook, self.target.default_policy, self.wanted.rules)
        path = f"/tmp/reconciler-{self.target.table}-{secrets.token_hex(4)}.nft"
        if not self._connect().put_file(io.BytesIO(text.encode("utf-8")), path):
            return f"could not copy the ruleset to {self.target.name}"
        try:
            ok, _, err = self._run("nft", "-c", "-f", path)
            if not ok:
                return f"nft refused the ruleset, the old rules stay: {err.strip()}"
            ok, _, err = self._run("nft", "-f", path)
            return None if ok else f"nft could not load the ruleset, the old rules stay: {err.strip()}"
        finally:
            self._run("rm", "-f", path)


__all__ = ["NftablesProvider", "NetworkProvider"]
