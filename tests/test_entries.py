"""The text scanner that splits people files into entries for incremental plans."""
from __future__ import annotations

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.desired.entries import entry_texts, keep_only, kept_text, lines_of, split_entries
from reconciler.desired.yamlfile import LineIndex

names = st.text(alphabet="abcñÑáéü' -ZÁ#:", min_size=1, max_size=12).map(str.strip).filter(bool)
people = st.lists(st.fixed_dictionaries({
    "employee_key": st.from_regex(r"SSM-[0-9]{6}", fullmatch=True),
    "given_names": names,
    "entitlements": st.lists(st.sampled_from(["internet", "vpn", "correo"]), max_size=3),
    "solicitud": st.fixed_dictionaries({"folio": names, "date": st.just("2026-11-20")}),
}), max_size=8, unique_by=lambda p: p["employee_key"])


@settings(max_examples=150, deadline=None)
@given(people=people, indent=st.sampled_from([0, 2, 4]), comments=st.booleans(), keep=st.data())
def test_entries_match_what_yaml_parses_and_blanking_keeps_lines(people, indent, comments, keep):
    # PyYAML writes the items flush under `people:`; people also indent them.
    head, _, body = yaml.safe_dump({"unit": "HG-CUERNAVACA", "people": people}, allow_unicode=True,
                                   sort_keys=False).partition("people:\n")
    if comments:
        body = "\n".join(f"# comentario\n{line}" if line.startswith("- ") else line for line in body.split("\n"))
    body = "\n".join(" " * indent + line if line else line for line in body.split("\n"))
    text = f"{head}people:\n{body}" if body else head  # an empty list: head ends "people: []"
    entries = split_entries(text)
    if not people:
        assert entries is None  # `people: []` is flow style: a full load reads it
        return
    assert [e.key for e in entries] == [p["employee_key"] for p in people]
    index, lines = LineIndex(text), text.split("\n")
    for i, e in enumerate(entries):
        first, last = lines_of(text, e)
        node_first, node_last = index.span(("people", i))
        # The same lines as the YAML node, except the comments before the next entry.
        assert first == node_first and last <= node_last
        assert all(not line.strip() or line.strip().startswith("#") for line in lines[last:node_last])
    wanted = set(keep.draw(st.lists(st.sampled_from([p["employee_key"] for p in people]), unique=True))
                 if people else [])
    blanked, kept = keep_only(text, entries, wanted)
    assert blanked.count("\n") == text.count("\n")
    parsed = yaml.safe_load(blanked)["people"] or []
    assert [p["employee_key"] for p in parsed] == [p["employee_key"] for p in people if p["employee_key"] in wanted]
    assert [people[i]["employee_key"] for i in kept] == [p["employee_key"] for p in parsed]
    compact, kept_again = kept_text(text, entries, wanted)  # what a partial load parses
    assert yaml.safe_load(compact) == yaml.safe_load(blanked) and kept_again == kept


def test_a_file_the_scanner_does_not_understand_is_left_to_a_full_load():
    assert split_entries("unit: X\npeople: [{employee_key: A}]\n") is None
    assert split_entries("unit: X\npeople:\n  - given_names: Ana\n") is None  # an entry without a key
    assert entry_texts(None) == {}
    # Keys YAML reads otherwise than a line scanner would: a block scalar, an alias, a `#` with
    # no blank before it (one scalar in YAML); in the general scan's layout too.
    for value in (">-\n      SSM-000001", "*alias", "SSM-000001#2", "!!str SSM-000001", "'SSM-1'x"):
        for layout in ("  - employee_key: {v}\n    title: Uno\n", "  - title: Uno\n    employee_key: {v}\n"):
            text = "unit: X\npeople:\n" + layout.format(v=value) + "  - employee_key: SSM-000002\n"
            assert split_entries(text) is None, (value, layout)
    # What YAML reads as the key, the scanner reads too: quotes, a comment after a blank.
    for value, key in (("'SSM-1'", "SSM-1"), ('"SSM-1"  # alta', "SSM-1"), ("SSM-1.a_b # c", "SSM-1.a_b")):
        text = f"unit: X\npeople:\n  - employee_key: {value}\n"
        assert [e.key for e in split_entries(text)] == [key] == [yaml.safe_load(text)["people"][0]["employee_key"]]


def test_an_edit_changes_only_that_entrys_text():
    text = "unit: X\npeople:\n  - employee_key: A\n    title: Uno\n  - employee_key: B\n    title: Dos\n"
    before, after = entry_texts(text), entry_texts(text.replace("Dos", "Tres"))
    assert before["A"] == after["A"] and before["B"] != after["B"]


@given(st.text(st.sampled_from("ab\n"), max_size=200), st.lists(st.integers(min_value=0, max_value=200), max_size=30))
def test_a_line_is_the_newlines_before_it_whatever_was_asked_before(text, offsets):
    from reconciler.desired.entries import line_at

    for offset in offsets:
        offset = min(offset, len(text))
        assert line_at(text, offset) == text.count("\n", 0, offset) + 1


def _unit_file(tmp_path, count: int, changed: dict | None = None):
    """desired_state/ with one unit file of `count` people (SSM-000001...), `changed` merged
    into some of them (by position): (the folder, the file, its text)."""
    from conftest import ENTITLEMENTS, UNITS
    from conftest import person as declared

    root = tmp_path / "desired_state"
    (root / "users").mkdir(parents=True)
    (root / "units.yaml").write_text(yaml.safe_dump({"units": UNITS}, allow_unicode=True), encoding="utf-8")
    (root / "entitlements.yaml").write_text(yaml.safe_dump({"entitlements": ENTITLEMENTS}, allow_unicode=True),
                                            encoding="utf-8")
    people = [{**declared(f"SSM-00000{i}", curp=None, given_names=f"Ana {'ABCDE'[i]}", extension=f"42{i}"),
               **(changed or {}).get(i - 1, {})} for i in range(1, count + 1)]
    text = yaml.safe_dump({"unit": "HG-CUERNAVACA", "people": people}, allow_unicode=True, sort_keys=False)
    path = root / "users" / "hg.yaml"
    path.write_text(text, encoding="utf-8")
    return root, path, text


def test_a_partial_load_names_the_files_lines_for_a_problem_in_a_kept_entry(tmp_path):
    """A partial load parses the kept entries without the others' lines (kept_text); a problem
    in one of them, found by the checks or by YAML itself, still names its line in the file."""
    import pytest

    from reconciler.desired.load import load_desired_state
    from reconciler.errors import ValidationFailed

    root, path, text = _unit_file(tmp_path, 4, {2: {"entitlements": ["nadie"]}})  # SSM-000003: unknown entitlement
    lines = text.split("\n")
    only = {"users/hg.yaml": frozenset({"SSM-000001", "SSM-000003"})}
    with pytest.raises(ValidationFailed) as failed:
        load_desired_state(root, only=only)
    [problem] = failed.value.problems
    assert lines[problem.line - 1].strip() == "- nadie" and problem.field == "people[2].entitlements[0]"
    # A key written twice is YAML's own problem: found on the compact text, said at the file's line.
    third = next(i for i, line in enumerate(lines) if "SSM-000003" in line)
    path.write_text("\n".join(lines[:third + 1] + ["  title: Otra"] + lines[third + 1:]), encoding="utf-8")
    with pytest.raises(ValidationFailed) as failed:
        load_desired_state(root, only=only)
    [problem] = failed.value.problems
    assert problem.line == next(i for i, line in enumerate(lines) if line.startswith("  title:") and i > third) + 2
    assert load_desired_state(root, only={"users/hg.yaml": frozenset({"SSM-000001", "SSM-000004"})}).people


def test_a_value_the_scanner_misreads_never_hands_a_partial_load_other_people(tmp_path):
    """A quoted value may go on, less indented, past where the scanner ends its entry: the
    entries it finds are then not the file's.  A partial load sees that its parse is not the
    people it asked for and reads the whole file, as a full load does: no crash, no person
    the file does not declare."""
    from reconciler.desired.load import load_desired_state

    root, path, text = _unit_file(tmp_path, 3)
    lines = text.split("\n")
    title = next(i for i, line in enumerate(lines) if line.startswith("  title:"))
    # The first person's title goes on below, less indented than the list: YAML reads one
    # value; the scanner ends the first entry before that line.
    lines[title:title + 1] = ["  title: 'Jefa", "de piso'"]
    path.write_text("\n".join(lines), encoding="utf-8")
    full = {p.employee_key: p for p in load_desired_state(root).people}
    assert full["SSM-000001"].title == "Jefa de piso"
    for keys in ({"SSM-000001"}, {"SSM-000002"}, {"SSM-000001", "SSM-000003"}):
        partial = load_desired_state(root, only={"users/hg.yaml": frozenset(keys)})
        assert keys <= {p.employee_key for p in partial.people}
        assert all(p == full[p.employee_key] for p in partial.people)
    # A double-quoted value left open in one entry and closed in the next: one person in YAML.
    lines = text.split("\n")
    second = next(i for i, line in enumerate(lines) if "SSM-000002" in line)
    lines[second - 1] = '  title: "Jefa'
    lines.insert(second + 1, '  x"')
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        full_keys = {p.employee_key for p in load_desired_state(root).people}
    except Exception as exc:  # noqa: BLE001 - whatever the full load says, the partial one says too
        full_keys = type(exc)
    for keys in ({"SSM-000002"}, {"SSM-000001"}):
        try:
            found = {p.employee_key for p in load_desired_state(root, only={"users/hg.yaml": frozenset(keys)}).people}
            assert found <= full_keys
        except Exception as exc:  # noqa: BLE001
            assert type(exc) is full_keys


def test_a_value_that_may_go_on_over_lines_leaves_the_file_to_yaml():
    """A quoted or flow value that does not close on its line may go on at any indentation (a
    line at the left edge inside it is no list end, item or `unit:`): not the scanner's to place."""
    item = "  - employee_key: SSM-000001\n    title: {v}\n  - employee_key: SSM-000002\n    title: B\n"
    for value in ("'Jefa\nde piso'", '"Jefa\n- employee_key: X\nde piso"', "[a,\nb]", "{a: 1,\nb: 2}",
                  "!!str 'Jefa\nde piso'", "'it''s\nlong'", '"Jefa \\\nde piso"', "[a, 'b]\nc']"):
        text = "unit: X\npeople:\n" + item.format(v=value)
        assert split_entries(text) is None, value
    # Closed on their line, or a quote inside a plain value: the scanner's.
    for value in ("'Jefa de piso'", "O'Brien", "Z '", "': '''", '"a \\" b"', "[a, b]  # c", "Jefe [interino]", "''''"):
        text = "unit: X\npeople:\n" + item.format(v=value)
        assert [e.key for e in split_entries(text)] == ["SSM-000001", "SSM-000002"], value
        assert yaml.safe_load(text)["people"][1]["title"] == "B"


def test_lines_yaml_reads_otherwise_leave_the_file_to_yaml():
    """Counterexamples of an adversarial review: each made the scanner's lines differ from
    YAML's (a grant blamed on nobody, or another person's entry read for a silent change)."""
    for text in ('--- {unit: X, people: [{employee_key: A, # }]\n entitlements: [admin], # ]\n "note":"x\nunit: Y\n'
                 'people:\n- employee_key: A\n  y"}]}\n',  # a document that is one flow mapping
                 "\ufeff{unit: X, people: [{employee_key: A}]}\n",
                 "unit: X\npeople:\n- employee_key: A\n  entitlements: [sinba, # ]\nadmin]\n",  # a bracket in a comment
                 "unit: X\npeople:\n- employee_key: A\n  entitlements: [sinba, [b]\n]\n",  # a nested one
                 "unit: X\npeople:\n- employee_key: A\n  title: T\n\r\n  entitlements: [admin]\n",  # a CRLF blank line
                 "unit: X\npeople:\n- employee_key: A\n  title: T\n\ufeff entitlements: [admin]\n",  # a BOM first
                 'unit: X\npeople:\n- "employee_key": A\n  curp: |\n    employee_key: B\n- employee_key: B\n',
                 "unit: X\npeople:\n- employee_key: A\n-x: 1\n- employee_key: B\n"):
        assert split_entries(text) is None, text
