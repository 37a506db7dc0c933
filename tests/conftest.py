"""Shared fixtures: small desired states on disk, and sandboxes in the lab's real Samba AD DC.

Lab tests need `ci/lab/up` (the README's test command runs it).  Each test gets its own OU
tree, deleted afterwards, so tests never see each other's accounts.
"""
from __future__ import annotations

import copy
import io
import secrets
import ssl
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from ldap3 import NONE, SUBTREE, Connection, Server, Tls

from reconciler.cli import main
from reconciler.desired.curp import check_digit

LAB_DIR = Path("/var/lib/reconciler-lab")
CURP = "NUOJ850412HMSXBS0" + str(check_digit("NUOJ850412HMSXBS0"))
BASE_DN = "DC=salud,DC=lab"

UNITS = {
    "HG-CUERNAVACA": {"name": "Hospital General de Cuernavaca", "kind": "hospital", "clues": "MSSSA000011"},
    "CS-JIUTEPEC": {"name": "Centro de Salud Jiutepec", "kind": "centro_de_salud", "clues": "MSSSA001230"},
    "OC-DGPE": {"name": "Oficinas Centrales, Dirección General de Planeación", "kind": "oficina_central",
                "ou": "Oficinas Centrales, DGPE"},
}
ENTITLEMENTS = {
    "expediente_electronico": {"description": "Expediente clínico electrónico SIEMPRE", "group": "GG-SIEMPRE-Usuarios"},
    "internet": {"description": "Internet institucional", "group": "GG-Internet"},
    "vpn": {"description": "VPN", "group": "GG-VPN-Remoto", "privileged": True},
}


def person(key: str = "SSM-000001", **overrides) -> dict:
    base = {
        "employee_key": key, "given_names": "José", "first_surname": "Ñúñez", "second_surname": "O'Brien",
        "curp": CURP, "title": "Médico General", "direction": "Dirección de Atención Médica",
        "subdirection": "Subdirección de Hospitales", "department": "Urgencias", "phone": "777 311 2210",
        "extension": "424", "status": "activo", "entitlements": ["expediente_electronico", "internet"],
        "solicitud": {"folio": f"SSM/STI/2026/{key[-5:]}", "date": "2026-10-05",
                      "justification": "Alta por nuevo ingreso", "requested_by": "Dra. Ana Lucía Ordóñez Peña"},
    }
    base.update(overrides)
    return base


class DesiredRepo:
    """A repository directory holding desired_state/ written from Python values."""

    def __init__(self, root: Path):
        self.root = root
        self.users: dict[str, list[dict]] = {}
        self.units = copy.deepcopy(UNITS)
        self.entitlements = copy.deepcopy(ENTITLEMENTS)

    def add(self, unit: str, *people: dict) -> "DesiredRepo":
        self.users.setdefault(unit, []).extend(people)
        return self

    def find(self, key: str) -> dict:
        return next(p for people in self.users.values() for p in people if p["employee_key"] == key)

    def move(self, key: str, unit: str) -> None:
        found = self.find(key)
        for people in self.users.values():
            if found in people:
                people.remove(found)
        self.add(unit, found)

    def remove(self, key: str) -> None:
        for people in self.users.values():
            people[:] = [p for p in people if p["employee_key"] != key]

    def write(self) -> Path:
        ds = self.root / "desired_state"
        users = ds / "users"
        users.mkdir(parents=True, exist_ok=True)
        for old in users.glob("*.yaml"):
            old.unlink()
        dump = dict(allow_unicode=True, sort_keys=False)
        (ds / "units.yaml").write_text(yaml.safe_dump({"units": self.units}, **dump), encoding="utf-8")
        (ds / "entitlements.yaml").write_text(yaml.safe_dump({"entitlements": self.entitlements}, **dump),
                                              encoding="utf-8")
        for unit, people in self.users.items():
            (users / f"{unit.lower()}.yaml").write_text(
                yaml.safe_dump({"unit": unit, "people": people}, **dump), encoding="utf-8")
        return ds


@pytest.fixture
def repo(tmp_path) -> DesiredRepo:
    return DesiredRepo(tmp_path / "repo")


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--no-color", *argv])
    return code, out.getvalue(), err.getvalue()


# -- the lab ---------------------------------------------------------------------------

def lab_connection() -> Connection:
    if not (LAB_DIR / "bind.pw").exists():
        pytest.fail("the lab is not provisioned: run ci/lab/up (the README's test command does)")
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(LAB_DIR / "ca.pem"))
    server = Server("127.0.0.1", port=636, use_ssl=True, tls=tls, get_info=NONE)
    password = (LAB_DIR / "bind.pw").read_text()
    try:
        return Connection(server, user="Administrator@SALUD.LAB", password=password, auto_bind=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means the lab is down
        pytest.fail(f"the lab's Samba AD DC is not answering ({exc}): run ci/lab/up")


TREE_DELETE = ("1.2.840.113556.1.4.805", True, None)


class Sandbox:
    """A private OU tree in the lab, an inventory pointing at it, and a desired repository."""

    def __init__(self, conn: Connection, repo: DesiredRepo, tmp: Path):
        self.conn, self.repo = conn, repo
        self.root = f"OU=t-{secrets.token_hex(4)},{BASE_DN}"
        self.people_ou = f"OU=Personal,{self.root}"
        self.groups_ou = f"OU=Grupos,{self.root}"
        self.bajas_ou = f"OU=Bajas,{self.root}"
        # Group names are unique in the whole domain: each sandbox gets its own.
        self.suffix = self.root[5:13]
        for ent in repo.entitlements.values():
            ent["group"] = f"{ent['group']}-{self.suffix}"
        self.credentials_dir = tmp / "credentials"
        self.journal_dir = tmp / "journal"
        self.inventory = tmp / "inventory.yaml"
        self.write_inventory()

    def write_inventory(self, max_bajas: int = 25, **overrides) -> None:
        target = {
            "kind": "active_directory", "host": "127.0.0.1", "port": 636, "base_dn": BASE_DN,
            "upn_suffix": "salud.lab",
            "ous": {"people": self.people_ou, "groups": self.groups_ou, "bajas": self.bajas_ou},
            "bind_dn": "Administrator@SALUD.LAB", "bind_password": {"file": str(LAB_DIR / "bind.pw")},
            "tls": {"ca_file": str(LAB_DIR / "ca.pem")}, "max_bajas": max_bajas,
            "credentials_dir": str(self.credentials_dir), "journal_dir": str(self.journal_dir),
        }
        target.update(overrides)
        self.inventory.write_text(yaml.safe_dump({"targets": {"ad-test": target}}, allow_unicode=True))

    def cli(self, command: str, *args: str) -> tuple[int, str, str]:
        self.repo.write()
        extra = ["--auto-approve"] if command == "apply" else []
        return run_cli("--repo", str(self.repo.root), command, "--inventory", str(self.inventory), *extra, *args)

    def apply(self, *args: str) -> str:
        code, out, err = self.cli("apply", *args)
        assert code == 0, f"apply failed ({code}):\n{out}\n{err}"
        return out

    def plan_json(self) -> dict:
        import json

        code, out, err = self.cli("plan", "--output", "json")
        assert code in (0, 2), err
        return json.loads(out)

    def assert_converged(self) -> None:
        code, out, err = self.cli("plan")
        assert code == 0, f"expected nothing to do, got:\n{out}\n{err}"
        assert "No changes." in out

    def account(self, sam: str) -> dict | None:
        """An account anywhere in the domain, with the attributes the tests look at."""
        self.conn.search(BASE_DN, f"(sAMAccountName={sam})", SUBTREE,
                         attributes=["*", "memberOf", "userAccountControl", "pwdLastSet"])
        if not self.conn.response or self.conn.response[0].get("type") != "searchResEntry":
            return None
        entry = self.conn.response[0]
        attrs = {k: (v[0] if isinstance(v, list) and len(v) == 1 and k != "memberOf" else v)
                 for k, v in entry["attributes"].items()}
        attrs["dn"] = entry["dn"]
        return attrs

    def groups_of(self, sam: str) -> set[str]:
        account = self.account(sam)
        return {g.split(",")[0][3:].removesuffix(f"-{self.suffix}") for g in account.get("memberOf", [])}

    def group(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    def cleanup(self) -> None:
        self.conn.delete(self.root, controls=[TREE_DELETE])


LAB_SCRIPTS = Path(__file__).resolve().parent.parent / "ci" / "lab"


def fresh_lab() -> None:
    """The lab is disposable, and the demo's or the benchmark's people hold the same names as
    the tests' (jnunezo...): the suite starts from a newly provisioned domain (about 6 s,
    much faster than Samba deleting thousands of objects)."""
    for script, args in (("down", ["--purge"]), ("up", [])):
        proc = subprocess.run([str(LAB_SCRIPTS / script), *args], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"ci/lab/{script} failed:\n{proc.stderr}")


@pytest.fixture(scope="session")
def lab_conn():
    fresh_lab()
    conn = lab_connection()
    yield conn
    conn.unbind()


@pytest.fixture
def sandbox(lab_conn, repo, tmp_path):
    box = Sandbox(lab_conn, repo, tmp_path)
    yield box
    box.cleanup()
