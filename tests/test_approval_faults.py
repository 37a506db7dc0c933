"""Hostile notes, refs and history shapes against the approval machinery (issue 12 and 13): a
plan or apply never crashes on them, and what cannot be read does not count."""
from __future__ import annotations

import base64
import json
import subprocess

from conftest import APPROVER_1, key_of, person, run_cli
from fakes import UNIT, Fakes
from test_signatures import landed_first, main_sha

import reconciler.approval.signatures as signatures
from reconciler.approval.approve import approve
from reconciler.approval.signatures import MAX_CHECKS_PER_SIGNER, NOTES_REF, Signed
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


def test_a_note_flooded_with_lines_never_hides_a_real_approval_nor_floods_the_plan(fakes: Fakes):
    """Junk lines that sort before the real approvals (notes are merged sorted): every line is
    read, an approval after them still counts, and the plan names only a few of the junk."""
    landed_first(fakes)
    base = main_sha(fakes)
    fakes.add("SSM-000002")
    fakes.repo.squash_merge("Alta")  # signed by both approvers, on `base`'s note
    real = fakes.repo.git.git.notes("--ref", NOTES_REF, "show", base)
    junk = [f"reconciler-approval-v1 AAAA{i:04d} {b64('x')}" for i in range(500)]
    fakes.repo.git.git.notes("--ref", NOTES_REF, "add", "-f", "-m", "\n".join(junk + [real]), base)
    code, out, err = plan_cli(fakes, "--output", "json")
    [change] = [c for c in json.loads(out)["changes"] if c["key"] == "SSM-000002" and c["target"] == "a-first"]
    assert change["approval"]["approved"], change["approval"]
    # Unapproved, the junk is named only a few times: the plan is not flooded either.
    base = main_sha(fakes)
    fakes.repo.git.git.notes("--ref", NOTES_REF, "add", "-f", "-m", "\n".join(junk), base)
    fakes.add("SSM-000003")
    fakes.repo.squash_merge("Otra alta", signed=False)
    code, out, err = plan_cli(fakes, "--output", "json")
    [change] = [c for c in json.loads(out)["changes"] if c["key"] == "SSM-000003" and c["target"] == "a-first"]
    reason = change["approval"]["reason"]
    assert not change["approval"]["approved"] and reason.count("unreadable approval line on") == 1
    assert len(reason) < 1000


def test_a_flood_of_statements_in_an_approvers_name_is_checked_only_so_far(fakes: Fakes, monkeypatch):
    """Each check costs a process: beyond a few in one signer's name, the rest are not checked,
    and the plan says so."""
    landed_first(fakes)
    base = main_sha(fakes)
    fakes.add("SSM-000002")
    fakes.repo.squash_merge("Alta", signed=False)
    head = main_sha(fakes)
    fakes.repo.git.git.notes("--ref", NOTES_REF, "remove", base, with_exceptions=False)
    approve(fakes.repo.git, base, head, APPROVER_1[1], key_of(APPROVER_1))
    [line] = fakes.repo.git.git.notes("--ref", NOTES_REF, "show", base).splitlines()
    signed = Signed.parse_line(line)
    forged = [line.replace(line.split()[2], b64(f"-----BEGIN SSH SIGNATURE-----\nbm8gZXM{i:02d}\n"
                                                 "-----END SSH SIGNATURE-----\n")) for i in range(40)]
    assert all(Signed.parse_line(f).statement == signed.statement for f in forged)
    fakes.repo.git.git.notes("--ref", NOTES_REF, "add", "-f", "-m", "\n".join(forged), base)
    calls = []
    real = signatures.ssh_verify
    monkeypatch.setattr(signatures, "ssh_verify", lambda text, *a, **k: calls.append(text) or real(text, *a, **k))
    code, out, err = plan_cli(fakes, "--output", "json")
    assert 0 < calls.count(signed.text) <= MAX_CHECKS_PER_SIGNER
    assert f"more than {MAX_CHECKS_PER_SIGNER} signatures in the name of" in out


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
