"""Shared fixtures: small desired states on disk, and sandboxes in the lab's real Samba AD DC.

Lab tests need the servers `ci/lab/up` starts (`ci/test` runs it) and carry `@pytest.mark.lab`
(`pytestmark = pytest.mark.lab` for a whole file); `pytest -m "not lab"` runs the rest in
seconds without the lab.  Each lab test gets its own OU tree, deleted afterwards, so tests
never see each other's accounts.  See "the lab marker" below for what keeps the marker honest.
"""
from __future__ import annotations

import copy
import io
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import git
import pytest
import yaml

# The tests read the product in its source language, English: the environment says so (for
# commands run as processes) and so does the process (for functions called directly).  Tests of
# Spanish output ask for it (`speaking`, or --lang es_MX).
for _name in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "en_US.UTF-8"

from reconciler import i18n  # noqa: E402

i18n.use("en", explicit=True)

# Desired state refuses YAML anchors and aliases; PyYAML writes them for any object that
# appears twice (a shared solicitud), so the files written here spell every value out.
yaml.SafeDumper.ignore_aliases = lambda self, data: True
from ldap3 import NONE, SUBTREE, Connection, Server, Tls

from reconciler.approval.approve import approve
from reconciler.cli import main
from reconciler.desired.curp import check_digit

LAB_DIR = Path("/var/lib/reconciler-lab")
CURP = "NUOJ850412HMSXBS0" + str(check_digit("NUOJ850412HMSXBS0"))
BASE_DN = "DC=salud,DC=lab"
# Where the tests' sandboxes live: the lab delegates this OU's subtree to svc-reconciler
# (ci/lab/accounts-up), the account every test's reconciler binds as to apply; plans bind as
# svc-lectura, which may only read.  Hand edits a test makes stand for a domain administrator's.
SANDBOXES = f"OU=Pruebas,{BASE_DN}"

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


@pytest.fixture
def speaking():
    """speaking("es_MX"): functions called in this test speak that language; English after."""
    def speak(language: str) -> None:
        i18n.use(language, explicit=True)

    yield speak
    i18n.use("en", explicit=True)


UNTRUSTED = ("someone else's", "writable by others", "a link")


def untrust(path: Path, how: str) -> None:
    """A cache file turned into one the runner must not trust (schemacache.read_trusted)."""
    if how == "someone else's":
        os.chown(path, 65534, 65534)
    elif how == "writable by others":
        path.chmod(0o666)
    elif how == "a link":
        moved = path.with_suffix(".elsewhere")
        path.rename(moved)
        path.symlink_to(moved)


def forged_memory(raw: dict, how: str) -> str:
    """A settled memory's JSON as a forger or a bad day leaves it: "damaged" (cut short),
    "another target's" (its key), "not a time" (planned_at NaN), "nested too deep" (past any
    depth it writes); else as it is."""
    text = json.dumps(raw, separators=(",", ":"))
    if how == "damaged":
        return text[:-10]
    if how == "another target's":
        return text.replace(raw["key"], "0" * 64)
    if how == "not a time":
        forged = text.replace(f'"planned_at":{raw["planned_at"]}', '"planned_at":NaN')
        assert "NaN" in forged
        return forged
    if how == "nested too deep":
        return text[:-1] + ',"nested":' + "[" * 100_000 + "]" * 100_000 + "}"
    return text


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
    if base["curp"] is None:  # optional: a person without a CURP on file
        del base["curp"]
    return base


def two_long_files(repo) -> None:
    """Two people files of 120 people each (names without digits), landed; then SSM-000007's
    title changed, landed too."""
    name = lambda i: f"Ana {chr(65 + i % 26)}{chr(65 + i // 26)}"  # noqa: E731
    repo.add("HG-CUERNAVACA", *[person(f"SSM-{i:06d}", curp=None, given_names=name(i)) for i in range(1, 121)])
    repo.add("CS-JIUTEPEC", *[person(f"SSM-{i:06d}", curp=None, given_names=name(i)) for i in range(121, 241)])
    repo.squash_merge("Altas")
    repo.find("SSM-000007")["title"] = "Jefa de piso"
    repo.squash_merge("Cambio de puesto")


# People in the tests' Git histories (names with the characters real ones have).
REQUESTER = ("José Núñez O'Brien", "jose.nunez@salud.morelos.gob.mx")
APPROVER_1 = ("Ing. Marta Ávila Ibáñez", "marta.avila@salud.morelos.gob.mx")
APPROVER_2 = ("Lic. Raúl Peña Güemes", "raul.pena@salud.morelos.gob.mx")
UNIT_HEAD = ("Dra. Ana Lucía Ordóñez", "ana.ordonez@salud.morelos.gob.mx")
ADMIN = ("Administración de TI", "ti@salud.morelos.gob.mx")  # writes the repository's first commit
POLICY = {
    "required_approvals": 1, "privileged_approvals": 2, "privileged_entitlements": ["vpn"],
    "approvers": [
        {"name": APPROVER_1[0], "email": APPROVER_1[1], "units": ["*"], "paths": ["desired_state/*", "inventory/*"]},
        {"name": APPROVER_2[0], "email": APPROVER_2[1], "units": ["*"], "paths": ["desired_state/*", "inventory/*"]},
        {"name": UNIT_HEAD[0], "email": UNIT_HEAD[1], "units": ["HG-CUERNAVACA"]},
        {"name": REQUESTER[0], "email": REQUESTER[1], "units": ["*"]},
    ],
}


def actor(who: tuple[str, str]) -> git.Actor:
    return git.Actor(*who)


_KEYS = Path(tempfile.mkdtemp(prefix="reconciler-test-keys-"))


def key_of(who: tuple[str, str] | str) -> Path:
    """A private SSH key (Ed25519, made once per test session by the real ssh-keygen) for a
    person of the tests' histories, by email, or for a named bot."""
    name = who[1] if isinstance(who, tuple) else who
    path = _KEYS / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return path


# The tests run as the apply job does: with an apply key, so applied refs are signed tags and
# audit notes are sealed (audit/seal.py).  Tests that need none remove it.
os.environ["RECONCILER_APPLY_KEY"] = str(key_of("reconciler-apply"))
os.environ.pop("RECONCILER_APPLY_PUBLIC_KEY", None)


def public_key_of(who: tuple[str, str] | str) -> str:
    return " ".join(Path(f"{key_of(who)}.pub").read_text(encoding="ascii").split()[:2])


def with_keys(policy: dict) -> dict:
    """The policy with each approver's public key, where the test did not write its own."""
    out = copy.deepcopy(policy)
    for approver in out["approvers"]:
        approver.setdefault("keys", [public_key_of((approver["name"], approver["email"]))])
    return out


def sign_approvals(repo: git.Repo, base: str, head: str, approvers) -> None:
    """Each approver signs (base, head) with their key, as `reconciler approve` does."""
    for who in approvers:
        approve(repo, base, head, who[1], key_of(who))


def trailers(*approvers: tuple[str, str]) -> str:
    return "".join(f"Approved-by: {name} <{email}>\n" for name, email in approvers)


class DesiredRepo:
    """A Git repository holding desired_state/ written from Python values, with helpers that
    make the histories pull requests leave: squash merges, merge commits, direct pushes."""

    def __init__(self, root: Path):
        self.root = root
        self.users: dict[str, list[dict]] = {}
        self.shared: dict[str, list[dict]] = {}  # unit -> its shared_mailboxes
        self.lines: list[dict] = []  # desired_state/assets/lines.yaml
        self.equipment: list[dict] = []  # desired_state/assets/equipment.yaml
        self.networks: dict = {}  # desired_state/security_rules/networks.yaml
        self.rules: dict[str, list[dict]] = {}  # desired_state/security_rules/<file>.yaml -> rules
        self.confirmations: list[dict] = []  # desired_state/work_orders.yaml
        self.units = copy.deepcopy(UNITS)
        self.entitlements = copy.deepcopy(ENTITLEMENTS)
        self.policy = copy.deepcopy(POLICY)
        self.pr_number = 0
        self._git: git.Repo | None = None

    @property
    def git(self) -> git.Repo:
        if self._git is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._git = git.Repo.init(self.root, initial_branch="main")
            with self._git.config_writer() as config:
                config.set_value("user", "name", "CI").set_value("user", "email", "ci@example.org")
        return self._git

    def _bootstrap(self) -> None:
        """The repository's first commit: the approval policy alone, written by IT's
        administration.  It is the trust root: changes are judged by the policy in force
        before the commit that landed them, and the first commit has none before it."""
        if self.git.head.is_valid():
            return
        policy = self.root / "inventory" / "approvers.yaml"
        policy.parent.mkdir(parents=True, exist_ok=True)
        policy.write_text(yaml.safe_dump(with_keys(self.policy), allow_unicode=True, sort_keys=False),
                          encoding="utf-8")
        self.git.index.add([str(policy.relative_to(self.root))])
        self.git.index.commit("Política de aprobación", author=actor(ADMIN), committer=actor(ADMIN))

    def _commit_all(self, message: str, author: tuple[str, str], committer: tuple[str, str] | None = None) -> str:
        self._bootstrap()
        self.git.git.add("-A")
        commit = self.git.index.commit(message, author=actor(author), committer=actor(committer or author))
        return commit.hexsha

    def squash_merge(self, title: str = "Solicitud", requester=REQUESTER, approvers=(APPROVER_1, APPROVER_2),
                     signed: bool = True) -> str:
        """Write the files and land them on main as a squash merge of a pull request, whose
        approvers sign it (`signed` False: their names only in trailers, as a forger would)."""
        self.write()
        self._bootstrap()
        base = self.git.head.commit.hexsha
        self.pr_number += 1
        message = f"{title} (#{self.pr_number})\n\n{trailers(*approvers)}"
        sha = self._commit_all(message, requester, committer=("GitHub", "noreply@github.com"))
        if signed:
            sign_approvals(self.git, base, sha, approvers)
        return sha

    def direct_push(self, title: str = "Cambio directo", author=REQUESTER) -> str:
        self.write()
        return self._commit_all(title, author)

    def merge_pr(self, branch: str, title: str = "Solicitud", requester=REQUESTER,
                 approvers=(APPROVER_1, APPROVER_2), commits: int = 1, signed: bool = True) -> str:
        """Write the files on a feature branch (in `commits` commits), have the approvers sign
        it, then merge it into main with a merge commit carrying the approval trailers."""
        self._bootstrap()
        repo = self.git
        main = repo.heads.main
        feature = repo.create_head(branch, main.commit)
        feature.checkout()
        self.write()
        repo.git.add("-A")
        for i in range(commits):
            repo.index.commit(f"{title} ({i + 1}/{commits})", author=actor(requester), committer=actor(requester))
        main.checkout()
        if signed:
            sign_approvals(repo, main.commit.hexsha, feature.commit.hexsha, approvers)
        self.pr_number += 1
        message = (f"Merge pull request #{self.pr_number} from salud/{branch}\n\n{title}\n\n"
                   f"{trailers(*approvers)}")
        repo.git.merge("--no-ff", "--no-edit", branch, env={"GIT_AUTHOR_NAME": "GitHub",
                                                           "GIT_AUTHOR_EMAIL": "noreply@github.com"})
        repo.git.commit("--amend", "-m", message)
        return repo.head.commit.hexsha

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

    def baja(self, key: str, folio: str = "SSM/RH/2026/00377") -> None:
        """The person's baja by status, with the solicitud Human Resources sent."""
        self.find(key).update(status="baja", solicitud={
            "folio": folio, "date": "2026-11-20", "justification": "Baja por renuncia",
            "requested_by": "Jefe de Recursos Humanos"})

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
        (self.root / "inventory").mkdir(exist_ok=True)
        (self.root / "inventory" / "approvers.yaml").write_text(yaml.safe_dump(with_keys(self.policy), **dump),
                                                                 encoding="utf-8")
        (ds / "units.yaml").write_text(yaml.safe_dump({"units": self.units}, **dump), encoding="utf-8")
        (ds / "entitlements.yaml").write_text(yaml.safe_dump({"entitlements": self.entitlements}, **dump),
                                              encoding="utf-8")
        assets = ds / "assets"
        for name, items in (("lines", self.lines), ("equipment", self.equipment)):
            if items:
                assets.mkdir(exist_ok=True)
                (assets / f"{name}.yaml").write_text(yaml.safe_dump({name: items}, **dump), encoding="utf-8")
            elif (assets / f"{name}.yaml").exists():
                (assets / f"{name}.yaml").unlink()
        security = ds / "security_rules"
        if security.exists():
            for old in security.glob("*.yaml"):
                old.unlink()
        if self.networks or self.rules:
            security.mkdir(exist_ok=True)
            (security / "networks.yaml").write_text(yaml.safe_dump(self.networks, **dump), encoding="utf-8")
            for name, rules in self.rules.items():
                (security / f"{name}.yaml").write_text(yaml.safe_dump({"rules": rules}, **dump), encoding="utf-8")
        orders = ds / "work_orders.yaml"
        if self.confirmations:
            orders.write_text(yaml.safe_dump({"confirmations": self.confirmations}, **dump), encoding="utf-8")
        elif orders.exists():
            orders.unlink()
        for unit in dict.fromkeys([*self.users, *self.shared]):
            document = {"unit": unit, "people": self.users.get(unit, [])}
            if self.shared.get(unit):
                document["shared_mailboxes"] = self.shared[unit]
            (users / f"{unit.lower()}.yaml").write_text(yaml.safe_dump(document, **dump), encoding="utf-8")
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


# -- the release -------------------------------------------------------------------------

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def snapshot_release(tmp_path_factory) -> Path:
    """The working tree built the way a release is (`ci/release --snapshot`): the directory with
    the wheel, the sdist, SHA256SUMS and the hashed requirements file runners install from."""
    out = tmp_path_factory.mktemp("release")
    proc = subprocess.run([str(PROJECT / "ci" / "release"), "--snapshot", "--out", str(out)],
                          env={**os.environ, "RECONCILER_VENV": str(Path(sys.executable).parent.parent)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


# -- the lab ---------------------------------------------------------------------------

def lab_connection() -> Connection:
    if not (LAB_DIR / "bind.pw").exists():
        pytest.fail(f"the lab is not provisioned: run ci/lab/up (ci/test does){NOT_LAB_HINT}")
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(LAB_DIR / "ca.pem"))
    server = Server("127.0.0.1", port=636, use_ssl=True, tls=tls, get_info=NONE)
    password = (LAB_DIR / "bind.pw").read_text()
    try:
        return Connection(server, user="Administrator@SALUD.LAB", password=password, auto_bind=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means the lab is down
        pytest.fail(f"the lab's Samba AD DC is not answering ({exc}): run ci/lab/up{NOT_LAB_HINT}")


TREE_DELETE = ("1.2.840.113556.1.4.805", True, None)


# How the reconciler binds to the lab's AD (ci/lab/accounts-up): applies as the delegated account,
# plans as the read-only one.
SERVICE_ACCOUNTS = {
    "bind_dn": "svc-reconciler@SALUD.LAB", "bind_password": {"file": str(LAB_DIR / "ad" / "svc-reconciler.pw")},
    "read_bind": {"bind_dn": "svc-lectura@SALUD.LAB", "bind_password": {"file": str(LAB_DIR / "ad" / "svc-lectura.pw")}},
}


class Sandbox:
    """A private OU tree in the lab, an inventory pointing at it, and a desired repository."""

    def __init__(self, conn: Connection, repo: DesiredRepo, tmp: Path):
        self.conn, self.repo = conn, repo
        self.root = f"OU=t-{secrets.token_hex(4)},{SANDBOXES}"
        self.people_ou = f"OU=Personal,{self.root}"
        self.groups_ou = f"OU=Grupos,{self.root}"
        self.bajas_ou = f"OU=Bajas,{self.root}"
        # Group names are unique in the whole domain: each sandbox gets its own.
        self.suffix = self.root[5:13]
        for ent in repo.entitlements.values():
            ent["group"] = f"{ent['group']}-{self.suffix}"
        self.credentials_dir = tmp / "credentials"
        self.audit_dir = tmp / "audit"
        self.inventory = tmp / "inventory.yaml"
        self.write_inventory()

    def write_inventory(self, max_bajas: int = 25, delivery: dict | None = None, **overrides) -> None:
        """The sandbox's inventory; secrets go to a clear-text file (the lab's choice) unless
        `delivery` says otherwise (tests of sealed delivery)."""
        target = {
            "kind": "active_directory", "host": "127.0.0.1", "port": 636, "base_dn": BASE_DN,
            "upn_suffix": "salud.lab",
            "ous": {"people": self.people_ou, "groups": self.groups_ou, "bajas": self.bajas_ou},
            **SERVICE_ACCOUNTS, "tls": {"ca_file": str(LAB_DIR / "ca.pem")}, "max_bajas": max_bajas,
            "credentials_dir": str(self.credentials_dir), "audit_dir": str(self.audit_dir),
        }
        target.update(overrides)
        self.inventory.write_text(yaml.safe_dump({"delivery": delivery or {"mode": "clear-text-file-lab-only"},
                                                  "targets": {"ad-test": target}}, allow_unicode=True))

    def cli(self, command: str, *args: str, land: bool = True) -> tuple[int, str, str]:
        """Run a command against the sandbox; first land what the test declared on main as an
        approved pull request, unless told not to (the test made its own history)."""
        if land and command in ("plan", "apply"):
            self.repo.write()
            if self.repo.git.is_dirty(untracked_files=True) or not self.repo.git.head.is_valid():
                self.repo.squash_merge()
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
            pytest.fail(f"ci/lab/{script} failed:\n{proc.stderr}{NOT_LAB_HINT}")


# What ci/lab/up leaves behind, and what the lab tests talk to.
LAB_FILES = ("bind.pw", "ad/svc-reconciler.pw", "ad/svc-lectura.pw", "ca.pem", "mail/doveadm.key",
             "mail/registro/users", "mail/registro/recipients", "mail/registro/aliases", "mail/registro/denied",
             "mail/ssh/id_ed25519", "mail/ssh/lectura_ed25519", "mail/ssh/known_hosts", "phone/reconciler-db.pw",
             "phone/reconciler_lectura-db.pw", "net/id_ed25519", "net/known_hosts")
LAB_SERVICES = {  # TCP only: Kamailio's SIP is UDP, its JSON-RPC stands for it
    "the Samba AD DC (LDAPS)": ("127.0.0.1", 636), "Postfix (SMTP)": ("127.0.0.1", 25),
    "Dovecot (IMAP)": ("127.0.0.1", 143), "Dovecot's doveadm HTTP API": ("127.0.0.1", 8080),
    "Kamailio's JSON-RPC": ("127.0.0.1", 5071), "PostgreSQL (Kamailio's subscribers)": ("127.0.0.1", 5432),
    "sshd in the firewall namespace rc-fw": ("192.168.250.2", 22),
    "sshd of the mail host (namespace rc-mail)": ("192.168.251.2", 22),
}
LAB_NAMESPACES = ("rc-client", "rc-fw", "rc-server", "rc-mail")
NOT_LAB_HINT = "\n(`pytest -m \"not lab\"` runs the tests that do not need the lab)"


def lab_missing(lab_dir: Path = LAB_DIR, services: dict = LAB_SERVICES,
                namespaces: tuple[str, ...] = LAB_NAMESPACES, patience: float = 10) -> list[str]:
    """What of the lab is missing: files, servers not accepting connections (each given until
    `patience` seconds from now to start), namespaces."""
    missing = [f"file {lab_dir / name}" for name in LAB_FILES if not (lab_dir / name).exists()]
    deadline = time.monotonic() + patience
    for what, (host, port) in services.items():
        while True:
            try:
                socket.create_connection((host, port), timeout=3).close()
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    missing.append(f"{what} on {host}:{port} ({exc.strerror or exc})")
                    break
                time.sleep(0.25)
    if namespaces:
        try:
            listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        except OSError:
            listed = ""
        present = {line.split()[0] for line in listed.splitlines() if line.strip()}
        missing += [f"network namespace {name}" for name in namespaces if name not in present]
    return missing


@pytest.fixture(scope="session")
def lab_up() -> Path:
    """The lab, freshly provisioned and checked whole.  Every lab fixture depends on this one,
    and every test marked `lab` gets it (see _lab_boundary).  A lab that is missing or
    incomplete fails the tests loudly; it never skips them."""
    fresh_lab()
    missing = lab_missing()
    if missing:
        pytest.fail("the lab is not running after ci/lab/up; missing:\n  " + "\n  ".join(missing)
                    + "\nrun ci/lab/up (ci/test does) and see its output and the logs in "
                    f"{LAB_DIR}{NOT_LAB_HINT}")
    return LAB_DIR


@pytest.fixture(scope="session")
def lab_conn(lab_up):
    conn = lab_connection()
    yield conn
    conn.unbind()


@pytest.fixture
def sandbox(lab_conn, repo, tmp_path):
    box = Sandbox(lab_conn, repo, tmp_path)
    yield box
    box.cleanup()


# -- the lab marker --------------------------------------------------------------------
#
# `@pytest.mark.lab` says a test needs the servers ci/lab/up starts (pyproject.toml declares
# it); `pytest -m "not lab"` must never touch the lab.  Three safeguards keep the marker honest:
#  - collection stops when a test uses a lab fixture (anything that depends on `lab_up`: lab_conn,
#    sandbox, the files' own fixtures) without the marker;
#  - a test with the marker gets `lab_up` even when it uses no lab fixture;
#  - while a test without the marker runs, reading a file under LAB_DIR, connecting to a lab
#    server or running a lab command raises, and fails the test even if the error was caught.

@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items
                if "lab_up" in getattr(item, "fixturenames", ()) and item.get_closest_marker("lab") is None]
    if unmarked:
        raise pytest.UsageError(
            "these tests use a lab fixture but are not marked @pytest.mark.lab, so `-m \"not lab\"` would run "
            "them against the lab; mark them (`pytestmark = pytest.mark.lab` for a whole file):\n  "
            + "\n  ".join(unmarked))


LAB_PORTS = {636, 389, 88, 464, 53, 135, 139, 445, 3268, 3269,  # Samba AD DC
             24, 25, 143, 8080,  # Dovecot (LMTP, IMAP, doveadm) and Postfix
             5060, 5071}  # Kamailio (SIP, JSON-RPC)
LAB_NETWORKS = ("192.168.250.", "10.10.")  # the management link to rc-fw; the namespaces' networks
LAB_COMMANDS = {"nft", "postfix", "postconf", "dovecot", "doveadm", "kamailio", "kamcmd", "samba", "samba-tool",
                "ldapsearch", "ldapmodify", "kinit", "kpasswd", "sipp"}  # and `ip netns`, below
# The scripts in ci/lab/ (not the data beside them, such as ci/lab/bills/).
LAB_SCRIPT_RUN = re.compile(r"(?<![\w.-])ci/lab/(%s)(?![\w.-])" % "|".join(
    re.escape(p.name) for p in (LAB_SCRIPTS.iterdir() if LAB_SCRIPTS.is_dir() else ()) if p.is_file()) or "up|down")
_AUDITED = {"open", "sqlite3.connect", "socket.connect", "socket.sendto", "subprocess.Popen", "os.system",
            "os.exec", "os.posix_spawn"}
_guard: dict = {"test": None, "touched": []}


class LabTouched(RuntimeError):
    """A test not marked `lab` reached for the lab."""


def _text(value) -> str:
    return os.fsdecode(value) if isinstance(value, (str, bytes, os.PathLike)) else str(value)


def _lab_reach(event: str, args: tuple) -> str | None:
    """What part of the lab an audit event reaches for, if any."""
    if event in ("open", "sqlite3.connect"):
        if isinstance(args[0], int):
            return None
        path = os.path.abspath(_text(args[0]))
        lab = str(LAB_DIR)
        return f"{event} {path}" if path == lab or path.startswith(lab + os.sep) else None
    if event in ("socket.connect", "socket.sendto"):
        address = args[1] if event == "socket.connect" else args[-1]
        if not (isinstance(address, tuple) and len(address) >= 2):
            return None
        host, port = str(address[0]), address[1]
        if (host in ("127.0.0.1", "::1", "localhost") and port in LAB_PORTS) or host.startswith(LAB_NETWORKS):
            return f"{event} {host}:{port}"
        return None
    # Commands: subprocess.Popen (executable, args, ...), os.system (command,), os.exec and
    # os.posix_spawn (path, argv, env).
    argv = args[0] if event == "os.system" else args[1]
    words = [_text(w) for w in argv] if isinstance(argv, (list, tuple)) else _text(argv).split()
    line = " ".join(words)
    program = os.path.basename(words[0]) if words else ""
    if str(LAB_DIR) in line or LAB_SCRIPT_RUN.search(line.replace(str(LAB_SCRIPTS), "ci/lab")) \
            or "ip netns" in line or program in LAB_COMMANDS:
        return f"{event} {line}"
    return None


def _lab_audit(event: str, args: tuple) -> None:
    if _guard["test"] is None or event not in _AUDITED:
        return
    try:
        reach = _lab_reach(event, args)
    except Exception:  # noqa: BLE001 - a guard must never break what it watches
        return
    if reach:
        _guard["touched"].append(reach)
        raise LabTouched(f"{_guard['test']} is not marked lab but reached for the lab: {reach}")


sys.addaudithook(_lab_audit)


_ALREADY_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when in ("setup", "call") and report.failed:
        item.stash[_ALREADY_FAILED] = True  # _lab_boundary need not report it a second time
    return report


@pytest.fixture(autouse=True)
def _lab_boundary(request):
    if request.node.get_closest_marker("lab") is not None:
        request.getfixturevalue("lab_up")
        yield
        return
    _guard["test"], _guard["touched"] = request.node.nodeid, []
    try:
        yield
    finally:
        touched, _guard["test"] = _guard["touched"], None
    if touched and not request.node.stash.get(_ALREADY_FAILED, False):  # the LabTouched was caught
        pytest.fail("not marked @pytest.mark.lab, but reached for the lab (mark it, or keep it off the lab):\n  "
                    + "\n  ".join(dict.fromkeys(touched)), pytrace=False)


@pytest.fixture
def kinds():
    """The two fake target kinds (tests/fakes.py), registered for one test."""
    from fakes import register_kinds

    yield from register_kinds()


@pytest.fixture
def fakes(kinds, repo, tmp_path):
    """Two fake targets, an inventory naming them, and the desired-state repository."""
    from fakes import Fakes

    return Fakes(repo, tmp_path)
