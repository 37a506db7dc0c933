"""desired_state/security_rules/: the log of security measures (SESVER 002, "Aplicación de
Medidas de Seguridad para la Red de Voz y Datos"), loaded and validated.

    desired_state/security_rules/networks.yaml   named networks, hosts and services, declared once
    desired_state/security_rules/<name>.yaml      `rules:` in order; files are read in name order

Checks beyond the schema, each with file, line and field: unknown networks, hosts, services
or probe points; a rule name used twice; a service together with protocol or ports; ports
without tcp or udp; a rule from any to any unless marked `deliberate: true`; and a rule fully
shadowed by an earlier one on the same device (it could never match).  Expired rules are not
errors: the plan removes them.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from reconciler.desired.checks import FileCheck, open_file, shown
from reconciler.desired.files import DesiredFiles
from reconciler.desired.model import Solicitud, Source, solicitud_of
from reconciler.i18n import _, zone

DIRECTORY = "security_rules"
NETWORKS = f"{DIRECTORY}/networks.yaml"
ANY = "any"
EVERYWHERE = ipaddress.ip_network("0.0.0.0/0")


@dataclass(frozen=True)
class Probe:
    source: str  # a network or host name: where the connection starts
    host: str  # a host name or an address
    port: int
    expect: str  # "allow" | "deny"

    def describe(self) -> str:
        return f"{self.source} -> {self.host}:{self.port} expect {self.expect}"


@dataclass(frozen=True)
class SecurityRule:
    name: str
    source: str  # network or host name, or "any"
    destination: str
    protocol: str  # "tcp" | "udp" | "any"
    ports: tuple[tuple[int, int], ...]  # ranges, sorted; () = every port
    action: str  # "allow" | "deny"
    devices: tuple[str, ...]
    justification: str
    unit: str
    solicitud: Solicitud
    origin: Source = field(compare=False)
    expires: str | None = None
    deliberate: bool = False
    probes: tuple[Probe, ...] = ()
    service: str | None = None

    def expired(self, today: str) -> bool:
        return self.expires is not None and self.expires < today


@dataclass(frozen=True)
class SecurityPolicy:
    networks: Mapping[str, str]  # name -> CIDR (normalised)
    hosts: Mapping[str, str]  # name -> address
    rules: tuple[SecurityRule, ...]  # in evaluation order

    def address(self, name: str) -> str | None:
        """The CIDR or address a rule endpoint names; None for any."""
        if name == ANY:
            return None
        return self.networks.get(name) or self.hosts.get(name)

    def network(self, name: str) -> ipaddress.IPv4Network:
        found = self.address(name)
        return ipaddress.ip_network(found, strict=False) if found else EVERYWHERE


def _ranges(raw: list) -> tuple[tuple[int, int], ...] | str:
    out = []
    for item in raw:
        if isinstance(item, float) or isinstance(item, bool):  # JSON Schema takes 80.0 for an integer
            return _("{value!r} is not a port: write a whole number, like 80", value=item)
        if isinstance(item, int):
            out.append((item, item))
            continue
        low, high = (int(x) for x in item.split("-"))
        if not 1 <= low <= high <= 65535:
            return _("{value!r} is not a port range (low-high, 1 to 65535)", value=item)
        out.append((low, high))
    return tuple(sorted(out))


def _entries(data: dict, section: str) -> list[tuple]:
    """A section's named entries; none when it is not a mapping (the schema said so)."""
    entries = data.get(section)
    return list(entries.items()) if isinstance(entries, dict) else []


def _read_catalog(files: DesiredFiles, checks: list[FileCheck]) -> tuple[dict, dict, dict, FileCheck | None]:
    check, data, usable = open_file(files, NETWORKS, checks)
    if not usable or data is None:
        return {}, {}, {}, None
    bad = check.validate(data, "security_networks")
    if not isinstance(data, dict):
        return {}, {}, {}, check
    networks, hosts, services = {}, {}, {}
    for name, raw in _entries(data, "networks"):
        if ("networks", name) in bad:
            continue
        try:
            networks[name] = str(ipaddress.ip_network(raw["cidr"], strict=False))
        except ValueError as exc:
            check.add(("networks", name, "cidr"), _("{value!r} is not a network: {error}", value=raw["cidr"], error=exc))
    for name, raw in _entries(data, "hosts"):
        if ("hosts", name) in bad:
            continue
        try:
            hosts[name] = str(ipaddress.ip_address(raw["address"]))
        except ValueError as exc:
            check.add(("hosts", name, "address"), _("{value!r} is not an address: {error}", value=raw["address"],
                                                    error=exc))
    for name, raw in _entries(data, "services"):
        if ("services", name) in bad:
            continue
        ranges = _ranges(raw["ports"])
        if isinstance(ranges, str):
            check.add(("services", name, "ports"), ranges)
        else:
            services[name] = (raw["protocol"], ranges)
    for name in set(networks) & set(hosts):
        check.add(("hosts", name), _("{name!r} is also the name of a network", name=name))
    return networks, hosts, services, check


def _everywhere(end: str, networks: dict) -> bool:
    """`any`, or a network that covers every address (0.0.0.0/0, however it is written)."""
    return end == ANY or (end in networks and ipaddress.ip_network(networks[end]).prefixlen == 0)


def _rule(item: dict, where: tuple, check: FileCheck, names: set, services: dict,
          networks: dict) -> SecurityRule | None:
    """A rule, or None after reporting why it cannot be one."""
    ok = True
    for end in ("source", "destination"):
        if item[end] != ANY and item[end] not in names:
            # shown(): the schema bounds no endpoint's length, and a message never echoes a value whole
            check.add(where + (end,), _("unknown network or host {name} (declared in desired_state/{file})",
                                        name=shown(item[end]), file=NETWORKS))
            ok = False
    protocol, ports = item.get("protocol", ANY), ()
    if "service" in item:
        if "protocol" in item or "ports" in item:
            check.add(where + ("service",), _("give a service, or protocol and ports, not both"))
            ok = False
        elif item["service"] not in services:
            check.add(where + ("service",), _("unknown service {service!r} (declared in desired_state/{file})",
                                              service=item["service"], file=NETWORKS))
            ok = False
        else:
            protocol, ports = services[item["service"]]
    elif "ports" in item:
        ranges = _ranges(item["ports"])
        if isinstance(ranges, str):
            check.add(where + ("ports",), ranges)
            ok = False
        elif protocol == ANY:
            check.add(where + ("ports",), _("ports need protocol: tcp or udp"))
            ok = False
        else:
            ports = ranges
    probes = []
    for p_index, raw in enumerate(item.get("probes") or ()):
        host, port = raw["to"].rsplit(":", 1)
        if raw["from"] not in names:
            check.add(where + ("probes", p_index, "from"), _("unknown network or host {name}", name=shown(raw["from"])))
            ok = False
        if host not in names and not _is_address(host):
            check.add(where + ("probes", p_index, "to"), _("unknown host {host}: a host name or an address",
                                                           host=shown(host)))
            ok = False
        if not 1 <= int(port) <= 65535:
            check.add(where + ("probes", p_index, "to"), _("port {port} is not a port (1 to 65535)", port=int(port)))
            ok = False
        probes.append(Probe(raw["from"], host, int(port), raw["expect"]))
    if _everywhere(item["source"], networks) and _everywhere(item["destination"], networks) \
            and not item.get("deliberate"):
        check.add(where + ("source",), _("a rule from any to any (or a network of /0) is refused unless marked "
                                         "deliberate: true"))
        ok = False
    if not ok:
        return None
    return SecurityRule(
        name=item["name"], source=item["source"], destination=item["destination"], protocol=protocol, ports=ports,
        action=item["action"], devices=tuple(item["devices"]), justification=item["justification"],
        unit=item["unit"], solicitud=solicitud_of(item["solicitud"]), origin=Source(check.display, None, where),
        expires=item.get("expires"), deliberate=bool(item.get("deliberate")), probes=tuple(probes),
        service=item.get("service"))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def covers(earlier: SecurityRule, later: SecurityRule, policy: SecurityPolicy) -> bool:
    """Does `earlier` match every packet `later` matches (so `later` never applies)?"""
    if not (policy.network(later.source).subnet_of(policy.network(earlier.source))
            and policy.network(later.destination).subnet_of(policy.network(earlier.destination))):
        return False
    return _covers_traffic(earlier, later)


def _covers_traffic(earlier: SecurityRule, later: SecurityRule) -> bool:
    if earlier.protocol != ANY and earlier.protocol != later.protocol:
        return False
    if not earlier.ports:
        return True
    if not later.ports:
        return False
    return all(any(lo <= a and b <= hi for lo, hi in earlier.ports) for a, b in later.ports)


_FULL = (1 << 32) - 1


def _shadowed(policy: SecurityPolicy, checks: dict[str, FileCheck], today: str) -> None:
    """Earlier rules are indexed by their source network, so each rule is compared only with
    the earlier ones whose source contains its own (at most 33 look-ups), not with all of
    them: thousands of rules are checked in milliseconds, not minutes."""
    nets = {}

    def net(name: str) -> ipaddress.IPv4Network:
        if name not in nets:
            nets[name] = policy.network(name)
        return nets[name]

    index: dict[str, dict[tuple[int, int], list]] = {}
    for order, rule in enumerate(policy.rules):
        if rule.expired(today):
            continue
        src, dst = net(rule.source), net(rule.destination)
        address = int(src.network_address)
        for device in rule.devices:
            by_source = index.setdefault(device, {})
            candidates = []
            for length in range(src.prefixlen + 1):
                mask = _FULL ^ ((1 << (32 - length)) - 1)
                candidates += by_source.get((length, address & mask), ())
            for _order, earlier, earlier_dst in sorted(candidates, key=lambda c: c[0]):
                if dst.subnet_of(earlier_dst) and _covers_traffic(earlier, rule):
                    check = checks[rule.origin.file]
                    first = checks[earlier.origin.file]
                    at = f"{first.display}:{first.line(earlier.origin.path)}"
                    check.add(rule.origin.path + ("name",),
                              _("rule {rule} can never match on {device}: the earlier rule {earlier} ({where}) "
                                "already matches all its traffic", rule=rule.name, device=device,
                                earlier=earlier.name, where=at))
                    break
            by_source.setdefault((src.prefixlen, address), []).append((order, rule, dst))


def read_security(files: DesiredFiles, checks: list[FileCheck], devices: frozenset[str] | None = None,
                  units: dict | None = None,
                  today: str | None = None) -> SecurityPolicy | None:
    """The security policy, or None when desired_state/security_rules/ declares nothing."""
    names = [n for n in files.listing(DIRECTORY, (".yaml", ".yml")) if n != NETWORKS]
    networks, hosts, services, catalog = _read_catalog(files, checks)
    if catalog is None and not names:
        return None
    known = set(networks) | set(hosts)
    rules, by_name, rule_checks = [], {}, {}
    for rel in sorted(names):
        check, data, usable = open_file(files, rel, checks)
        if not usable or data is None:
            continue
        rule_checks[check.display] = check
        bad = check.validate(data, "security_rules")
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            continue
        for index, item in enumerate(data["rules"]):
            where = ("rules", index)
            if where in bad:
                continue
            if item["name"] in by_name:
                check.add(where + ("name",), _("rule name {name!r} is already used at {where}", name=item["name"],
                                               where=by_name[item["name"]]))
                continue
            by_name[item["name"]] = f"{check.display}:{check.line(where)}"
            if units and item["unit"] not in units:
                check.add(where + ("unit",), _("unknown unit {unit!r} (declared units are in desired_state/units.yaml)",
                                               unit=item["unit"]))
            for d_index, device in enumerate(item["devices"]):
                if devices is not None and device not in devices:
                    if devices:
                        message = _("no firewall or router {device} in the inventory (it has {devices})",
                                    device=shown(device), devices=", ".join(sorted(devices)))
                    else:
                        message = _("no firewall or router {device} in the inventory (it has none)",
                                    device=shown(device))
                    check.add(where + ("devices", d_index), message)
            if (rule := _rule(item, where, check, known, services, networks)) is not None:
                rules.append(rule)
    policy = SecurityPolicy(MappingProxyType(networks), MappingProxyType(hosts), tuple(rules))
    _shadowed(policy, rule_checks, today or dt.datetime.now(zone()).date().isoformat())
    return policy
