"""Hostile notes, refs and history shapes against the approval machinery (issue 12 and 13): a
plan or apply never crashes on them, and what cannot be read does not count."""
from __future__ import annotations

import base64
import subprocess

from conftest import person, run_cli
from fakes import UNIT, Fakes
from test_signatures import landed_first, main_sha

from reconciler.approval.signatures import MAX_PER_NOTE, NOTES_REF
from reconciler.audit import trail


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def plan_cli(fakes: Fakes, *extra: str, inventory=None):
    return run_cli("--repo", str(fakes.repo.root), "plan", "--inventory", str(inventory or fakes.inventory), *extra)


def test_a_statement_missing_fields_is_unreadable_not_a_crash(fakes: Fakes):
    landed_first(fakes)
    base = main_sha(fakes)
    line = (f"reconciler-approval-v1 {b64('reconciler approval statement v1' + chr(10) + 'kind approval' + chr(10))} "
            f"{b64('-----BEGIN SSH SIGNATURE-----')}")
    fakes.repo.git.git.notes("--ref", NOTES_REF, "add", "-m", line, base)
    fakes.add("SSM-000002")
    fakes.repo.squash_merge("Alta", signed=False)
    code, out, err = plan_cli(fakes, "--output", "json")
    assert code == 2 and "Internal error" not in err
    assert "unreadable approval line" in out and "missing signer" in out


def test_a_note_flooded_with_statements_is_read_only_so_far(fakes: Fakes):
    """Each statement costs a process to check: a flood is cut and said so."""
    landed_first(fakes)
    base = main_sha(fakes)
    lines = [f"reconciler-approval-v1 {b64(f'basura {i}')} {b64('x')}" for i in range(MAX_PER_NOTE + 40)]
    fakes.repo.git.git.notes("--ref", NOTES_REF, "add", "-m", "\n".join(lines), base)
    fakes.add("SSM-000002")
    fakes.repo.squash_merge("Alta", signed=False)
    code, out, err = plan_cli(fakes, "--output", "json")
    assert code == 2 and f"only the first {MAX_PER_NOTE} are read" in out


def test_non_utf8_bytes_in_an_audit_note_or_an_applied_tag_count_for_nothing(fakes: Fakes):
    from reconciler.run.engine import APPLIED_REF

    fakes.repo.add(UNIT, person("SSM-000001", password_resets=[
        {"folio": "SSM/STI/2026/R-1", "date": "2026-10-01", "requested_by": "Ventanilla"}]))
    head = fakes.repo.squash_merge()
    blob = subprocess.run(["git", "-C", str(fakes.repo.root), "hash-object", "-w", "--stdin"],
                          input=b"{\"x\": \"\xff\"}\nreconciler-seal-v1 AAAA\n", capture_output=True, check=True)
    fakes.repo.git.git.notes("--ref", trail.NOTES_REF, "add", "-C", blob.stdout.decode().strip(), head)
    body = (f"object {head}\ntype commit\ntag x\ntagger x <x@x> 1700000000 +0000\n\n\xff\n").encode("latin-1") \
        + b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"
    tag = subprocess.run(["git", "-C", str(fakes.repo.root), "hash-object", "-t", "tag", "-w", "--stdin"],
                         input=body, capture_output=True, check=True).stdout.decode().strip()
    fakes.repo.git.git.update_ref(APPLIED_REF.format(target="a-first"), tag)
    code, out, err = plan_cli(fakes, "--since-applied")
    assert code == 2 and "Internal error" not in err
    assert "is not signed by the apply key" in out
    code, out, err = run_cli("--repo", str(fakes.repo.root), "audit", "verify", "--from-git")
    assert code == 1 and "Internal error" not in err and "not sealed by the apply key" in out


def test_hundreds_of_policy_edits_are_judged_without_deep_recursion(fakes: Fakes):
    landed_first(fakes)
    path = fakes.repo.root / "inventory" / "approvers.yaml"
    text = path.read_text(encoding="utf-8")
    stream, tip = [], main_sha(fakes)
    for i in range(600):  # straight to main, each touching the policy (a comment line)
        body, msg = (text + f"# {i}\n").encode(), f"edit {i}".encode()
        stream += [b"commit refs/heads/main\n", b"committer M <m@evil.example> 1700000000 +0000\n",
                   b"data %d\n%s\n" % (len(msg), msg)]
        if i == 0:
            stream.append(f"from {tip}\n".encode())
        stream += [b"M 100644 inline inventory/approvers.yaml\n", b"data %d\n%s\n" % (len(body), body)]
    subprocess.run(["git", "-C", str(fakes.repo.root), "fast-import", "--quiet", "--force"],
                   input=b"".join(stream), check=True)
    fakes.repo.git.git.reset("--hard", "main")
    path.write_text(text, encoding="utf-8")  # back to the policy in force
    fakes.repo.direct_push("Se revierte")
    fakes.add("SSM-000002")
    fakes.repo.squash_merge("Alta")
    code, out, err = plan_cli(fakes, "--output", "json")
    assert code == 2 and "Internal error" not in err, err
    assert '"approved": true' in out


def test_an_inventory_with_anchors_or_deep_nesting_pushed_to_main_is_not_used(fakes: Fakes):
    inventory = fakes.inventory_in_repo()
    good = inventory.read_text(encoding="utf-8")
    for hostile in ("anchors:\n  a: &a {v: 1}\n  b: [*a, *a, *a]\n" + good,
                    good.replace("kind: fake_first", "kind: fake_first\n    extra: " + "[" * 5000 + "]" * 5000, 1)):
        inventory.write_text(hostile, encoding="utf-8")
        fakes.repo.direct_push("Inventario hostil")
        code, out, err = plan_cli(fakes, "--output", "json", inventory=inventory)
        assert code == 2 and "Internal error" not in err, err
        assert "changed without the approvals it needs" in out
        inventory.write_text(good, encoding="utf-8")
        fakes.repo.direct_push("Se revierte")
