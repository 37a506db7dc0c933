"""Benchmarks reconcile from Git as production does: the generated desired state is committed
to `main` of a throwaway repository as an approved pull request (a squash merge both approvers
sign with their SSH keys, as `reconciler approve` does), under a policy that lets those two
approve every unit."""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import git
import yaml

from reconciler.approval.approve import approve

# Desired state refuses YAML anchors and aliases; PyYAML writes them for any object that
# appears twice, so the benchmarks' files spell every value out.
yaml.SafeDumper.ignore_aliases = lambda self, data: True

APPROVERS = [("Ing. Marta Ávila Ibáñez", "marta.avila@ssm.example.gob.mx"),
             ("Lic. Raúl Peña Güemes", "raul.pena@ssm.example.gob.mx")]
REQUESTER = git.Actor("Mesa de Servicios de TI", "mesa.servicios@ssm.example.gob.mx")
_KEYS = Path(tempfile.mkdtemp(prefix="reconciler-bench-keys-"))
atexit.register(shutil.rmtree, _KEYS, ignore_errors=True)  # private keys: gone with the process that made them


def _key(email: str) -> Path:
    path = _KEYS / email
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


# The benchmarks run as the apply job does, with an apply key: applied refs are signed, so
# incremental plans trust them (without one every plan is full).
os.environ.setdefault("RECONCILER_APPLY_KEY", str(_key("reconciler-apply")))


def _policy() -> dict:
    return {"approvers": [{"name": n, "email": e, "units": ["*"], "paths": ["desired_state/*"],
                           "keys": [" ".join(Path(f"{_key(e)}.pub").read_text().split()[:2])]} for n, e in APPROVERS]}


def land(root: Path, title: str) -> str:
    """Commit everything under root to main as an approved squash merge; returns the commit."""
    repo = git.Repo.init(root, initial_branch="main") if not (root / ".git").exists() else git.Repo(root)
    policy = root / "inventory" / "approvers.yaml"
    if not repo.head.is_valid():  # the first commit, the policy alone: changes are judged by the policy before them
        policy.parent.mkdir(parents=True, exist_ok=True)
        policy.write_text(yaml.safe_dump(_policy(), allow_unicode=True), encoding="utf-8")
        repo.index.add([str(policy.relative_to(root))])
        repo.index.commit("Política de aprobación", author=REQUESTER, committer=REQUESTER)
    repo.git.add("-A")
    base = repo.head.commit.hexsha
    trailers = "".join(f"Approved-by: {n} <{e}>\n" for n, e in APPROVERS)
    sha = repo.index.commit(f"{title} (#1)\n\n{trailers}", author=REQUESTER, committer=REQUESTER).hexsha
    for _, email in APPROVERS:
        approve(repo, base, sha, email, _key(email))
    return sha
