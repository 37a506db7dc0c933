"""Effectiveness probes: after apply, every declared probe is a real TCP connection from the
network it names (a network namespace on this host, as the inventory's probe_points say) to
a host and port.  Through the firewall means the connection was accepted or actively refused
by the server; blocked means no answer before the timeout (the firewall dropped it)."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reconciler.desired.security import SecurityPolicy
from reconciler.i18n import lazy

TIMEOUT = 1.5  # seconds without an answer: blocked
_CONNECT = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except ConnectionRefusedError:
    pass  # the server answered: the firewall let it through
except OSError:
    sys.exit(3)
"""  # not for people: a program run with python -c


@dataclass(frozen=True)
class ProbeResult:
    rule: str
    probe: str  # "clientes-hgc -> expediente:443 expect allow"
    expected: str
    observed: str | None  # "allow" | "deny"; None when it could not run
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.observed == self.expected

    @property
    def ran(self) -> bool:
        return self.observed is not None

    def to_dict(self) -> dict:
        return {"rule": self.rule, "probe": self.probe, "expected": self.expected, "observed": self.observed,
                "passed": self.passed, "detail": self.detail or None}


def _connect(netns: str, address: str, port: int) -> tuple[str | None, str]:
    try:
        done = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", _CONNECT, address, str(port),
                               str(TIMEOUT)], capture_output=True, text=True, timeout=TIMEOUT + 10)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, lazy("could not run: {error}", error=str(exc))
    if done.returncode == 0:
        return "allow", ""
    if done.returncode == 3:
        return "deny", ""
    return None, (done.stderr.strip().splitlines() or [lazy("could not run")])[-1]


def run_probes(rules, policy: SecurityPolicy, points: dict[str, str]) -> list[ProbeResult]:
    """Every probe of the given declared rules, in parallel (a blocked one waits its timeout)."""
    jobs = []
    for rule in rules:
        for probe in rule.probes:
            netns = points.get(probe.source)
            address = policy.hosts.get(probe.host, probe.host)
            jobs.append((rule.name, probe, netns, address))

    def one(job) -> ProbeResult:
        name, probe, netns, address = job
        if netns is None:
            return ProbeResult(name, probe.describe(), probe.expect, None,
                               lazy("no probe point for {source} in the inventory", source=probe.source))
        observed, detail = _connect(netns, address, probe.port)
        return ProbeResult(name, probe.describe(), probe.expect, observed, detail)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, jobs))
