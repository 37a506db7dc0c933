"""The CI pipelines users copy (ci/pipelines/): linted against GitHub's and GitLab's own
schemas, and their steps' commands run here, in order, against a real Git remote and the lab AD.
The linting needs no lab; the steps' runs do, and are marked `lab`.

The steps run the reconciler as a runner would have it: the working tree built as a release
(`ci/release --snapshot`) and installed by the template's own install step into a virtual
environment of its own, from the hashed requirements file; never the checkout's .venv.

What cannot run here is the forge's API: `gh` and `curl` are replaced on PATH by a TEST DOUBLE
(FORGE_DOUBLE below) that records what the pipeline posts and answers with the plan comment
it was given, the way GitHub's and GitLab's APIs would.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ldap3 import MODIFY_REPLACE

from conftest import APPROVER_1, person

PIPELINES = Path(__file__).resolve().parent.parent / "ci" / "pipelines"
VENV_BIN = Path(sys.executable).parent

FORGE_DOUBLE = r"""#!/usr/bin/env bash
# TEST DOUBLE of the forge CLIs (gh, curl): records each call, answers from files.
echo "$(basename "$0") $*" >> "$FORGE_LOG"
args="$*"
case "$(basename "$0") $args" in
  "gh pr comment"*)  file=$(echo "$args" | sed -n 's/.*--body-file \([^ ]*\).*/\1/p'); cp "$file" "$FORGE_POSTED" ;;
  "gh api"*pulls*)   cat "$FORGE_PR_NUMBER" ;;
  "gh pr view"*)     cat "$FORGE_POSTED" ;;
  "curl"*"--request POST"*) file=$(echo "$args" | sed -n 's/.*body@\([^ ]*\).*/\1/p'); cp "$file" "$FORGE_POSTED" ;;
  "curl"*"/repository/commits/"*) echo "[{\"iid\": $(cat "$FORGE_PR_NUMBER")}]" ;;
  # Newest first: a reviewer's note quoting a fingerprint of its own, then the pipeline's plan.
  "curl"*"/notes"*)  python3 -c 'import json,sys; print(json.dumps([{"body": "<!-- reconciler-fingerprint: 00000000000000000000 -->", "author": {"username": "mallory"}}, {"body": open(sys.argv[1]).read(), "author": {"username": "reconciler-bot"}}]))' "$FORGE_POSTED" ;;
  *) echo "forge double: unexpected call" >&2; exit 1 ;;
esac
"""


def load(name: str) -> dict:
    return yaml.safe_load((PIPELINES / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name, schema", [("github-actions.yml", "vendor.github-workflows"),
                                          ("gitlab-ci.yml", "vendor.gitlab-ci")])
def test_pipelines_follow_the_forges_schemas(name, schema):
    proc = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", schema, str(PIPELINES / name)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_github_pipeline_runs_validate_and_plan_on_pull_requests_apply_on_main_and_a_nightly_plan():
    workflow = load("github-actions.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"pull_request", "push", "schedule", "workflow_dispatch"}
    assert triggers["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert "pull_request" in jobs["plan"]["if"] and "push" in jobs["apply"]["if"] and "schedule" in jobs["drift"]["if"]
    runs = {job: " ".join(s.get("run", "") for s in spec["steps"]) for job, spec in jobs.items()}
    assert "reconciler validate" in runs["plan"] and "--output markdown" in runs["plan"]
    assert "apply --ref" in runs["apply"] and "--approved-plan" in runs["apply"] and "--shard" in runs["apply"]
    # One apply job per shard the shards job lists, each its own concurrency group.
    assert jobs["apply"]["needs"] == "shards" and 'shards --ref "$GITHUB_SHA" --output json' in runs["shards"]
    assert jobs["apply"]["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.shards.outputs.shards) }}"
    assert jobs["apply"]["concurrency"]["group"] == "reconciler-apply-${{ matrix.shard.name }}"
    assert "reconciler attest" in runs["shards"] and "reconciler attest" not in runs["apply"]  # once per push
    assert "--since-applied" not in runs["drift"]  # the nightly plan is a full one


@pytest.fixture(scope="module")
def runner_temp(snapshot_release, tmp_path_factory) -> Path:
    """A runner's $RUNNER_TEMP where the GitHub template's install step has installed the
    release, afresh and checked.  The jobs below run every other step with that copy on PATH
    (the install itself would be the same each time: about 20 s)."""
    temp = tmp_path_factory.mktemp("runner-temp")
    step = next(s for s in load("github-actions.yml")["jobs"]["plan"]["steps"] if s.get("id") == "install")
    github_path = temp / "github-path"
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=temp,
                          env={**os.environ, "RUNNER_TEMP": str(temp), "GITHUB_PATH": str(github_path),
                               "RECONCILER_REQUIREMENTS": str(_requirements(snapshot_release))},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert github_path.read_text().split() == [str(temp / "reconciler" / "bin")]
    return temp


def _requirements(release: Path) -> Path:
    return next(release.glob("reconciler-salud-*.requirements.txt"))


def test_the_install_step_installs_the_pinned_release_in_an_environment_of_its_own(runner_temp):
    from reconciler import __version__

    venv = runner_temp / "reconciler"
    said = subprocess.run([str(venv / "bin" / "reconciler"), "--version"], capture_output=True, text=True, cwd="/")
    assert said.stdout == f"reconciler {__version__}\n"  # the release itself, not a checkout (+g<commit>)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import reconciler.cli; print(reconciler.cli.__file__)"],
                           capture_output=True, text=True, cwd="/").stdout
    assert where.startswith(str(venv / "lib")), where
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True).stdout
    assert f"reconciler-salud=={__version__}" in listed.splitlines()
    assert not any(line.lower().startswith("reconciler==") for line in listed.splitlines())


def _gitlab_install(requirements: Path, job: str) -> tuple[subprocess.CompletedProcess, Path]:
    """The GitLab template's before_script (but the fetch) over `requirements`, as job `job`."""
    before = [line for line in load("gitlab-ci.yml")["default"]["before_script"] if "git fetch" not in line]
    venv = Path(f"/tmp/reconciler-venv-{job}")
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", "\n".join(before)],
                          cwd=requirements.parent, capture_output=True, text=True,
                          env={**os.environ, "CI_JOB_ID": job, "RECONCILER_REQUIREMENTS": str(requirements)})
    return proc, venv


@pytest.mark.parametrize("tamper", ["the wheel", "a dependency"])
def test_the_install_step_refuses_a_requirements_file_whose_files_are_not_the_hashed_ones(
        snapshot_release, tmp_path, tamper):
    """A requirements file where one SHA-256 no longer matches (a wheel replaced on the server,
    a dependency swapped): pip installs nothing and the job stops before any reconciler runs."""
    text = _requirements(snapshot_release).read_text()
    # Every hash of one package (a dependency's lists one per file PyPI holds for it).
    block = re.search(r"^reconciler-salud @ .*?(?=^\S)" if tamper == "the wheel" else r"^pyyaml==.*?(?=^\S)",
                      text, re.MULTILINE | re.DOTALL).group(0)
    tampered = tmp_path / "requirements.txt"
    tampered.write_text(text.replace(block, re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, block)))
    proc, venv = _gitlab_install(tampered, f"tamper-{tmp_path.name}")
    try:
        assert proc.returncode != 0 and "DO NOT MATCH THE HASHES" in proc.stderr.upper(), proc.stderr
        assert not (venv / "bin" / "reconciler").exists()
    finally:
        subprocess.run(["rm", "-rf", str(venv)])


@pytest.mark.parametrize("line", ["--no-binary :all:", "    -r https://evil.example/more.txt",
                                  "--extra-index-url https://evil.example/simple", "pyyaml",
                                  'pyyaml==6.0.4 ; python_version > "3" --no-binary :all: \\'])
def test_the_install_step_refuses_a_requirements_file_holding_more_than_pins_and_hashes(
        snapshot_release, tmp_path, line):
    """pip obeys option lines in a requirements file over its command line: a --no-binary brings
    back sdists and their unhashed build dependencies, a -r another file.  Refused before pip runs."""
    hostile = tmp_path / "requirements.txt"
    hostile.write_text(_requirements(snapshot_release).read_text() + line + "\n")
    for job in ("plan", "apply", "drift"):  # the GitHub template's three copies of the step
        step = next(s for s in load("github-actions.yml")["jobs"][job]["steps"] if s.get("id") == "install")
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path,
                              env={**os.environ, "RUNNER_TEMP": str(tmp_path), "GITHUB_PATH": str(tmp_path / "p"),
                                   "RECONCILER_REQUIREMENTS": str(hostile)}, capture_output=True, text=True)
        assert proc.returncode == 1 and "holds more than a release's pins and hashes" in proc.stdout, proc.stderr
        assert not (tmp_path / "reconciler").exists()  # pip never ran
    proc, venv = _gitlab_install(hostile, f"hostile-{tmp_path.name}")
    assert proc.returncode == 1 and "holds more than a release's pins and hashes" in proc.stdout
    assert not venv.exists()


class Forge:
    """A bare 'origin', a CI checkout of it, the test double of the forge on PATH, the runner's
    temporary directory with the release installed."""

    def __init__(self, sandbox, tmp: Path, runner_temp: Path, release: Path):
        self.sandbox, self.tmp = sandbox, tmp
        self.runner_temp, self.requirements = runner_temp, _requirements(release)
        self.origin = tmp / "origin.git"
        subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(self.origin)], check=True)
        sandbox.repo.git.create_remote("origin", str(self.origin))
        self.bin = tmp / "forge-bin"
        self.bin.mkdir()
        for tool in ("gh", "curl"):
            (self.bin / tool).write_text(FORGE_DOUBLE)
            (self.bin / tool).chmod(0o755)
        self.log, self.posted, self.pr = tmp / "forge.log", tmp / "posted.md", tmp / "pr-number"
        self.pr.write_text("1")
        self.ci_env, self.ci_path = tmp / "github-env", tmp / "github-path"
        self.outputs = tmp / "github-output"

    def env(self, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "CI_"))}
        env.update(extra)
        # The pipeline's own inventory (inventory/production.yaml) is replaced by the sandbox's.
        # The checkout's .venv is not on PATH: the installed release must be what runs.
        path = [d for d in env["PATH"].split(":") if Path(d).resolve() != VENV_BIN.resolve()]
        env.update(PATH=":".join([str(self.bin), str(self.runner_temp / "reconciler" / "bin"), *path]),
                   FORGE_LOG=str(self.log),
                   FORGE_POSTED=str(self.posted), FORGE_PR_NUMBER=str(self.pr),
                   RECONCILER_INVENTORY=str(self.sandbox.inventory), GITHUB_ENV=str(self.ci_env),
                   GITHUB_STEP_SUMMARY=str(self.tmp / "summary.md"), GITHUB_REPOSITORY="ssm/identidades",
                   GITHUB_PATH=str(self.ci_path), RUNNER_TEMP=str(self.runner_temp), NO_COLOR="1")
        return env

    def push(self, *refs: str) -> None:
        self.sandbox.repo.git.git.push("origin", *refs)

    def run_github_job(self, job: str, context: dict | None = None, **extra: str) -> list[tuple[str, int, str]]:
        """Run the job's steps like the runner: bash -eo pipefail, $GITHUB_ENV carried over,
        a failed step stops the job except for `if: always()` steps; `context` gives the
        expressions of a matrix job.  Returns (step, exit, output); the step outputs are in
        self.outputs."""
        workflow = load("github-actions.yml")
        context = context or {}
        env = self.env(**{k: _expression(str(v), context) for k, v in workflow.get("env", {}).items()},
                       **{k: _expression(str(v), context) for k, v in (workflow["jobs"][job].get("env") or {}).items()},
                       GITHUB_OUTPUT=str(self.outputs), **extra)
        self.outputs.write_text("")
        env["RECONCILER_REQUIREMENTS"] = str(self.requirements)  # the repository's copy of the release's file
        self.ci_env.write_text("")
        self.ci_path.write_text("")
        results, failed = [], False
        for step in workflow["jobs"][job]["steps"]:
            if "uses" in step or step.get("id") == "install":
                continue  # checkout: the sandbox's repository; install: done by runner_temp, on PATH
            if failed and step.get("if") != "always()":
                continue
            step_env = {k: _expression(str(v), context) for k, v in (step.get("env") or {}).items()}
            if "RECONCILER_INVENTORY" in step_env:  # the sandbox's inventory stands in for the institution's
                step_env["RECONCILER_INVENTORY"] = str(self.sandbox.inventory)
            for line in self.ci_env.read_text().splitlines():
                key, _, value = line.partition("=")
                env[key] = value
            added = [d for d in self.ci_path.read_text().splitlines() if d]
            env["PATH"] = ":".join([*reversed(added), *env["PATH"].split(":")]) if added else env["PATH"]
            self.ci_path.write_text("")
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                  cwd=self.sandbox.repo.root, env={**env, **step_env}, capture_output=True, text=True)
            results.append((step["name"], proc.returncode, proc.stdout + proc.stderr))
            failed = failed or proc.returncode != 0
        return results

    def run_gitlab_job(self, job: str, **extra: str) -> subprocess.CompletedProcess:
        pipeline = load("gitlab-ci.yml")
        # The install lines are the GitHub step's (runner_temp installed the release, on PATH);
        # the GitLab copy is run by the tests of refusals above.
        before = [line for line in pipeline["default"]["before_script"]
                  if "RECONCILER_VENV" not in line and "RECONCILER_REQUIREMENTS" not in line]
        script = "\n".join(before + pipeline[job]["script"])
        variables = {**pipeline["variables"], **(pipeline[job].get("variables") or {}),
                     "CI_API_V4_URL": "https://gitlab.example/api/v4", "CI_PROJECT_ID": "7",
                     "RECONCILER_BOT_USERNAME": "reconciler-bot", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "1", **extra}
        env = self.env(**variables)
        env["RECONCILER_REQUIREMENTS"] = str(self.requirements)
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                              cwd=self.sandbox.repo.root, env=env, capture_output=True, text=True)


# What the runner would put in the expressions the steps' env uses (the lab reads its password
# from a file, so the secret is empty here).
CONTEXT = {"github.event.number": "1", "github.token": "test-token", "secrets.RECONCILER_AD_PASSWORD": "",
           "secrets.RECONCILER_AD_READ_PASSWORD": "", "secrets.RECONCILER_BOT_KEY": "",
           "secrets.RECONCILER_PBX_DB_PASSWORD": "", "secrets.RECONCILER_PBX_DB_READ_PASSWORD": "",
           "secrets.RECONCILER_DOVEADM_KEY": "",
           # The apply key: the tests' own (conftest sets RECONCILER_APPLY_KEY for the session).
           "secrets.RECONCILER_APPLY_KEY": "", "vars.RECONCILER_APPLY_PUBLIC_KEY": "", "vars.RECONCILER_TRUST_ROOT": "",
           "github.event.before": ""}


def _expression(value: str, context: dict | None = None) -> str:
    return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: {**CONTEXT, **(context or {})}[m.group(1)], value)


def _apply_shards(forge: "Forge", head: str) -> list[tuple[str, int, str]]:
    """The apply as GitHub runs it: the shards job, then one apply job per shard it listed."""
    results = forge.run_github_job("shards", GITHUB_SHA=head)
    assert all(code == 0 for _n, code, _o in results), results
    listed = dict(line.split("=", 1) for line in forge.outputs.read_text().splitlines())["shards"]
    out = []
    for shard in json.loads(listed):
        out += forge.run_github_job("apply", {"matrix.shard.name": shard["name"]}, GITHUB_SHA=head)
    return out


def _exits(results) -> dict[str, int]:
    return {name: code for name, code, _ in results}


@pytest.mark.lab  # the pipeline's steps run against a sandbox in the lab's AD
def test_github_pipeline_steps_plan_a_pull_request_apply_it_on_merge_and_report_drift(sandbox, tmp_path, runner_temp,
        snapshot_release):
    forge = Forge(sandbox, tmp_path, runner_temp, snapshot_release)
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    sandbox.repo.squash_merge("Alta")
    forge.push("main")
    # Pull request: GitHub checks out the test merge of the branch into main, detached.
    sandbox.repo.add("CS-JIUTEPEC", person("SSM-000002", curp=None, given_names="Zoé", first_surname="Güemes"))
    sandbox.repo.git.git.checkout("-q", "-b", "alta-zoe")
    sandbox.repo.write()
    sandbox.repo.git.git.add("-A")
    sandbox.repo.git.git.commit("-q", "-m", "Alta de Zoé")
    sandbox.repo.git.git.checkout("-q", "main")
    sandbox.repo.git.git.merge("-q", "--no-ff", "--no-edit", "alta-zoe")
    sandbox.repo.git.git.checkout("-q", "--detach", "HEAD")
    results = forge.run_github_job("plan", GITHUB_BASE_REF="main")
    assert all(code == 0 for code in _exits(results).values()), results
    posted = forge.posted.read_text(encoding="utf-8")
    assert "reconciler-fingerprint: " in posted and "zguemeso (Zoé Güemes O'Brien)" in posted
    # The pull request's own change awaits its approval; the alta already on main is judged.
    zoe = next(line for line in posted.splitlines() if "zguemeso" in line)
    jose = next(line for line in posted.splitlines() if "jnunezo" in line)
    # The templates leave the language to the inventory (LC_ALL=C.UTF-8): the lab's, Spanish.
    assert "⏳ en este pull request: necesita 1 aprobador distinto del solicitante" in zoe
    assert "✅ aprobado por" in jose
    assert "gh pr comment 1 --body-file plan.md --edit-last" in forge.log.read_text()
    # Merge: the squash commit with the reviewers' trailers lands on main; the apply job runs.
    sandbox.repo.git.git.checkout("-q", "main")
    sandbox.repo.git.git.reset("-q", "--hard", "origin/main")
    head = sandbox.repo.squash_merge("Alta de Zoé", approvers=(APPROVER_1,))
    forge.push("main")
    results = _apply_shards(forge, head)
    assert all(code == 0 for code in _exits(results).values()), results
    assert sandbox.account("zguemeso") is not None
    apply_output = dict((n, o) for n, _, o in results)["Apply"]
    # Pinned to the fingerprint posted on the pull request: the squash commit has the same
    # desired_state tree as the pull request's test merge, and the directory did not move.
    assert "gh pr view 1 --json comments" in forge.log.read_text()
    assert "Aplicación completa: se aplicaron 11 altas, 0 modificaciones, 0 bajas; 11 verificadas" in apply_output, \
        apply_output
    assert "Aplicación completa" in (tmp_path / "summary.md").read_text(encoding="utf-8")  # the job's summary
    remote = subprocess.run(["git", "ls-remote", str(forge.origin)], capture_output=True, text=True).stdout
    applied = subprocess.run(["git", "-C", str(forge.origin), "rev-parse", "refs/reconciler/applied/ad-test^{commit}"],
                             capture_output=True, text=True).stdout.strip()
    assert applied == head and "refs/notes/reconciler" in remote
    # Nightly: a hand edit is drift; the job fails and its summary shows it.
    sandbox.conn.modify(sandbox.account("jnunezo")["dn"], {"title": [(MODIFY_REPLACE, ["Otro"])]})
    results = forge.run_github_job("drift")
    assert _exits(results) == {"Fetch the signed approvals, what was applied and the work orders": 0,
                               "Full plan of main": 2, "Prove the security rules": 0,  # no firewall here
                               "Work orders past their SLA": 0}  # no system without an API here
    assert "cambiado fuera del reconciliador (deriva)" in (tmp_path / "summary.md").read_text(encoding="utf-8")


@pytest.mark.lab  # the pipeline's steps run against a sandbox in the lab's AD
def test_github_apply_refuses_when_the_directory_moved_after_the_plan_was_approved(sandbox, tmp_path, runner_temp,
        snapshot_release):
    forge = Forge(sandbox, tmp_path, runner_temp, snapshot_release)
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    head = sandbox.repo.squash_merge("Alta")
    forge.push("main")
    assert _exits(forge.run_github_job("plan", GITHUB_BASE_REF="main"))["Plan"] == 0
    assert sandbox.conn.add(sandbox.root, "organizationalUnit")  # someone prepares the OU by hand
    results = _apply_shards(forge, head)
    exits = _exits(results)
    assert exits["Apply"] == 0 and exits["Fail when something was not applied"] == 1
    output = dict((n, o) for n, _, o in results)["Apply"]
    # The shard's one target, pinned to its own fingerprint in the plan the reviewers saw.
    fingerprint = re.search(r"reconciler-fingerprint ad-test: ([0-9a-f]+)", forge.posted.read_text()).group(1)
    assert f"no la aprobada {fingerprint}" in output and sandbox.account("jnunezo") is None


@pytest.mark.lab  # the pipeline's steps run against a sandbox in the lab's AD
def test_gitlab_pipeline_scripts_plan_apply_and_report_drift(sandbox, tmp_path, runner_temp,
        snapshot_release):
    forge = Forge(sandbox, tmp_path, runner_temp, snapshot_release)
    sandbox.repo.add("HG-CUERNAVACA", person("SSM-000001"))
    head = sandbox.repo.squash_merge("Alta")
    forge.push("main")
    proc = forge.run_gitlab_job("validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = forge.run_gitlab_job("plan", CI_MERGE_REQUEST_IID="1", CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reconciler-fingerprint: " in forge.posted.read_text(encoding="utf-8")
    # The template's matrix names the example inventory's shard, and a matrix of more jobs than
    # shards is as wrong: each job refuses before anything is applied.
    for shard, jobs in (("ad-ssm", "1"), ("ad-test", "2")):
        proc = forge.run_gitlab_job("apply", CI_COMMIT_SHA=head, RECONCILER_PUSH_URL=str(forge.origin),
                                    RECONCILER_SHARD=shard, CI_NODE_TOTAL=jobs)
        said = proc.stdout + proc.stderr
        assert proc.returncode == 1 and "no es el único fragmento del inventario" in said, said
        assert sandbox.account("jnunezo") is None
    proc = forge.run_gitlab_job("apply", CI_COMMIT_SHA=head, RECONCILER_PUSH_URL=str(forge.origin),
                                RECONCILER_SHARD="ad-test")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "/merge_requests/1/notes?sort=desc" in forge.log.read_text()  # the approved plan's fingerprint
    assert sandbox.account("jnunezo") is not None
    remote = subprocess.run(["git", "ls-remote", str(forge.origin)], capture_output=True, text=True).stdout
    assert "refs/reconciler/applied/ad-test" in remote
    proc = forge.run_gitlab_job("drift")
    assert proc.returncode == 0 and "Sin cambios." in proc.stdout


def test_pull_request_and_nightly_jobs_hold_no_write_secret():
    """A pull request can change the workflow and read what its job holds: the plan and drift
    jobs run on the read-only runner with the read-only account, never the apply's secrets."""
    jobs = load("github-actions.yml")["jobs"]
    for name in ("plan", "drift"):
        text = yaml.safe_dump(jobs[name])
        assert jobs[name]["runs-on"] == ["self-hosted", "reconciler-plan"]
        for secret in ("RECONCILER_AD_PASSWORD", "RECONCILER_PBX_DB_PASSWORD", "RECONCILER_APPLY_KEY",
                       "RECONCILER_BOT_KEY"):
            assert f"secrets.{secret} " not in text and f"secrets.{secret}}}" not in text, (name, secret)
        for secret in ("RECONCILER_AD_READ_PASSWORD", "RECONCILER_PBX_DB_READ_PASSWORD"):  # what plans read with
            assert f"secrets.{secret} }}" in text, (name, secret)
    assert jobs["apply"]["environment"] == "production" and "RECONCILER_APPLY_KEY" in yaml.safe_dump(jobs["apply"])
    gitlab = load("gitlab-ci.yml")
    assert gitlab["default"]["tags"] == ["reconciler-plan"] and gitlab["apply"]["tags"] == ["reconciler"]
    for name in ("plan", "drift"):
        assert "RECONCILER_GITLAB_TOKEN" not in " ".join(gitlab[name]["script"])
        # The apply's inventory: plans bind with its read_bind account, never a second file that could drift
        assert "RECONCILER_INVENTORY" not in (gitlab[name].get("variables") or {})
