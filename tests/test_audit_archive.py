"""reconciler audit export: a period's audit records as an archive that verifies on another
machine from the archive alone (its verify.py: Python's standard library, ssh-keygen and Git);
and verify-archive, which trusts nothing in an archive handed to it.

The records come from real applies (the engine, the git notes and their seals); the target is
the fake kind (tests/fakes.py), a test double."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import key_of, run_cli

from reconciler.audit import trail
from reconciler.audit.archive_check import canonical, record_hash

OCTOBER, NOVEMBER = "2026-10-15T17:00:00+00:00", "2026-11-16T17:00:00+00:00"


@pytest.fixture
def history(fakes, monkeypatch):
    """SSM-000001's alta applied in October, SSM-000002's in November (the trail's clock set)."""
    fakes.write_inventory(first={"audit_retention_years": 3})
    for moment, key in ((OCTOBER, "SSM-000001"), (NOVEMBER, "SSM-000002")):
        monkeypatch.setattr(trail, "now", lambda moment=moment: moment)
        fakes.add(key)
        fakes.repo.squash_merge(f"Alta de {key}")
        _plan, report = fakes.apply()
        assert report.ok
    monkeypatch.undo()
    return fakes


def _export(fakes, out: Path, since="2026-11-01", until="2026-11-30") -> tuple[int, str, str]:
    return run_cli("--lang", "en", "--repo", str(fakes.repo.root), "audit", "export", "--inventory",
                   str(fakes.inventory), "--since", since, "--until", until, "--out", str(out))


def _public(name: str) -> str:
    return " ".join(Path(f"{key_of(name)}.pub").read_text(encoding="ascii").split()[:2])


def _unpacked(archive: Path, where: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(where)
    [root] = where.iterdir()
    return root


def _on_another_machine(archive: Path, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    """The archive alone in an empty directory, checked by the system's Python in isolated mode,
    with no environment: no reconciler, no repository, no apply key variable."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = _unpacked(shutil.copy(archive, elsewhere / "archivo.tar.gz"), elsewhere / "unpacked")
    return subprocess.run(["/usr/bin/python3", "-I", "verify.py", *argv], cwd=root, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(elsewhere)})


def test_an_archive_verifies_on_another_machine_from_itself_alone(history, tmp_path):
    archive = tmp_path / "noviembre.tar.gz"
    code, out, err = _export(history, archive)
    assert code == 0, err
    assert "keep it until November 30, 2031" in out  # the period's end plus the longest retention, b-second's 5 years
    checked = _on_another_machine(archive, tmp_path, "--key", _public("reconciler-apply"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "chain intact, every one sealed" in checked.stdout and "all present" in checked.stdout
    # November's records only, chained to October's last one (the anchor the manifest gives).
    root = _unpacked(archive, tmp_path / "mine")
    manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
    records = [json.loads(line) for t in manifest["targets"]
               for line in (root / "records" / f"{t['name']}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert records and all(r["time"] == NOVEMBER for r in records)
    assert all(t["first_seq"] > 1 and t["anchor_prev"] != "0" * 64 for t in manifest["targets"])
    assert {t["name"]: t["keep_until"] for t in manifest["targets"]} == {"a-first": "2029-11-30",
                                                                        "b-second": "2031-11-30"}
    # No envelope (sealed secrets) travels in the bundle.
    heads = subprocess.run(["git", "bundle", "list-heads", str(root / "repository.bundle")], capture_output=True,
                           text=True, cwd=history.repo.root).stdout
    assert "refs/reconciler/envelopes" not in heads
    code, out, err = run_cli("--lang", "en", "audit", "verify-archive", str(archive))
    assert code == 0 and "The archive verifies" in out, out + err


def _rewrite(root: Path, change, signer: str | None = None) -> None:
    """What a forger with the archive can do: change records, re-chain and re-hash them, and
    rewrite the manifest to match (signed with `signer`'s key: their own, or, to try the seals
    on their own, the apply key itself)."""
    manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
    target = manifest["targets"][0]
    path = root / "records" / f"{target['name']}.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    change(records)
    prev = target["anchor_prev"]
    for seq, record in enumerate(records, target["first_seq"]):
        record.update(seq=seq, prev=prev)
        record["hash"] = prev = record_hash(record)
    path.write_text("".join(canonical(r) + "\n" for r in records), encoding="utf-8")
    target.update(records=len(records), last_hash=prev, last_seq=target["first_seq"] + len(records) - 1)
    manifest["files"] = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                         for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith("MANIFEST")}
    if signer is not None:
        manifest["apply_key"] = _public(signer)
    text = json.dumps(manifest)
    (root / "MANIFEST.json").write_text(text, encoding="utf-8")
    if signer is not None:
        signed = subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-n", "reconciler-archive", "-f",
                                 str(key_of(signer))], input=text.encode("utf-8"), capture_output=True, check=True)
        (root / "MANIFEST.json.sig").write_bytes(signed.stdout)


def _repacked(root: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(root, arcname=root.name)
    return out


@pytest.mark.parametrize("forgery, signer, expected", [
    (lambda records: records[0].update(label="otra persona"), None, "MANIFEST.json is not signed by the apply key"),
    (lambda records: records.pop(0), "marta", "names another apply key"),  # re-signed with the forger's own key
    # Even with the manifest signed by the apply key, every record must be in a sealed note.
    (lambda records: records[0].update(label="otra persona"), "reconciler-apply", "in no note batch the apply key"),
    (lambda records: records.pop(0), "reconciler-apply", "in no note batch the apply key sealed"),
])
def test_an_archive_a_forger_rewrote_does_not_verify(history, tmp_path, forgery, signer, expected):
    archive = tmp_path / "a.tar.gz"
    assert _export(history, archive)[0] == 0
    root = _unpacked(archive, tmp_path / "forged")
    _rewrite(root, forgery, signer)
    forged = _repacked(root, tmp_path / "forged.tar.gz")
    checked = _on_another_machine(forged, tmp_path, "--key", _public("reconciler-apply"))
    assert checked.returncode == 1 and expected in checked.stdout, checked.stdout
    code, out, _err = run_cli("--lang", "en", "audit", "verify-archive", str(forged))
    assert code == 1 and expected in out and "does NOT verify" in out


def test_an_archive_with_a_target_left_out_or_a_file_added_does_not_verify(history, tmp_path):
    archive = tmp_path / "a.tar.gz"
    assert _export(history, archive)[0] == 0
    root = _unpacked(archive, tmp_path / "cut")
    manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
    manifest["targets"] = manifest["targets"][:1]  # a whole target's records dropped
    (root / "MANIFEST.json").write_text(json.dumps(manifest), encoding="utf-8")
    code, out, _err = run_cli("--lang", "en", "audit", "verify-archive", str(_repacked(root, tmp_path / "c.tar.gz")))
    assert code == 1 and "is not signed by the apply key" in out
    root = _unpacked(archive, tmp_path / "added")
    (root / "records" / "otro.jsonl").write_text("{}\n", encoding="utf-8")
    code, out, _err = run_cli("--lang", "en", "audit", "verify-archive", str(_repacked(root, tmp_path / "b.tar.gz")))
    assert code == 1 and "records/otro.jsonl is not listed in the manifest" in out


def test_an_archive_is_checked_only_against_a_key_the_checker_gives(history, tmp_path, monkeypatch):
    archive = tmp_path / "a.tar.gz"
    assert _export(history, archive)[0] == 0
    checked = _on_another_machine(archive, tmp_path)
    assert checked.returncode == 2 and "--key" in checked.stderr
    monkeypatch.delenv("RECONCILER_APPLY_KEY", raising=False)
    monkeypatch.delenv("RECONCILER_APPLY_PUBLIC_KEY", raising=False)
    code, out, _err = run_cli("--lang", "en", "audit", "verify-archive", str(archive))
    assert code == 1 and "no apply key to check it with" in out
    code, out, _err = run_cli("--lang", "en", "audit", "verify-archive", str(archive), "--key",
                              f"{key_of('reconciler-apply')}.pub")
    assert code == 0, out


def test_an_archive_cut_short_or_naming_a_file_twice_is_a_clear_error(history, tmp_path):
    archive = tmp_path / "a.tar.gz"
    assert _export(history, archive)[0] == 0
    cut = tmp_path / "cortado.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    code, _out, err = run_cli("--lang", "en", "audit", "verify-archive", str(cut))
    assert code == 1 and "is not an archive, or is cut short" in err and "Internal error" not in err
    twice = tmp_path / "doble.tar.gz"
    with tarfile.open(twice, "w:gz") as tar:
        for name, kind in (("a/x", tarfile.DIRTYPE), ("a/x", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    code, _out, err = run_cli("--lang", "en", "audit", "verify-archive", str(twice))
    assert code == 1 and "is not part of an audit archive" in err


@pytest.mark.parametrize("member", ["../fuera.txt", "/etc/cron.d/x", "enlace"])
def test_a_hostile_archive_is_refused_before_anything_is_written(tmp_path, member):
    hostile = tmp_path / "hostil.tar.gz"
    with tarfile.open(hostile, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        if member == "enlace":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
    code, _out, err = run_cli("--lang", "en", "audit", "verify-archive", str(hostile))
    assert code == 1 and "is not part of an audit archive" in err
    assert not (tmp_path / "fuera.txt").exists()


def test_a_period_with_no_record_or_a_broken_trail_is_not_exported(history, tmp_path):
    code, _out, err = _export(history, tmp_path / "x.tar.gz", since="2025-01-01", until="2025-01-31")
    assert code == 1 and "no audit record between 2025-01-01 and 2025-01-31" in err
    path = history.audit_dir / f"a-first{trail.SUFFIX}"
    path.write_text(path.read_text(encoding="utf-8").replace("SSM-000001", "SSM-000009", 1), encoding="utf-8")
    code, _out, err = _export(history, tmp_path / "y.tar.gz")
    assert code == 1 and "a broken trail is not exported" in err and not (tmp_path / "y.tar.gz").exists()


def _settings(fakes, name="a-first"):
    from reconciler.config.inventory import load_inventory

    return load_inventory(fakes.inventory)[name]


def test_records_leave_a_trail_only_after_their_retention_and_into_an_archive_that_holds_them(history, tmp_path):
    import datetime as dt

    from reconciler.audit import prune
    from reconciler.audit.seal import ApplyKey
    from reconciler.errors import ReconcilerError

    october = tmp_path / "octubre.tar.gz"
    assert _export(history, october, since="2026-10-01", until="2026-10-31")[0] == 0
    november = tmp_path / "noviembre.tar.gz"
    assert _export(history, november)[0] == 0
    target, key = _settings(history), ApplyKey.from_env()
    notes = trail.read_notes(history.repo.git, sealed_by=key)
    path = history.audit_dir / f"a-first{trail.SUFFIX}"
    before = path.read_bytes()
    # Within the retention (3 years for a-first), nothing leaves, whatever the archive.
    code, _out, err = run_cli("--lang", "en", "--repo", str(history.repo.root), "audit", "prune", "--inventory",
                              str(history.inventory), "--before", "2026-11-01", "--archive", str(october),
                              "--target", "a-first")
    assert code == 1 and "may leave its trail from 2029-11-01 on" in err and path.read_bytes() == before
    later = dt.date(2030, 1, 1)
    # An archive without those records, or altered, is refused.
    with pytest.raises(ReconcilerError, match="does not hold every record of a-first"):
        prune.prune(target, dt.date(2026, 11, 1), november, key, later, notes)
    root = _unpacked(october, tmp_path / "altered")
    (root / "LEEME.txt").write_text("otro texto\n", encoding="utf-8")
    with pytest.raises(ReconcilerError, match="does not verify"):
        prune.prune(target, dt.date(2026, 11, 1), _repacked(root, tmp_path / "alterado.tar.gz"), key, later, notes)
    assert path.read_bytes() == before
    # Past it, with the archive that holds them: October's run leaves; the chain goes on.
    done = prune.prune(target, dt.date(2026, 11, 1), october, key, later, notes)
    assert done is not None and done.records > 0 and done.kept > 0
    assert trail.anchor(path)["seq"] == done.through
    verdict = trail.verify_file(path, trail.read_notes(history.repo.git), key)
    assert verdict.ok and verdict.pruned == done.through, verdict.broken
    assert all(r["time"] == NOVEMBER for r in history.records("a-first")[1:])
    # The next apply appends after it; the trail, its notes and a new export all still verify.
    history.add("SSM-000003")
    history.repo.squash_merge("Alta de SSM-000003")
    assert history.apply()[1].ok
    code, out, err = run_cli("--lang", "en", "--repo", str(history.repo.root), "audit", "verify", "--inventory",
                             str(history.inventory))
    assert code == 0 and "were pruned from it" in out, out + err
    again = tmp_path / "todo.tar.gz"
    today = dt.date.today().isoformat()
    assert _export(history, again, since="2026-10-01", until=today)[0] == 0
    assert _on_another_machine(again, tmp_path, "--key", _public("reconciler-apply")).returncode == 0
    # Nothing more to prune before that day.
    assert prune.prune(target, dt.date(2026, 11, 1), october, key, later, notes) is None


def test_an_anchor_written_by_hand_to_hide_records_does_not_verify(history):
    """Someone with the runner's disk replaces a trail by an anchor line naming its last record:
    the file's chain would hold, but only the apply job seals an anchor."""
    path = history.audit_dir / f"a-first{trail.SUFFIX}"
    last = json.loads(path.read_text(encoding="utf-8").splitlines()[-1])
    forged = {"kind": trail.ANCHOR, "target": "a-first", "seq": last["seq"], "hash": last["hash"],
              "time": last["time"], "pruned_before": "2026-12-01", "archive_sha256": "0" * 64}
    path.write_text(canonical(forged) + "\n", encoding="utf-8")
    code, out, err = run_cli("--lang", "en", "--repo", str(history.repo.root), "audit", "verify", "--inventory",
                             str(history.inventory))
    assert code == 1 and "its anchor line is not sealed by the apply key" in out, out + err


def test_a_trail_shortened_by_hand_is_never_pruned_over(history, tmp_path):
    """A forged anchor hides October; pruning up to December with November's archive must not
    seal over it (records no archive holds would leave without trace)."""
    import datetime as dt

    from reconciler.audit import prune
    from reconciler.audit.seal import ApplyKey
    from reconciler.errors import ReconcilerError

    november = tmp_path / "noviembre.tar.gz"
    assert _export(history, november)[0] == 0
    path = history.audit_dir / f"a-first{trail.SUFFIX}"
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    october = [r for r in records if r["time"] == OCTOBER]
    forged = {"kind": trail.ANCHOR, "target": "a-first", "seq": october[-1]["seq"], "hash": october[-1]["hash"],
              "time": NOVEMBER, "pruned_before": "2026-11-01", "archive_sha256": "0" * 64}
    path.write_text("".join(line + "\n" for line in [canonical(forged), *lines[len(october):]]), encoding="utf-8")
    key = ApplyKey.from_env()
    with pytest.raises(ReconcilerError, match="not sealed by the apply key"):
        prune.prune(_settings(history), dt.date(2026, 12, 1), november, key, dt.date(2031, 1, 1),
                    trail.read_notes(history.repo.git, sealed_by=key))


def test_an_archive_that_cannot_be_written_is_a_clear_error(history, tmp_path):
    code, _out, err = _export(history, tmp_path / "no-such-folder" / "a.tar.gz")
    assert code == 1 and "cannot write" in err and "Internal error" not in err
