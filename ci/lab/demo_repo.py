"""Build the demo's desired-state repository: the bundled example data, landed on `main` the
way an institution's repository receives it, through approved pull requests.

    python ci/lab/demo_repo.py build SRC DEST     a fresh repository at DEST from SRC's data
    python ci/lab/demo_repo.py direct-push DEST   a change pushed to main without approval
    python ci/lab/demo_repo.py confirm DEST FOLIO TICKET
                                                  a work order's confirmation, landed by an approved
                                                  pull request (desired_state/work_orders.yaml)
    python ci/lab/demo_repo.py merge DEST BRANCH  a pull request approved and signed by two approvers,
                                                  merged into main
    python ci/lab/demo_repo.py day-one SRC DEST ENTITLEMENTS
                                                  a repository for the legacy lab: the policy, SRC's
                                                  units and the legacy lab's entitlements, no people
    python ci/lab/demo_repo.py adopt DEST         what `reconciler import` wrote in DEST, completed as
                                                  the report asks and landed by an approved pull request

History built: the first commit is the approval policy alone, with the approvers' public SSH
keys (the trust root, written by the Subdirección de TI); PR #1 (squash merge) lays out
units and entitlements; then one pull request per unit, merged with a
merge commit; last, a squash merge with the phone lines and equipment
(desired_state/assets/), then one with the security rules.  Two approvers sign each pull
request's head onto main with their own keys, as `reconciler approve` does; the keys live in
KEYS (next to DEST), standing in for the approvers' own laptops.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import git

from reconciler.approval.approve import approve
from reconciler.run.engine import today_here

MESA = git.Actor("Mesa de Servicios de TI", "mesa.servicios@ssm.example.gob.mx")
MARTA = ("Ing. Marta Ávila Ibáñez", "marta.avila@ssm.example.gob.mx")
RAUL = ("Lic. Raúl Peña Güemes", "raul.pena@ssm.example.gob.mx")
ANA = git.Actor("Dra. Ana Lucía Ordóñez Peña", "ana.ordonez@ssm.example.gob.mx")
FORGE = git.Actor("GitHub", "noreply@github.com")


def trailers(*people) -> str:
    """What the forge writes in the merge message: information for people, never proof."""
    return "".join(f"Approved-by: {name} <{email}>\n" for name, email in people)


def keys_dir(dest: Path) -> Path:
    return dest.parent / "approver-keys"


def key_of(dest: Path, who: tuple[str, str]) -> Path:
    """The approver's SSH key (made here once; in real life, on their own machine)."""
    path = keys_dir(dest) / who[1]
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who[1], "-f", str(path)], check=True)
    return path


def with_keys(policy: str, dest: Path, people) -> str:
    """approvers.yaml with a `keys:` line after each signing approver's email."""
    for who in people:
        public = " ".join(Path(f"{key_of(dest, who)}.pub").read_text(encoding="ascii").split()[:2])
        policy = policy.replace(f"    email: {who[1]}\n", f"    email: {who[1]}\n    keys: [\"{public}\"]\n", 1)
    return policy


def signed_by(repo: git.Repo, dest: Path, base: str, head: str, *people) -> None:
    for who in people:
        approve(repo, base, head, who[1], key_of(dest, who))


def started(src: Path, dest: Path) -> git.Repo:
    """A new repository at DEST whose first commit is the approval policy with the approvers' keys."""
    if dest.exists():
        shutil.rmtree(dest)
    repo = git.Repo.init(dest, initial_branch="main")
    (dest / "inventory").mkdir(parents=True)
    (dest / "desired_state" / "users").mkdir(parents=True)
    policy = with_keys((src / "inventory/approvers.yaml").read_text(encoding="utf-8"), dest, (MARTA, RAUL))
    (dest / "inventory/approvers.yaml").write_text(policy, encoding="utf-8")
    repo.git.add("-A")
    repo.index.commit("Política de aprobación y llaves de los aprobadores", author=git.Actor(*RAUL),
                      committer=git.Actor(*RAUL))
    return repo


def build(src: Path, dest: Path) -> None:
    repo = started(src, dest)
    base = repo.head.commit.hexsha
    for rel in ("desired_state/units.yaml", "desired_state/entitlements.yaml"):
        shutil.copy(src / rel, dest / rel)
    repo.git.add("-A")
    repo.index.commit(f"Estructura: unidades y permisos (#1)\n\n{trailers(RAUL)}",
                      author=git.Actor(*MARTA), committer=FORGE)
    signed_by(repo, dest, base, repo.head.commit.hexsha, RAUL)
    for number, users in enumerate(sorted((src / "desired_state" / "users").glob("*.yaml")), start=2):
        branch = f"altas-{users.stem}"
        requester = ANA if users.stem == "hg-cuernavaca" else MESA
        repo.create_head(branch, repo.heads.main.commit).checkout()
        shutil.copy(users, dest / "desired_state" / "users" / users.name)
        repo.git.add("-A")
        repo.index.commit(f"Altas de personal: {users.stem}", author=requester, committer=requester)
        repo.heads.main.checkout()
        signed_by(repo, dest, repo.heads.main.commit.hexsha, repo.heads[branch].commit.hexsha, MARTA, RAUL)
        repo.git.merge("--no-ff", "--no-commit", branch)
        repo.index.commit(f"Merge pull request #{number} from ssm/{branch}\n\nAltas de personal: {users.stem}\n\n"
                          f"{trailers(MARTA, RAUL)}", parent_commits=(repo.heads.main.commit, repo.heads[branch].commit),
                          author=FORGE, committer=FORGE, head=True)
    for directory, title in (("assets", "Inventario de líneas telefónicas y equipo"),
                             ("security_rules", "Medidas de seguridad de la red del HG Cuernavaca")):
        files = sorted((src / "desired_state" / directory).glob("*.yaml"))
        if not files:
            continue
        (dest / "desired_state" / directory).mkdir(exist_ok=True)  # each in a pull request of its own
        for path in files:
            shutil.copy(path, dest / "desired_state" / directory / path.name)
        repo.git.add("-A")
        number += 1
        base = repo.head.commit.hexsha
        repo.index.commit(f"{title} (#{number})\n\n{trailers(MARTA, RAUL)}", author=MESA, committer=FORGE)
        signed_by(repo, dest, base, repo.head.commit.hexsha, MARTA, RAUL)


def direct_push(dest: Path) -> None:
    """Someone with push rights edits a title on main, bypassing review."""
    repo = git.Repo(dest)
    path = dest / "desired_state" / "users" / "oc-dgpe.yaml"
    text = path.read_text(encoding="utf-8")
    old = next(line for line in text.splitlines() if line.strip().startswith("title:"))
    path.write_text(text.replace(old, old.split(":")[0] + ": Director General", 1), encoding="utf-8")
    repo.git.add("-A")
    repo.index.commit("Actualizo mi puesto", author=MESA, committer=MESA)


def _landed(repo: git.Repo, dest: Path, path: Path, data: dict, title: str) -> None:
    """`data` written to `path` and landed on main by the service desk's pull request, which
    Marta and Raúl approve and sign."""
    import yaml

    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    base = repo.head.commit.hexsha
    repo.git.add("-A")
    repo.index.commit(f"{title}\n\n{trailers(MARTA, RAUL)}", author=MESA, committer=FORGE)
    signed_by(repo, dest, base, repo.head.commit.hexsha, MARTA, RAUL)


def acuse(dest: Path, key: str, folio: str, scan: Path) -> None:
    """The signed carta comes back: a pull request records it on the person (acuse: with the
    scan's SHA-256), approved and merged like any other."""
    import hashlib

    import yaml

    repo = git.Repo(dest)
    path = next(p for p in sorted((dest / "desired_state" / "users").glob("*.yaml"))
                if f"employee_key: {key}" in p.read_text(encoding="utf-8"))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for person in data["people"]:
        if person["employee_key"] == key:
            person["acuse"] = {"folio": folio, "date": today_here(),  # signed today: the carta is today's
                               "sha256": hashlib.sha256(scan.read_bytes()).hexdigest()}
    _landed(repo, dest, path, data, f"Acuse de la carta responsiva de {key} ({folio})")


def confirm(dest: Path, folio: str, ticket: str) -> None:
    """The operator answers a work order: a pull request records its confirmation in
    desired_state/work_orders.yaml, approved and merged like any other."""
    import yaml

    repo = git.Repo(dest)
    path = dest / "desired_state" / "work_orders.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {"confirmations": []}
    # Today, where the institution is: the order was issued today, and a confirmation dated
    # before its issue is refused (a fixed date here broke the demo on every later day).
    data["confirmations"].append({"folio": folio, "confirmado": {"fecha": today_here(),
                                                                  "por": "Equipo SIEMPRE, Departamento de Informática",
                                                                  "ticket": ticket}})
    _landed(repo, dest, path, data, f"Confirmación de la orden de trabajo {folio} ({ticket})")


def pull_request(dest: Path) -> str:
    """A pull request as IT staff open it: the baja of SSM-000007 that Human Resources asked
    for, and SSM-000009's new title; a branch off main, not merged (the demo shows its plan)."""
    import yaml

    repo = git.Repo(dest)
    branch = "solicitud/baja-ssm-000007"
    repo.git.checkout("-q", "-B", branch, "main")
    path = dest / "desired_state" / "users" / "hg-cuernavaca.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for person in data["people"]:
        if person["employee_key"] == "SSM-000007":
            person.update(status="baja", solicitud={
                "folio": "SSM/RH/2026/00412", "date": "2026-11-30", "justification": "Baja por jubilación",
                "requested_by": "Jefa de Recursos Humanos del Hospital General de Cuernavaca"})
        if person["employee_key"] == "SSM-000009":
            person["title"] = "Jefe del Laboratorio Clínico"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    repo.git.add("-A")
    repo.index.commit("Baja de SSM-000007 y cambio de puesto de SSM-000009", author=MESA, committer=MESA)
    repo.git.checkout("-q", "main")
    return branch


def merge(dest: Path, branch: str) -> None:
    """A pull request approved by Marta and Raúl, each signing its head onto main, then merged."""
    repo = git.Repo(dest)
    signed_by(repo, dest, repo.heads.main.commit.hexsha, repo.heads[branch].commit.hexsha, MARTA, RAUL)
    title = repo.heads[branch].commit.summary
    repo.git.merge("--no-ff", "--no-commit", branch)
    repo.index.commit(f"Merge pull request from ssm/{branch}\n\n{title}\n\n{trailers(MARTA, RAUL)}",
                      parent_commits=(repo.heads.main.commit, repo.heads[branch].commit), author=FORGE,
                      committer=FORGE, head=True)


def day_one(src: Path, dest: Path, entitlements: Path) -> None:
    """The repository an institution starts on day one: its approval policy, its units, and the
    entitlements its existing groups grant (the legacy lab's, from legado-up)."""
    repo = started(src, dest)
    base = repo.head.commit.hexsha
    shutil.copy(src / "desired_state/units.yaml", dest / "desired_state/units.yaml")
    shutil.copy(entitlements, dest / "desired_state/entitlements.yaml")
    repo.git.add("-A")
    repo.index.commit(f"Estructura: unidades y los permisos que otorgan los grupos existentes (#1)\n\n{trailers(RAUL)}",
                      author=git.Actor(*MARTA), committer=FORGE)
    signed_by(repo, dest, base, repo.head.commit.hexsha, RAUL)


def complete(desired: Path) -> None:
    """What IT writes where the import's report asks, in the files import wrote under `desired`
    (desired_state/): the fields the directory lacks (placeholders the unit will correct), and
    the drafts of computers and hand-made firewall rules set aside: they need a resguardo and a
    justification nobody has yet, and wait for a pull request of their own."""
    import yaml

    from reconciler.adoption.people import PHONE

    for path in sorted((desired / "users").glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for person in document["people"]:
            for field, value in (("title", "Por definir"), ("direction", "Por definir"), ("phone", "777 311 2200")):
                if not person.get(field) or (field == "phone" and not PHONE.match(str(person[field]))):
                    person[field] = value
            person.setdefault("first_surname", "Por definir")
            person.setdefault("second_surname", None)
        path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for draft in [desired / "assets" / "equipment.yaml", *(desired / "security_rules").glob("importado-*.yaml")]:
        draft.unlink(missing_ok=True)


def adopt(dest: Path) -> None:
    """The import completed as its report asks (complete), then approved and squash-merged."""
    repo = git.Repo(dest)
    complete(dest / "desired_state")
    base = repo.head.commit.hexsha
    repo.git.add("-A")
    repo.index.commit(f"Adopción del directorio existente (#2)\n\n{trailers(MARTA, RAUL)}", author=MESA,
                      committer=FORGE)
    signed_by(repo, dest, base, repo.head.commit.hexsha, MARTA, RAUL)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "build":
        build(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "direct-push":
        direct_push(Path(sys.argv[2]))
    elif len(sys.argv) == 6 and sys.argv[1] == "acuse":
        acuse(Path(sys.argv[2]), sys.argv[3], sys.argv[4], Path(sys.argv[5]))
    elif len(sys.argv) == 5 and sys.argv[1] == "day-one":
        day_one(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    elif len(sys.argv) == 3 and sys.argv[1] == "adopt":
        adopt(Path(sys.argv[2]))
    elif len(sys.argv) == 5 and sys.argv[1] == "confirm":
        confirm(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "merge":
        merge(Path(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "pull-request":
        print(pull_request(Path(sys.argv[2])))
    else:
        sys.exit(__doc__)
