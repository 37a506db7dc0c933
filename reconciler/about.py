"""Which copy of the reconciler this is.

Audit records and `reconciler --version` name the exact code that ran: the release for an
installed wheel, and for a Git checkout the release its source names plus the commit (so a
record made by a developer's tree is never mistaken for one made by a release).

On PyPI the name `reconciler` belongs to an unrelated project whose wheel also ships a
top-level `reconciler` package: installed in the same environment, its files and ours overwrite
each other.  Our distribution is `reconciler-salud`; `foreign_reconciler` finds the other one.
"""
from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

from reconciler import __version__

DISTRIBUTION = "reconciler-salud"
FOREIGN_DISTRIBUTION = "reconciler"  # PyPI's, not ours (README, "Installing on a runner")
_SOURCE = Path(__file__).resolve().parent.parent  # the checkout, when this runs from one


@functools.cache
def exact_version() -> str:
    """`0.2.0` for an installed release; `0.3.0.dev0+g1a2b3c4d5e6f` for a checkout at that commit,
    with `.dirty` when the reconciler's own files differ from it."""
    if not ((_SOURCE / ".git").exists() and (_SOURCE / "pyproject.toml").is_file()):
        return __version__
    import subprocess  # here, not at the top: the start of every command would pay for it

    try:
        head = _git("rev-parse", "--short=12", "HEAD")
        edited = _git("status", "--porcelain", "--untracked-files=no", "--", "reconciler", "pyproject.toml")
    except (OSError, subprocess.SubprocessError):
        return f"{__version__}+checkout"  # a checkout whose commit cannot be read: never a bare release
    return f"{__version__}+g{head}" + (".dirty" if edited else "")


def _git(*args: str) -> str:
    import subprocess

    # GIT_DIR and friends (set inside a Git hook) would name another repository's commit.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return subprocess.run(["git", "-C", str(_SOURCE), *args], capture_output=True, text=True, check=True,
                          timeout=10, env=env).stdout.strip()


# How installers name the metadata of a distribution called `reconciler` (not reconciler_salud).
_FOREIGN_METADATA = re.compile(r"reconciler(-[^-]+)*\.(dist-info|egg-info)", re.IGNORECASE)


def foreign_reconciler() -> str | None:
    """Where another project's `reconciler` distribution is installed on this Python's path, or
    None.  A directory listing, not importlib.metadata: this runs at every start, and importing
    that costs half of `reconciler --help`.  A distribution of that name that lists this
    program's own files is this program under its former name (a checkout's stale
    reconciler.egg-info), not a foreign one."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if _FOREIGN_METADATA.fullmatch(name) and not _lists_our_files(Path(entry or ".", name)):
                return str(Path(entry or ".", name))
    return None


def _lists_our_files(meta: Path) -> bool:
    for listing in ("RECORD", "SOURCES.txt"):
        try:
            if "reconciler/cli/__init__.py" in (meta / listing).read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False
