"""The plan as people read it, in both languages: the terminal text and the pull request
comment, compared with the snapshots in tests/snapshots/ (UPDATE_SNAPSHOTS=1 rewrites them,
to be read before they are committed).  The Spanish ones are also read as a hospital director
would: no English word may be left in them.

The plan is a real one: altas applied, then a pull request that brings a baja (declared, with
its folio), a modificación, an alta approved by two people and one pushed without approval,
planned from the commit with the approval policy judging each change."""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from fakes import PEOPLE
from rich.console import Console

from reconciler.render.plan import plan_markdown, print_plan

SNAPSHOTS = Path(__file__).parent / "snapshots"
# Words that give English away; none is Spanish (nor a name, a kind of the YAML, or a code).
ENGLISH = {"the", "and", "of", "to", "is", "not", "by", "with", "for", "from", "changes", "change", "target",
           "desired", "state", "scope", "fingerprint", "approved", "approval", "approver", "approvers",
           "needs", "warning", "warnings", "conflict", "conflicts", "no", "yes", "none",
           "declared", "longer", "account", "group", "kind", "object", "signed", "pending", "requester",
           "skips", "apply", "applied", "full", "incremental", "since", "commit", "run", "drift", "reason",
           "title", "groups", "unit", "direct", "push", "merge", "squash", "on", "at", "in", "it", "them"}
ALLOWED = {"commit", "apply", "no", "push", "squash", "merge"}  # terms of the trade the Spanish text keeps


@pytest.fixture
def plan(fakes):
    PEOPLE.setdefault("SSM-000005", {"curp": None, "given_names": "Ñeri", "first_surname": "D'Ávila"})
    fakes.add("SSM-000001", "SSM-000002", "SSM-000003")
    fakes.repo.squash_merge("Altas de Urgencias")
    fakes.apply()
    fakes.repo.baja("SSM-000002")
    fakes.repo.find("SSM-000003")["given_names"] = "Iñaki José"  # the name shown changes
    fakes.add("SSM-000004")
    fakes.repo.squash_merge("Baja, cambio de puesto y un alta")
    fakes.add("SSM-000005")
    fakes.repo.direct_push("Alta sin solicitud")
    yield fakes.plan()
    PEOPLE.pop("SSM-000005", None)


def _stable(text: str) -> str:
    """Commit ids, fingerprints and dates vary between runs; the words do not."""
    text = re.sub(r"\b[0-9a-f]{7,40}\b", "<id>", text)
    return re.sub(r"\b\d{4}-\d\d-\d\dT[\d:.+Z-]+", "<moment>", text)


def _terminal(plan) -> str:
    buffer = io.StringIO()
    print_plan(plan, Console(file=buffer, no_color=True, width=160, highlight=False, soft_wrap=True))
    return buffer.getvalue()


def _compare(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs (UPDATE_SNAPSHOTS=1 to rewrite, then read it)"


def english_left(text: str) -> list[str]:
    """English words in a text meant to be Spanish (outside `code` and the fingerprint comment)."""
    prose = re.sub(r"`[^`]*`|<!--.*?-->|<[^>]+>", " ", text)
    prose = re.sub(r"(?m)^( +[-+~] )\S+", r"\1", prose)  # the terminal plan names attributes by their codes
    return sorted({w for w in re.findall(r"[a-z:]+", prose.lower()) if w in ENGLISH - ALLOWED})


@pytest.mark.parametrize("language", ["es_MX", "en"])
def test_the_plan_in_each_language_matches_its_snapshot(plan, speaking, language):
    speaking(language)
    terminal, markdown = _stable(_terminal(plan)), _stable(plan_markdown(plan))
    _compare(f"plan.{language}.txt", terminal)
    _compare(f"plan.{language}.md", markdown)
    if language == "es_MX":
        assert english_left(terminal) == [] and english_left(markdown) == []
        assert "1 baja" in markdown and "2 altas" in markdown and "1 modificación" in markdown
    else:
        assert english_left(markdown)  # the check does see English


def test_json_is_the_same_in_every_language(plan, speaking):
    from reconciler.render.plan import plan_json

    speaking("es_MX")
    spanish = plan_json(plan)
    speaking("en")
    assert plan_json(plan) == spanish
