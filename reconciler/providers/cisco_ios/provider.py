"""The Cisco IOS provider: the rules of acl.py on a router reached with netmiko."""
from __future__ import annotations

import os

import paramiko
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoBaseException, NetmikoTimeoutException

from reconciler.errors import ReconcilerError
from reconciler.i18n import _, lazy
from reconciler.plan import Change
from reconciler.providers.cisco_ios import acl as acls
from reconciler.providers.cisco_ios.acl import DEFAULT_POLICY, RouterState, diff_router, parse_running_config
from reconciler.providers.cisco_ios.target import CiscoTarget
from reconciler.providers.found import HandMade
from reconciler.providers.network.device import DeviceProvider
from reconciler.providers.network.rules import DeviceRules, FirewallRule, awaiting_adoption


def _guarded(t: CiscoTarget) -> None:
    """As ssh itself refuses them: a known_hosts others may write (anyone could pin their own
    key there), a private key others may read."""
    if os.stat(t.known_hosts).st_mode & 0o022:
        raise ReconcilerError(_("known_hosts file {path} of router {name} is writable by others: anyone could pin "
                                "a key of theirs there; chmod go-w it", path=t.known_hosts, name=t.name))
    if t.ssh_key and os.path.exists(t.ssh_key) and os.stat(t.ssh_key).st_mode & 0o077:
        raise ReconcilerError(_("the private key {path} of router {name} is readable by others; chmod 600 it",
                                path=t.ssh_key, name=t.name))


def _caused_by(exc: BaseException | None, kind: type) -> bool:
    while exc is not None:
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _why(exc: Exception, target: CiscoTarget) -> str:
    """What went wrong, in words that name no secret; an unknown host key says where to pin it."""
    if "not found in known_hosts" in str(exc):  # not for people: paramiko's RejectPolicy
        return _("its host key is not in {path}", path=target.known_hosts)
    return type(exc).__name__


class CiscoProvider(DeviceProvider):
    kind = "cisco_ios"

    def __init__(self, target: CiscoTarget):
        super().__init__(target)
        self._conn = None
        self._actual: RouterState | None = None

    def _connect(self):
        if self._conn is None:
            t = self.target
            if not os.path.isfile(t.known_hosts):  # netmiko would quietly load no key, then refuse every host
                raise ReconcilerError(_("known_hosts file {path} of router {name} does not exist: its host key "
                                        "must be pinned there (ssh-keyscan, checked against the console)",
                                        path=t.known_hosts, name=t.name))
            _guarded(t)
            try:
                # The inventory's key only (never ~/.ssh's, never an agent), and no empty password
                # tried after it: a router that locks out after failures spends none on us.
                key = paramiko.PKey.from_path(t.ssh_key) if t.ssh_key else None
                self._conn = ConnectHandler(
                    device_type="cisco_ios", host=t.host, port=t.port, username=t.username,
                    password=t.password.read() if t.password else None, pkey=key, use_keys=False,
                    allow_agent=False, ssh_strict=True, system_host_keys=False,
                    alt_host_keys=True, alt_key_file=t.known_hosts)
            except (NetmikoAuthenticationException, NetmikoTimeoutException, paramiko.SSHException, OSError,
                    ValueError, paramiko.hostkeys.InvalidHostKey) as exc:  # a key or known_hosts line it cannot read
                if _caused_by(exc, paramiko.BadHostKeyException):  # netmiko wraps it in a timeout
                    raise ReconcilerError(_("the router {name} at {host}:{port} presented a host key other than the "
                                            "one in {path}: refused (a replaced router, or someone in between)",
                                            name=t.name, host=t.host, port=t.port, path=t.known_hosts)) from None
                raise ReconcilerError(_("cannot reach the router {name} at {host}:{port}: {error}",
                                        name=t.name, host=t.host, port=t.port, error=_why(exc, t))) from None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()

    def _session(self, work):
        """Run `work(connection)`; a lost session or a timeout becomes a message, not a traceback."""
        try:
            return work(self._connect())
        except (NetmikoBaseException, OSError, EOFError) as exc:
            raise ReconcilerError(_("the router {name} ({host}:{port}) stopped answering: {error}",
                                    name=self.target.name, host=self.target.host, port=self.target.port,
                                    error=type(exc).__name__)) from None

    def read(self) -> RouterState:
        text = self._session(lambda conn: conn.send_command("show running-config"))  # not for people
        self._actual = parse_running_config(text, self.target.interface, self.target.direction, self.target.acl)
        return self._actual

    def hand_made(self) -> list[HandMade]:
        router = self.read()
        return acls.hand_made_acl_entries(router.lists, router.own)

    def current_rules(self, actual: RouterState, wanted: DeviceRules) -> tuple[dict[str, FirewallRule | None], list[str]]:
        current = {name: acls.rule_from_entries(name, lines) for name, lines in actual.tagged().items()}
        adopted = acls.adoptions(wanted, actual)
        declared = {r.name: r for r in wanted.rules}
        current.update({name: awaiting_adoption(declared[name], None) for name in adopted})
        return current, acls.device_order(actual, adopted)

    def diff(self, wanted: DeviceRules, actual: RouterState) -> list[Change]:
        return diff_router(self.target, wanted, actual, DEFAULT_POLICY)

    def replace_rules(self, wanted: DeviceRules) -> str | None:
        """A new ACL generation, the interface moved to it, the old one removed."""
        _, commands = acls.swap_commands(self.target, self.read(), acls.acl(wanted.rules, DEFAULT_POLICY))
        output = self._session(lambda conn: conn.send_config_set(commands))
        refused = [line.strip() for line in output.splitlines() if line.lstrip().startswith("%")]
        return lazy("the router refused the configuration: {error}", error=refused[0]) if refused else None
