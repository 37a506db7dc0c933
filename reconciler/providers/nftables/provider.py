"""The nftables provider: one inet table on a Linux firewall, reached over SSH with pyinfra,
read as JSON, replaced whole in one checked transaction."""
from __future__ import annotations

import io
import secrets

from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import StringCommand
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import PyinfraError

from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy
from reconciler.plan import Change, Conflict
from reconciler.providers.found import HandMade
from reconciler.providers.network.device import DeviceProvider
from reconciler.providers.network.rules import DeviceRules, FirewallRule
from reconciler.providers.nftables import ruleset as nftables
from reconciler.providers.nftables.target import NftablesTarget


class NftablesProvider(DeviceProvider):
    kind = "nftables"

    def __init__(self, target: NftablesTarget):
        super().__init__(target)
        self._state = None
        self._host = None

    def _connect(self):
        if self._host is None:
            data = {"ssh_user": self.target.user, "ssh_port": self.target.port, "ssh_key": self.target.ssh_key}
            if self.target.known_hosts:
                data.update(ssh_known_hosts_file=self.target.known_hosts, ssh_strict_host_key_checking="yes")
            inventory = Inventory(([self.target.host], data))
            state = State(inventory=inventory, config=Config())
            try:
                connect_all(state)
            except PyinfraError:
                pass  # the host is left out of the activated ones: said below
            host = inventory.get_host(self.target.host)
            if host not in state.activated_hosts:
                raise ReconcilerError(_("cannot reach the firewall {name} over SSH at {user}@{host}:{port}",
                                        name=self.target.name, user=self.target.user, host=self.target.host,
                                        port=self.target.port))
            self._state, self._host = state, host
        return self._host

    def close(self) -> None:
        if self._host is not None:
            self._host.disconnect()

    def _run(self, *command: str) -> tuple[bool, str, str]:
        ok, output = self._connect().run_shell_command(StringCommand(*command))
        return ok, output.stdout, output.stderr

    def read(self) -> nftables.Chain:
        ok, out, err = self._run("nft", "-j", "list", "table", "inet", self.target.table)
        if not ok:
            if "No such file or directory" in err:  # not for people: what nft says
                return nftables.Chain(False)
            raise ReconcilerError(_("reading the firewall {name}: {error}", name=self.target.name, error=err.strip()))
        return nftables.parse_table(out, self.target.hook)

    def hand_made(self) -> list[HandMade]:
        """From the whole ruleset as `nft -j` prints it: every table, not only the reconciler's."""
        ok, out, err = self._run("nft", "-j", "list", "ruleset")
        if not ok:
            raise ReconcilerError(_("reading the firewall {name}: {error}", name=self.target.name, error=err.strip()))
        return nftables.hand_made_rules(out, self.target.table)

    def current_rules(self, actual: nftables.Chain, wanted: DeviceRules) -> tuple[dict[str, FirewallRule | None], list[str]]:
        current = {name: nftables.rule_from_expr(name, expr) for name, expr in actual.tagged().items()}
        adopted = nftables.adoptions(wanted, actual)
        declared = {r.name: r for r in wanted.rules}
        current.update({name: nftables.adopted_rule(declared[name], actual, i) for name, i in adopted.items()})
        return current, nftables.device_order(actual, adopted)

    def blocked(self, actual: nftables.Chain) -> list[Conflict]:
        if not actual.unusable(self.target.hook):
            return []
        kind, hook, priority = actual.form
        form = f"type {kind} hook {hook} priority {priority}" if hook else lazy("a regular chain")  # not for people: nft's words
        return [Conflict(self.target.name, self.target.hook, lazy("table inet {table}, chain {hook}",
                                                                  table=self.target.table, hook=self.target.hook),
                         lazy("chain {chain} of table inet {table} is {form}, not a filter chain on hook {hook} at "
                              "priority 0: nft cannot refill it as the reconciler's; nothing is planned for this "
                              "firewall. Point the inventory at another table, or remove or rename that chain",
                              chain=self.target.hook, table=self.target.table, hook=self.target.hook,
                              form=form))]

    def notes(self, actual: nftables.Chain) -> list:
        notes = [lazy("target {target}: chain {chain} of table inet {table} holds rules tagged as the reconciler's, "
                      "but the inventory's chain is {hook}: left as it is (a chain of an earlier hook, or another "
                      "target's); remove it by hand if it is no longer used", target=self.target.name, chain=name,
                      table=self.target.table, hook=self.target.hook) for name in actual.stale]
        if not actual.others:
            return notes
        return notes + [lazy("target {target}: table inet {table} also holds {what}; the reconciler refills only chain {hook} "
                     "and leaves them as they are", target=self.target.name, table=self.target.table,
                     what=", ".join(actual.others), hook=self.target.hook)]

    def diff(self, wanted: DeviceRules, actual: nftables.Chain) -> list[Change]:
        return nftables.diff_device(self.target.name, wanted, actual, self.target.default_policy,
                                    self.target.hook, self.target.table)

    def replace_rules(self, wanted: DeviceRules) -> str | None:
        """The chain, checked with `nft -c -f` and then loaded in one transaction: a ruleset nft
        refuses leaves the old one in place."""
        text = nftables.ruleset(self.target.table, self.target.hook, self.target.default_policy, wanted.rules)
        path = f"/tmp/reconciler-{self.target.table}-{secrets.token_hex(4)}.nft"
        if not self._connect().put_file(io.BytesIO(text.encode("utf-8")), path):
            return lazy("could not copy the ruleset to {name}", name=self.target.name)
        try:
            ok, _, err = self._run("nft", "-c", "-f", path)
            if not ok:
                return lazy("nft refused the ruleset, the old rules stay: {error}", error=err.strip())
            ok, _, err = self._run("nft", "-f", path)
            return None if ok else lazy("nft could not load the ruleset, the old rules stay: {error}",
                                        error=err.strip())
        finally:
            self._run("rm", "-f", path)
