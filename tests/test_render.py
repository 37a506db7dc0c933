"""Plan rendering: terraform-like text, Markdown for pull requests, JSON; progress in CI logs."""
from __future__ import annotations

import pytest

import io
import json

from rich.console import Console

from reconciler.cli.reconcile import _progress
from reconciler.plan import AttributeChange, Change, Conflict, Movement, Plan
from reconciler.render.plan import MARKDOWN_LIMIT, plan_json, plan_markdown, print_plan

ALTA = Change(Movement.ALTA, "ad", "account", "E1", "jnunezo (José Ñúñez O'Brien)",
              (AttributeChange("title", None, "Médico"), AttributeChange("groups", None, ("GG-A", "GG-B"))),
              folio="F|1")
MOD = Change(Movement.MODIFICACION, "ad", "account", "E2", "amora (Ana Mora)",
             (AttributeChange("title", "Médica", "Jefa"), AttributeChange("groups", ("GG-A",), ("GG-B",))),
             reason="changed outside the reconciler (drift)", drift=True)
BAJA = Change(Movement.BAJA, "ad", "account", "E3", "lpena (Luis Peña)",
              (AttributeChange("enabled", True, False),), folio="RH/377")
PLAN = Plan((ALTA, MOD, BAJA), (Conflict("ad", "E4", "xzuniga (X)", "held by unmanaged object CN=x"),),
            "commit abc on main", ("a warning",))


def text(plan: Plan, color: bool = False) -> str:
    buf = io.StringIO()
    print_plan(plan, Console(file=buf, force_terminal=color, no_color=not color, width=200, highlight=False))
    return buf.getvalue()


def test_text_plan_reads_like_terraform():
    out = text(PLAN)
    assert "Target ad" in out
    assert "  + account jnunezo (José Ñúñez O'Brien)  # folio F|1" in out
    assert '      + title                     = "Médico"' in out
    assert '      ~ title                     "Médica" → "Jefa"' in out
    assert "      + groups GG-B" in out and "      - groups GG-A" in out
    assert "  - account lpena (Luis Peña)  # folio RH/377" in out
    assert "      ~ enabled                   yes → no" in out
    assert "1 conflict (objects the reconciler does not own" in out
    assert "xzuniga (X): held by unmanaged object CN=x" in out
    assert "Warning: a warning" in out
    assert out.rstrip().endswith("Plan: 1 alta, 1 modificación, 1 baja.")
    assert "\x1b[" not in out
    assert "\x1b[32m+" in text(PLAN, color=True)  # green altas on a terminal


def test_empty_plan_says_so():
    assert text(Plan(())).rstrip().endswith("No changes. Every target matches the desired state.")


def test_json_plan_has_summary_and_changes():
    data = json.loads(plan_json(PLAN))
    assert data["summary"] == {"adopciones": 0, "altas": 1, "modificaciones": 1, "bajas": 1, "conflicts": 1}
    assert data["changes"][1]["drift"] is True
    assert data["changes"][1]["attributes"][1] == {"name": "groups", "before": ["GG-A"], "after": ["GG-B"]}
    assert data["conflicts"][0]["key"] == "E4" and data["source"] == "commit abc on main"


def test_markdown_plan_for_pull_requests():
    md = plan_markdown(PLAN)
    assert "**Plan: 1 alta, 1 modificación, 1 baja.**" in md
    assert "| + | account | jnunezo (José Ñúñez O'Brien) | F\\|1 | title: `\"Médico\"`<br>groups: `GG-A`, `GG-B` |" in md
    assert "title: `\"Médica\"` → `\"Jefa\"`" in md and "+groups `GG-B`" in md and "−groups `GG-A`" in md
    assert "changed outside the reconciler (drift)" in md
    assert "#### ⚠ 1 conflict (left alone, resolve it by hand)" in md


def test_markdown_is_cut_to_fit_a_comment():
    many = tuple(Change(Movement.ALTA, "ad", "account", f"E{i}", f"user{i} (Nombre Largo {i})",
                        (AttributeChange("title", None, "x" * 100),)) for i in range(2000))
    md = plan_markdown(Plan(many))
    assert len(md) < MARKDOWN_LIMIT + 500 and "too long for one comment" in md


def test_progress_in_a_ci_log_prints_a_line_every_tenth():
    buf = io.StringIO()
    _, start = _progress(Console(file=buf, force_terminal=False))
    advance = start("ad-lab", 1000)
    for _ in range(1000):
        advance(1)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "applying to ad-lab: 100/1000" and lines[-1] == "applying to ad-lab: 1000/1000"
    assert len(lines) == 10


@pytest.mark.parametrize("value", [
    r"\[Restablecer acceso\](https://evil.example/login)",  # a backslash that would undo the bracket's escape
    "[Restablecer acceso](https://evil.example/login)",
    "<a href='https://evil.example'>aquí</a>",
    "visite https://evil.example/login o www.evil.example",  # what GitHub links by itself
    "*urgente* ~~tachado~~ `código`",
])
def test_a_value_in_markdown_opens_no_link_html_or_formatting(value):
    """What a comment, a report or a work order prints of a value: its words, never markup
    (rendered here with markdown-it, the CommonMark parser rich uses; GitHub's linkify is the
    scheme and www. rule)."""
    from markdown_it import MarkdownIt

    from reconciler.markdown import markdown_cell

    cell = markdown_cell(value)
    html = MarkdownIt("commonmark").render(cell)
    assert "<a " not in html and "<em>" not in html and "<code>" not in html and "<del>" not in html
    assert "://" not in html and "www." not in html  # nothing left for a linkifier
    assert html.replace("\u200b", "").count("evil.example") == value.count("evil.example")  # the words all there
