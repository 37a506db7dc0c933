"""Benchmark the network providers on real nftables over SSH (needs ci/lab/up).

    .venv/bin/python bench/bench_network.py [RULES] [FIREWALLS]     (default 2000 and 20)

1. RULES rules on one device, the lab firewall (rc-fw, over SSH with pyinfra), in a table of
   their own with an accept policy so the lab's traffic is untouched.  Timed end to end with
   the engine, as `reconciler plan` and `apply` run them (load and validate the YAML, read the
   device over SSH, diff, provenance): the first plan (all altas), the apply (one checked,
   atomic table load), the no-change plan, and one rule changed (plan and apply).
2. FIREWALLS firewalls, each its own network namespace with its own sshd on a management link,
   every one with the same 100 rules: plan + apply of all of them concurrently (as the engine
   does) and one after another.
The namespaces and tables it creates are removed at the end.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from labmark import lab_used  # noqa: E402

from gitrepo import land  # noqa: E402

from reconciler.run.engine import Run  # noqa: E402
from reconciler.providers.network.device import DeviceProvider  # noqa: E402
from reconciler.desired.source import at_ref  # noqa: E402

NET = Path("/var/lib/reconciler-lab/net")
SOL = {"folio": "SSM/STI/2026/09000", "date": "2026-11-01", "justification": "Benchmark",
       "requested_by": "Departamento de Tecnologías de la Información"}


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def desired(root: Path, rules: int, devices: list[str]) -> None:
    ds = root / "desired_state"
    (ds / "security_rules").mkdir(parents=True, exist_ok=True)
    for name in ("units.yaml", "entitlements.yaml"):
        shutil.copy(ROOT / "desired_state" / name, ds / name)
    networks = {"networks": {"servidores": {"cidr": "10.10.2.0/24"}},
                "hosts": {f"pc-{i:05d}": {"address": f"10.{20 + i // 62500}.{i // 250 % 250}.{i % 250 + 1}"}
                          for i in range(rules)}}
    networks["hosts"]["expediente"] = {"address": "10.10.2.2"}
    (ds / "security_rules" / "networks.yaml").write_text(yaml.safe_dump(networks))
    items = [{"name": f"r{i:05d}", "source": f"pc-{i:05d}", "destination": "expediente", "protocol": "tcp",
              "ports": [1000 + i % 60000], "action": "allow" if i % 3 else "deny", "devices": devices,
              "unit": "HG-CUERNAVACA", "justification": "Benchmark", "solicitud": SOL} for i in range(rules)]
    (ds / "security_rules" / "bench.yaml").write_text(yaml.safe_dump({"rules": items}, sort_keys=False))


def target(name: str, host: str, audit: Path, known_hosts: Path) -> dict:
    return {"kind": "nftables", "host": host, "user": "root", "ssh_key": str(NET / "id_ed25519"),
            "known_hosts": str(known_hosts), "table": "bench", "hook": "forward",
            "default_policy": "accept", "audit_dir": str(audit)}


def timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def one_device(rules: int, tmp: Path) -> dict:
    repo = tmp / "one"
    desired(repo, rules, ["fw-bench"])
    land(repo, f"{rules} reglas")
    inventory = tmp / "one.yaml"
    inventory.write_text(yaml.safe_dump({"targets": {"fw-bench": target("fw-bench", "192.168.250.2", tmp / "audit",
                                                                        NET / "known_hosts")}}))
    out = {}
    with Run(at_ref(repo), inventory) as run:
        out["first_plan_s"], plan = timed(run.plan)
        out["apply_s"], report = timed(lambda: run.apply(plan))
        assert report.ok and len(report.outcomes) == rules + 1, [o.error for o in report.failed][:3]
    with Run(at_ref(repo), inventory) as run:
        out["no_change_plan_s"], plan = timed(run.plan)
        assert plan.empty, plan.summary()
    items = yaml.safe_load((repo / "desired_state/security_rules/bench.yaml").read_text())
    items["rules"][rules // 2]["ports"] = [65000]
    (repo / "desired_state/security_rules/bench.yaml").write_text(yaml.safe_dump(items, sort_keys=False))
    land(repo, "una regla cambia")
    with Run(at_ref(repo), inventory) as run:
        out["one_change_plan_s"], plan = timed(run.plan)
        assert len(plan.changes) == 1
        out["one_change_apply_s"], report = timed(lambda: run.apply(plan))
        assert report.ok
    sh("ip", "netns", "exec", "rc-fw", "nft", "delete", "table", "inet", "bench")
    return out


def make_firewalls(count: int, tmp: Path) -> list[str]:
    """count namespaces, each a firewall with its own sshd on 192.168.251.(4i+2)."""
    hosts = []
    known = (NET / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    lines = []
    for i in range(1, count + 1):
        ns, host = f"rc-bfw{i:02d}", f"192.168.251.{4 * i + 2}"
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        subprocess.run(["ip", "link", "del", f"rcb{i}h"], capture_output=True)
        sh("ip", "link", "add", f"rcb{i}h", "type", "veth", "peer", "name", f"rcb{i}f")
        sh("ip", "link", "set", f"rcb{i}f", "netns", ns)
        sh("ip", "addr", "add", f"192.168.251.{4 * i + 1}/30", "dev", f"rcb{i}h")
        sh("ip", "link", "set", f"rcb{i}h", "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{host}/30", "dev", f"rcb{i}f")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", f"rcb{i}f", "up")
        config = (NET / "sshd_config").read_text().replace("ListenAddress 192.168.250.2", f"ListenAddress {host}")
        config = config.replace(f"PidFile {NET}/sshd.pid", f"PidFile {tmp}/sshd-{i}.pid")
        (tmp / f"sshd-{i}.conf").write_text(config)
        sh("ip", "netns", "exec", ns, "/usr/sbin/sshd", "-f", str(tmp / f"sshd-{i}.conf"))
        lines.append(f"{host} {known[0]} {known[1]}\n")
        hosts.append(host)
    (tmp / "known_hosts_many").write_text("".join(lines))
    for host in hosts:
        for _ in range(40):
            if subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/{host}/22"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
    return hosts


def remove_firewalls(count: int, tmp: Path) -> None:
    for i in range(1, count + 1):
        pid = tmp / f"sshd-{i}.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], capture_output=True)
        subprocess.run(["ip", "netns", "del", f"rc-bfw{i:02d}"], capture_output=True)
        subprocess.run(["ip", "link", "del", f"rcb{i}h"], capture_output=True)


def many_devices(count: int, tmp: Path) -> dict:
    hosts = make_firewalls(count, tmp)
    try:
        names = [f"fwb{i:02d}" for i in range(1, count + 1)]
        repo = tmp / "many"
        desired(repo, 100, names)
        land(repo, "100 reglas en cada cortafuegos")
        inventory = tmp / "many.yaml"
        known = tmp / "known_hosts_many"
        inventory.write_text(yaml.safe_dump({"targets": {n: target(n, h, tmp / "audit", known)
                                                         for n, h in zip(names, hosts)}}))
        out = {}
        for mode, parallel in (("parallel", True), ("one_after_another", False)):
            DeviceProvider.parallel = parallel
            for i in range(1, count + 1):
                subprocess.run(["ip", "netns", "exec", f"rc-bfw{i:02d}", "nft", "delete", "table", "inet", "bench"],
                               capture_output=True)
            started = time.perf_counter()
            with Run(at_ref(repo), inventory) as run:
                out[f"{mode}_plan_s"], plan = timed(run.plan)
                out[f"{mode}_apply_s"], report = timed(lambda: run.apply(plan))
            out[f"{mode}_s"] = time.perf_counter() - started
            assert report.ok and len(report.outcomes) == count * 101, [o.error for o in report.failed][:3]
        return out
    finally:
        DeviceProvider.parallel = True
        remove_firewalls(count, tmp)


def main() -> None:
    lab_used("bench/bench_network.py")  # ci/demo provisions a new lab after this
    rules = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    firewalls = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one = one_device(rules, tmp)
        many = many_devices(firewalls, tmp)
    result = {"rules": rules, **{k: round(v, 2) for k, v in one.items()}, "firewalls": firewalls,
              **{k: round(v, 2) for k, v in many.items()},
              "speedup": round(many["one_after_another_s"] / many["parallel_s"], 1)}
    print(f"{rules} rules on one nftables firewall over SSH (engine, end to end):")
    print(f"  first plan (all altas)        {result['first_plan_s']:.2f} s")
    print(f"  apply (checked, one table load, read back)  {result['apply_s']:.2f} s")
    print(f"  plan with nothing to change   {result['no_change_plan_s']:.2f} s")
    print(f"  one rule changed: plan {result['one_change_plan_s']:.2f} s, apply {result['one_change_apply_s']:.2f} s")
    print(f"{firewalls} namespace firewalls, 100 rules each, plan + apply:")
    for mode, label in (("parallel", "in parallel      "), ("one_after_another", "one after another")):
        print(f"  {label}  {result[mode + '_s']:.2f} s  (plan {result[mode + '_plan_s']:.2f} s, "
              f"apply {result[mode + '_apply_s']:.2f} s)")
    print(f"  speedup {result['speedup']}x")
    (ROOT / "bench" / "results" / "network.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
