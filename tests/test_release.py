"""What a runner installs is what was released: no package taken from the index by name, a
release built and summed from its commit, installed in an environment of its own, and a copy
that says exactly which release it is (and refuses to run beside PyPI's unrelated `reconciler`).
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import PROJECT
from reconciler import __version__

VENV = Path(sys.executable).parent.parent

# -- no install by name --------------------------------------------------------------------

INSTALL = re.compile(r"""\b(?:pip3?(?:\.\d+)?|pipx|uv\s+pip|uv\s+tool|easy_install)["']?"""
                     r"(?P<pre>(?:\s+--?[\w-]+)*)\s+install\b(?P<args>[^\n;|&#)]*)")
RUN_BY_NAME = re.compile(r"\b(?:pipx\s+run|uvx|uv\s+add|uv\s+run\s+--with)\b")
WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "--only-binary", "--no-binary", "--config-settings",
              "-i", "--index-url", "--extra-index-url", "--prefix", "--target", "-t", "--root", "--python-version",
              "--platform", "--find-links", "-f", "--cache-dir"}
# Options that let pip take files from elsewhere than the hashed list, or build them from source.
ELSEWHERE = {"--no-binary", "-i", "--index-url", "--extra-index-url", "--find-links", "-f", "--trusted-host"}


def installs_by_name(text: str) -> list[str]:
    """The install commands in a text that could take a package from the index by its name, or
    run code the hashes do not cover: anything but `-r FILE` with --require-hashes, --no-deps
    and --only-binary (and no other source of files), or the project itself (`.`, `-e .`) with
    --no-deps and --no-build-isolation.  A variable ($RECONCILER_PIP_SPEC) counts as a name."""
    text = text.replace("\\\n", " ")
    found = [m.group(0) for m in RUN_BY_NAME.finditer(text)]
    for match in INSTALL.finditer(text):
        words = [w.strip("'\"") for w in (match.group("pre") + " " + match.group("args")).split()]
        options = {w.split("=")[0] for w in words if w.startswith("-")}
        positional, skip = [], False
        for word in words:
            if skip:
                skip = False
            elif word.startswith("-"):
                skip = word in WITH_VALUE
            else:
                positional.append(word)
        hashed = not positional and {"--require-hashes", "--no-deps", "--only-binary"} <= options
        own_project = positional == ["."] and {"--no-deps", "--no-build-isolation"} <= options
        if not (hashed or own_project) or options & ELSEWHERE:
            found.append(match.group(0).strip())
    return found


def test_the_install_check_catches_installs_by_name():
    assert installs_by_name('python3 -m pip install --user "$RECONCILER_PIP_SPEC"')
    assert installs_by_name("pip install reconciler")
    assert installs_by_name("pip install -r requirements.txt")  # pinned perhaps, but not hashed
    assert installs_by_name("pip install --require-hashes -r lock.txt pyyaml")
    assert installs_by_name("pip install -e '.[test]'")  # the project's dependencies, by name
    assert installs_by_name("uv pip install \\\n  rich")
    assert installs_by_name("python3 -m pip -q install reconciler")  # options before `install`
    assert installs_by_name("pip --isolated install x") and installs_by_name("pip3.11 install x")
    assert installs_by_name("pipx run reconciler") and installs_by_name("uvx reconciler")
    assert installs_by_name("uv add rich")
    assert installs_by_name("pip install --no-deps .")  # its build environment comes from the index by name
    assert installs_by_name("pip install --require-hashes --no-deps --only-binary :all: --no-binary :all: -r x")
    assert installs_by_name("pip install --require-hashes --no-deps --only-binary :all: --extra-index-url u -r x")
    assert installs_by_name("pip install --require-hashes -r lock.txt")  # sdists would run their setup code
    assert not installs_by_name('"$V/bin/python" -m pip install -q --require-hashes --no-deps --only-binary :all: -r x')
    assert not installs_by_name('PIP_CONFIG_FILE=/dev/null "$V/bin/python" -m pip --isolated install --quiet '
                                '--require-hashes --no-deps --only-binary :all: -r "$F"')
    assert not installs_by_name("pip install --no-deps --no-build-isolation -e . --config-settings editable_mode=compat")


def test_no_file_in_the_repository_installs_a_package_by_name():
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=PROJECT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    checked, offenders = set(), {}
    for name in filter(None, files):
        path = PROJECT / name
        if name.startswith("tests/test_release.py") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if name.endswith(".md"):  # prose may name a command to warn against it; its code blocks are commands
            text = "\n".join(re.findall(r"^```[^\n]*\n(.*?)^```", text, re.MULTILINE | re.DOTALL))
        if INSTALL.search(text):
            checked.add(name)
            if bad := installs_by_name(text):
                offenders[name] = bad
    assert not offenders
    # The check read the files that do install something (else it proves nothing).
    assert {"ci/pipelines/github-actions.yml", "ci/pipelines/gitlab-ci.yml", "ci/setup", "ci/install-runner",
            "ci/lock"} <= checked


# -- the release ----------------------------------------------------------------------------

def _requirements(release: Path) -> Path:
    return next(release.glob("reconciler-salud-*.requirements.txt"))


def test_a_release_is_a_checked_wheel_and_sdist_with_their_digests_and_a_hashed_requirements_file(snapshot_release):
    wheel = snapshot_release / f"reconciler_salud-{__version__}-py3-none-any.whl"
    sdist = snapshot_release / f"reconciler_salud-{__version__}.tar.gz"
    requirements = _requirements(snapshot_release)
    assert subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=snapshot_release).returncode == 0
    summed = {line.split()[1] for line in (snapshot_release / "SHA256SUMS").read_text().splitlines()}
    assert summed == {wheel.name, sdist.name, requirements.name}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"reconciler_salud-{__version__}.dist-info/METADATA").decode()
    # What a runner needs beside the code: the catalogs (Spanish), the schemas.
    assert {"reconciler/locale/es_MX/LC_MESSAGES/reconciler.mo", "reconciler/desired/schemas/users.schema.json",
            "reconciler/config/inventory.schema.json", "reconciler/cli/__init__.py"} <= names
    assert "Name: reconciler-salud\n" in metadata and f"Version: {__version__}\n" in metadata
    # The wheel first, by its digest; then every dependency, each with its digests.
    text = requirements.read_text()
    first = re.search(r"^reconciler-salud @ (\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", text, re.MULTILINE)
    assert first.group(1) == wheel.as_uri() and first.group(2) == hashlib.sha256(wheel.read_bytes()).hexdigest()
    pins = re.findall(r"^([a-z0-9-]+)==\S+", text, re.MULTILINE)
    assert {"ldap3", "pyyaml", "pyinfra", "netmiko", "babel"} <= set(pins)
    blocks = re.split(r"\n(?=\S)", text.split("\nreconciler-salud @", 1)[1])
    assert all("--hash=sha256:" in block for block in blocks if not block.startswith("#"))


def test_the_same_commit_builds_the_same_wheel(snapshot_release, tmp_path):
    again = _release("--snapshot", "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    wheel = f"reconciler_salud-{__version__}-py3-none-any.whl"
    assert (tmp_path / "again" / wheel).read_bytes() == (snapshot_release / wheel).read_bytes()


def _release(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess:
    return subprocess.run([str(cwd / "ci" / "release"), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "RECONCILER_VENV": str(VENV)})


def test_a_release_needs_a_final_version_its_changelog_entry_and_a_clean_tree(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)], check=True)
    # The release script and changelog under test are the working tree's, not the last commit's.
    for name in ("ci/release", "CHANGELOG.md"):
        (clone / name).write_bytes((PROJECT / name).read_bytes())
    git = ["git", "-C", str(clone), "-c", "user.name=Release", "-c", "user.email=release@salud.lab"]
    init = clone / "reconciler" / "__init__.py"

    def commit(message: str) -> None:
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", message], check=True)

    init.write_text(re.sub(r'__version__ = "[^"]*"', '__version__ = "9.8.7.dev0"', init.read_text()))
    commit("next")
    proc = _release("--url-base", "https://forge.salud.lab/r", cwd=clone)
    assert proc.returncode == 1 and "9.8.7.dev0 is not a final release" in proc.stderr
    init.write_text(re.sub(r'__version__ = "[^"]*"', '__version__ = "9.8.7"', init.read_text()))
    commit("Release 9.8.7")
    proc = _release("--url-base", "https://forge.salud.lab/r", cwd=clone)
    assert proc.returncode == 1 and 'CHANGELOG.md has no entry "## [9.8.7] - YYYY-MM-DD"' in proc.stderr
    changelog = clone / "CHANGELOG.md"
    changelog.write_text(changelog.read_text(encoding="utf-8") + "\n## [9.8.7] - 2026-12-02\n\n- A test release.\n",
                         encoding="utf-8")
    (clone / "README.md").write_text("edited, not committed")
    proc = _release("--url-base", "https://forge.salud.lab/r", cwd=clone)
    assert proc.returncode == 1 and "uncommitted changes" in proc.stderr
    subprocess.run([*git, "checkout", "--", "README.md"], check=True)
    commit("Changelog for 9.8.7")
    proc = _release("--url-base", "https://forge.salud.lab/r/", "--out", str(tmp_path / "out"), cwd=clone)
    assert proc.returncode == 0, proc.stderr
    text = _requirements(tmp_path / "out").read_text()
    assert "reconciler-salud @ https://forge.salud.lab/r/reconciler_salud-9.8.7-py3-none-any.whl \\\n" in text
    assert "git tag -s v9.8.7" in proc.stderr


# -- a runner --------------------------------------------------------------------------------

def test_a_runner_gets_the_release_in_an_environment_of_its_own_and_keeps_it_when_a_wrong_file_comes(
        snapshot_release, tmp_path):
    prefix, bin_dir = tmp_path / "opt", tmp_path / "bin"
    requirements = _requirements(snapshot_release)
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    home = prefix / f"{__version__}-{digest[:12]}"

    def install(path: Path | str, sha: str = digest) -> subprocess.CompletedProcess:
        return subprocess.run([str(PROJECT / "ci" / "install-runner"), str(path), "--sha256", sha, "--prefix",
                               str(prefix), "--bin-dir", str(bin_dir)], capture_output=True, text=True)

    def answers() -> str:
        return subprocess.run([str(bin_dir / "reconciler"), "--version"], capture_output=True, text=True, cwd="/").stdout

    proc = install(requirements)
    assert proc.returncode == 0, proc.stderr
    assert answers() == f"reconciler {__version__}\n" and os.readlink(prefix / "current") == home.name
    assert (home / "requirements.txt").read_bytes() == requirements.read_bytes()  # the mark of a complete install
    assert oct((home / "bin").stat().st_mode & 0o777) == "0o755"  # the runner's user can run it, whatever root's umask
    # Refused, nothing changed: a file that is not the release named, a URL in clear, an option
    # line in the file, a wheel name that climbs out of the prefix.
    assert "does not have the SHA-256" in install(requirements, "0" * 64).stderr
    assert "only https://" in install("http://forge.salud.lab/r/x.txt").stderr
    for name, text in {"option": requirements.read_text() + "--no-binary :all:\n",
                       "climb": requirements.read_text().replace("reconciler_salud-", "reconciler_salud-../../x/", 1)
                       }.items():
        hostile = tmp_path / f"{name}.txt"
        hostile.write_text(text)
        proc = install(hostile, hashlib.sha256(hostile.read_bytes()).hexdigest())
        assert proc.returncode == 1 and ("more than a release's pins" in proc.stderr
                                         or "no reconciler-salud wheel" in proc.stderr), proc.stderr
    assert os.readlink(prefix / "current") == home.name and answers() == f"reconciler {__version__}\n"
    assert sorted(p.name for p in prefix.iterdir()) == sorted([".lock", "current", home.name])
    # The same release again: found complete, nothing reinstalled.
    proc = install(requirements)
    assert proc.returncode == 0 and "already complete" in proc.stderr


# -- which copy this is ---------------------------------------------------------------------

def test_a_checkout_names_its_commit_beside_the_release():
    from reconciler.about import exact_version

    head = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert re.fullmatch(re.escape(f"{__version__}+g{head}") + r"(\.dirty)?", exact_version())
    said = subprocess.run([str(VENV / "bin" / "reconciler"), "--version"], capture_output=True, text=True)
    assert said.stdout == f"reconciler {exact_version()}\n"


def _run_with_site(site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler.cli", "--help"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)})


def test_it_refuses_to_run_beside_pypis_unrelated_reconciler(tmp_path):
    """PyPI's `reconciler` (a pandas utility) ships a top-level `reconciler` package too: with it
    installed in the same environment, what runs is not certainly this program."""
    foreign = tmp_path / "reconciler-0.2.2.dist-info"
    foreign.mkdir()
    (foreign / "METADATA").write_text("Metadata-Version: 2.1\nName: reconciler\nVersion: 0.2.2\n")
    (foreign / "RECORD").write_text("reconciler/__init__.py,,\nreconciler/reconciler.py,,\n")
    proc = _run_with_site(tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"another project's package named `reconciler` is installed in this Python environment ({foreign})" \
        in proc.stderr


def test_its_own_metadata_under_the_former_name_is_not_foreign(tmp_path):
    stale = tmp_path / "reconciler.egg-info"  # a checkout installed before the distribution was renamed
    stale.mkdir()
    (stale / "SOURCES.txt").write_text("pyproject.toml\nreconciler/__init__.py\nreconciler/cli/__init__.py\n")
    proc = _run_with_site(tmp_path)
    assert proc.returncode == 0 and "usage: reconciler" in proc.stdout


@pytest.mark.parametrize("lock", ["runtime.txt", "dev.txt", "uv.txt"])
def test_every_locked_package_is_pinned_with_its_digests(lock):
    text = (PROJECT / "ci" / "locks" / lock).read_text()
    blocks = [b for b in re.split(r"\n(?=\S)", text) if b.strip() and not b.startswith("#")]
    assert blocks
    for block in blocks:
        assert re.match(r"[a-z0-9-]+==[^\s;]+", block) and "--hash=sha256:" in block, block
