"""An apply split into shards (issue 18, item 6): which targets go together, the fingerprint that
pins each shard's part of the reviewed plan, and the audit notes shards push at once to one
real bare Git remote (no forge involved: a remote on disk is the real thing)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import git
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli

from reconciler.audit import trail
from reconciler.audit.publish import NOTES, UNPUSHED, batches, merge_notes, merged_note, publish, push_notes
from reconciler.audit.seal import SEAL_TAG, ApplyKey
from reconciler.config.inventory import load_inventory
from reconciler.errors import ReconcilerError
from reconciler.plan import AttributeChange, Change, Conflict, Movement, Plan
from reconciler.providers import registry
from reconciler.run.engine import PlanMoved, Run
from reconciler.run.shards import shard, shards

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "inventory" / "lab.yaml"


# -- which targets go together ----------------------------------------------------------------

def test_targets_that_serve_people_are_one_shard_and_each_device_is_its_own():
    found = shards(load_inventory(LAB))
    assert [s.to_dict() for s in found] == [
        {"name": "ad-lab", "targets": ["ad-lab", "mail-lab", "phone-lab", "siempre-lab", "sintesis-lab"]},
        {"name": "fw-lab", "targets": ["fw-lab"]}]
    assert shard(load_inventory(LAB), "fw-lab").targets == ("fw-lab",)
    with pytest.raises(ReconcilerError, match="ad-lab, fw-lab"):
        shard(load_inventory(LAB), "mail-lab")  # a target of a shard is not a shard


def test_a_kind_applies_alone_exactly_when_its_provider_runs_its_targets_in_parallel():
    for kind in registry.KINDS:
        assert kind.alone == kind.provider_class().parallel, kind.name


@pytest.fixture
def lab_copy(tmp_path) -> Path:
    """The lab inventory outside any repository: read as it is (in one, the approved version
    at --ref is read, as apply reads it)."""
    copy = tmp_path / "lab.yaml"
    copy.write_text(LAB.read_text(encoding="utf-8"), encoding="utf-8")
    return copy


def test_shards_command_prints_the_matrix_a_pipeline_runs(lab_copy):
    code, out, err = run_cli("shards", "--inventory", str(lab_copy), "--output", "json")
    assert code == 0, err
    assert [s["name"] for s in json.loads(out)] == ["ad-lab", "fw-lab"]
    code, _out, err = run_cli("--repo", str(ROOT), "plan", "--working-tree", "--inventory", str(LAB),
                              "--shard", "fw-lab", "--target", "ad-lab")
    assert code == 1 and "--shard" in err


# -- the fingerprint of a shard's part --------------------------------------------------------

def _change(target: str, key: str, after: str) -> Change:
    return Change(Movement.MODIFICACION, target, "account", key, f"CN={key}",
                  (AttributeChange("title", "antes", after),))


PLAN = Plan((_change("ad-lab", "E1", "Médica"), _change("mail-lab", "E1", "x"), _change("fw-lab", "r1", "y")),
            (Conflict("fw-lab", "r2", "regla", "hecha a mano"),), tree="t", targets=("ad-lab", "mail-lab", "fw-lab"))


def test_each_targets_fingerprint_is_the_fingerprint_of_its_part_alone():
    assert PLAN.target_fingerprints["fw-lab"] == PLAN.part({"fw-lab"}).fingerprint
    assert PLAN.part({"fw-lab"}).conflicts == PLAN.conflicts
    assert PLAN.part({"ad-lab"}).changes == PLAN.changes[:1] and not PLAN.part({"ad-lab"}).conflicts
    assert len(set(PLAN.target_fingerprints.values())) == 3
    moved = Plan(PLAN.changes[:2] + (_change("fw-lab", "r1", "z"),), PLAN.conflicts, tree="t", targets=PLAN.targets)
    assert moved.target_fingerprints["ad-lab"] == PLAN.target_fingerprints["ad-lab"]
    assert moved.target_fingerprints["fw-lab"] != PLAN.target_fingerprints["fw-lab"]
    assert json.loads(json.dumps(PLAN.to_dict()))["target_fingerprints"] == PLAN.target_fingerprints


def test_a_shards_apply_is_pinned_to_each_of_its_targets_fingerprints():
    shard_plan = PLAN.part({"ad-lab", "mail-lab"})  # what apply --shard ad-lab plans now
    pins = [f"{t}={PLAN.target_fingerprints[t]}" for t in ("ad-lab", "mail-lab")]
    Run.check_fingerprint(shard_plan, pins)
    with pytest.raises(PlanMoved, match="mail-lab"):  # a target of the shard with no pin
        Run.check_fingerprint(shard_plan, pins[:1])
    moved = Plan(shard_plan.changes[:1] + (_change("mail-lab", "E1", "otro"),), tree="t", targets=shard_plan.targets)
    with pytest.raises(PlanMoved, match="target mail-lab's part"):
        Run.check_fingerprint(moved, pins)
    with pytest.raises(PlanMoved, match="ad-lab's part"):  # a pin of a target the shard's plan lacks
        Run.check_fingerprint(PLAN.part({"mail-lab"}), pins)
    with pytest.raises(ReconcilerError, match="not both"):
        Run.check_fingerprint(shard_plan, pins + [PLAN.fingerprint])
    Run.check_fingerprint(PLAN, [PLAN.fingerprint])  # the whole plan's, as before
    with pytest.raises(PlanMoved):
        Run.check_fingerprint(shard_plan, [PLAN.fingerprint])


def test_the_markdown_plan_carries_every_targets_fingerprint_for_the_pipeline():
    from reconciler.render.plan import plan_markdown

    text = plan_markdown(PLAN)
    for target, fingerprint in PLAN.target_fingerprints.items():
        assert f"<!-- reconciler-fingerprint {target}: {fingerprint} -->" in text
    assert text.count("reconciler-fingerprint: ") == 1  # the whole plan's line is found as before


# -- audit notes merged batch by batch --------------------------------------------------------

batch = st.lists(st.text("abcxyz{}\":\u2028\x85ñ", min_size=1, max_size=8), min_size=1, max_size=3).map(
    lambda lines: "\n".join(lines))
sealed_batch = st.tuples(batch, st.booleans()).map(
    lambda b: (b[0] + (f"\n{SEAL_TAG} s" if b[1] else "")).encode("utf-8"))
runs = st.lists(sealed_batch, max_size=4, unique=True)


@settings(max_examples=200, deadline=None)
@given(runs, runs, runs)
def test_merging_two_notes_keeps_the_remotes_bytes_then_adds_every_batch_of_ours_once(base, mine, theirs):
    mine = [b for b in mine if b not in base]
    theirs = [b for b in theirs if b not in base and b not in mine]
    ours_note = b"\n\n".join(base + mine) + b"\n"
    theirs_note = b"\n\n".join(base + theirs) + b"\n"
    merged = merged_note(ours_note, theirs_note)
    assert batches(merged) == base + theirs + mine
    assert merged.startswith(theirs_note.rstrip(b"\n"))  # the remote's note byte for byte
    assert merged_note(merged, merged) == merged
    assert batches(merged_note(merged, ours_note)) == base + mine + theirs


def test_a_note_with_runs_appended_by_git_splits_into_its_batches():
    note = b'a\nb\n' + SEAL_TAG.encode() + b' s1\n\nc\n\nd\xe2\x80\xa8e\n' + SEAL_TAG.encode() + b' s2\n'
    assert batches(note) == [b"a\nb\n" + SEAL_TAG.encode() + b" s1", b"c", "d\u2028e".encode() + b"\n" +
                             SEAL_TAG.encode() + b" s2"]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def remote(tmp_path) -> tuple[Path, str]:
    """A bare remote holding one merge commit of main, which every shard applied."""
    origin = tmp_path / "origin.git"
    _git("init", "--bare", "-q", "-b", "main", str(origin), cwd=tmp_path)
    seed = tmp_path / "seed"
    _git("clone", "-q", str(origin), str(seed), cwd=tmp_path)
    (seed / "README").write_text("desired state\n", encoding="utf-8")
    _git("add", "README", cwd=seed)
    _git("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "merge", cwd=seed)
    _git("push", "-q", "origin", "main", cwd=seed)
    return origin, _git("rev-parse", "HEAD", cwd=seed)


def _shard_clone(tmp_path: Path, origin: Path, name: str) -> git.Repo:
    path = tmp_path / name
    _git("clone", "-q", str(origin), str(path), cwd=tmp_path)
    _git("fetch", "-q", "origin", "+refs/notes/*:refs/notes/*", cwd=path)
    return git.Repo(path)


def _records(target: str, n: int) -> list[dict]:
    return [{"kind": "change", "target": target, "seq": i, "key": f"E{i}", "status": "applied"} for i in range(n)]


def test_two_shards_notes_on_one_commit_both_reach_the_remote_sealed(tmp_path, remote):
    origin, commit = remote
    key = ApplyKey.from_env()
    first, second = (_shard_clone(tmp_path, origin, n) for n in ("ad", "fw"))
    trail.attach_note(first, commit, _records("ad-lab", 3), key)
    trail.attach_note(second, commit, _records("fw-lab", 2), key)
    assert push_notes(first, "origin") == 0
    assert push_notes(second, "origin") == 1  # the remote moved: merged once, then pushed
    auditor = _shard_clone(tmp_path, origin, "auditor")
    noted = trail.noted_batches(auditor, key)
    assert sorted((r["target"], r["seq"]) for _c, r, ok in noted if ok) == \
        sorted([("ad-lab", i) for i in range(3)] + [("fw-lab", i) for i in range(2)])
    assert all(ok for _c, _r, ok in noted)  # every seal still verifies: no batch was reordered inside
    # The remote's history keeps both jobs' notes commits: nothing was forced.
    tip = _git("rev-parse", NOTES, cwd=Path(auditor.working_dir))
    assert len(_git("rev-list", "--parents", "-n", "1", tip, cwd=Path(auditor.working_dir)).split()) == 3
    # A later run of the first shard builds on the merge: a plain push again.
    _git("fetch", "-q", "origin", f"+{NOTES}:{NOTES}", cwd=Path(first.working_dir))
    trail.attach_note(first, commit, _records("ad-lab", 4)[3:], key)
    assert push_notes(first, "origin") == 0


def test_notes_merge_is_a_fast_forward_when_one_side_is_behind(tmp_path, remote):
    origin, commit = remote
    repo = _shard_clone(tmp_path, origin, "a")
    trail.attach_note(repo, commit, _records("ad-lab", 1), None)
    tip = _git("rev-parse", NOTES, cwd=Path(repo.working_dir))
    _git("update-ref", "refs/notes/reconciler-remote", tip, cwd=Path(repo.working_dir))
    trail.attach_note(repo, commit, _records("ad-lab", 2)[1:], None)
    assert merge_notes(repo, "refs/notes/reconciler-remote") is False  # theirs is behind: nothing to do
    assert len(trail.read_notes(repo)) == 2


def test_many_shards_pushing_at_once_all_land_and_none_is_lost(tmp_path, remote):
    origin, commit = remote
    names = [f"fw-{i}" for i in range(10)]
    clones = {n: _shard_clone(tmp_path, origin, n) for n in names}
    for n, repo in clones.items():
        trail.attach_note(repo, commit, _records(n, 2), ApplyKey.from_env())
    script = ("import sys, git; from reconciler.audit.publish import push_notes; "
              "print(push_notes(git.Repo(sys.argv[1]), 'origin', attempts=30, backoff=0.05))")  # races, not waits
    with ThreadPoolExecutor(len(names)) as pool:  # separate processes, as separate runners are
        done = list(pool.map(lambda n: subprocess.run([sys.executable, "-c", script, str(tmp_path / n)],
                                                      capture_output=True, text=True), names))
    assert all(d.returncode == 0 for d in done), [d.stderr for d in done]
    auditor = _shard_clone(tmp_path, origin, "auditor")
    noted = trail.noted_batches(auditor, ApplyKey.from_env())
    landed = sorted((r["target"], r["seq"]) for _c, r, ok in noted if ok)
    assert landed == sorted((n, i) for n in names for i in range(2))
    assert len(noted) == 20


def test_a_shard_pushes_its_own_refs_never_another_shards_or_the_envelopes(tmp_path, remote):
    origin, commit = remote
    repo = _shard_clone(tmp_path, origin, "fw")
    work = Path(repo.working_dir)
    for ref in ("refs/reconciler/applied/fw-lab", "refs/reconciler/applied/ad-lab",
                "refs/reconciler/work-orders/siempre-lab/F-1", "refs/reconciler/envelopes/E1/abc"):
        _git("update-ref", ref, commit, cwd=work)
    trail.attach_note(repo, commit, _records("fw-lab", 1), None)
    done = publish(repo, "origin", ["fw-lab"], envelopes=False)
    assert done.refs == ["refs/reconciler/applied/fw-lab"] and done.envelopes == 0 and done.notes
    pushed = _git("ls-remote", str(origin), "refs/*", cwd=tmp_path)
    assert "refs/reconciler/applied/fw-lab" in pushed and NOTES in pushed
    assert "ad-lab" not in pushed and "envelopes" not in pushed and "work-orders" not in pushed
    everything = publish(repo, "origin", None, envelopes=True)  # unsharded: everything, as one job did
    assert everything.envelopes == 1 and len(everything.refs) == 3


def test_a_push_that_cannot_reach_the_remote_names_no_secret_in_its_url(tmp_path, remote):
    _origin, commit = remote
    repo = _shard_clone(tmp_path, remote[0], "x")
    trail.attach_note(repo, commit, _records("fw-lab", 1), None)
    repo.git.remote("add", "forge", "https://oauth2:s3cr3t-token@127.0.0.1:9/x.git")
    with pytest.raises(ReconcilerError) as caught:
        publish(repo, "forge", ["fw-lab"], envelopes=False, attempts=2, backoff=0)
    assert "s3cr3t-token" not in str(caught.value)


# -- an apply split by target, end to end on the engine (fake targets) ------------------------

def test_each_targets_part_of_the_whole_plan_is_the_plan_of_that_target_alone_and_applies_pinned(fakes):
    from fakes import converged

    fakes.add("SSM-000001", "SSM-000002")
    head = fakes.repo.squash_merge("Altas")
    whole = fakes.plan()
    assert set(whole.target_fingerprints) == {"a-first", "b-second"} and len(whole.changes) == 4
    for target in whole.targets:
        assert fakes.plan(only=(target,)).fingerprint == whole.target_fingerprints[target]
    # The shards apply one after the other (or at once: they share no target), each pinned.
    for target in reversed(whole.targets):
        with fakes.run(lock=True, only=(target,)) as run:
            plan = run.plan()
            with pytest.raises(PlanMoved):  # pinned to the other target's fingerprint: refused
                run.check_fingerprint(plan, [f"{target}={whole.target_fingerprints[other]}"
                                             for other in whole.targets if other != target])
            report = run.apply(plan, expect_fingerprint=[f"{target}={whole.target_fingerprints[target]}"])
        assert report.ok and {o.change.target for o in report.outcomes} == {target}
        assert fakes.applied(target) == head
    converged(fakes)
    noted = {(r["target"], r.get("key")) for _c, r in trail.read_notes(fakes.repo.git, ApplyKey.from_env())
             if r and r.get("kind") == "change"}
    assert noted == {(t, k) for t in whole.targets for k in ("SSM-000001", "SSM-000002")}


def test_a_record_holding_a_line_separator_or_a_remote_note_that_is_not_utf8_survives_the_merge(tmp_path, remote):
    """A directory value may hold U+2028 (str.splitlines() cuts there); anyone with push rights
    may note bytes that are not UTF-8 on the commit while the shards run."""
    origin, commit = remote
    key = ApplyKey.from_env()
    first, second = (_shard_clone(tmp_path, origin, n) for n in ("ad", "fw"))
    odd = [{"kind": "change", "target": "ad-lab", "seq": 0, "key": "E1", "title": "Jefa\u2028de\x85área"}]
    trail.attach_note(first, commit, odd, key)
    assert push_notes(first, "origin") == 0
    hostile = _shard_clone(tmp_path, origin, "hostile")
    junk = tmp_path / "junk"
    junk.write_bytes(b"\xff\xfe not utf-8\n")
    _git("notes", "--ref", "reconciler", "append", "-F", str(junk), commit, cwd=Path(hostile.working_dir))
    _git("push", "-q", "origin", NOTES, cwd=Path(hostile.working_dir))
    trail.attach_note(second, commit, _records("fw-lab", 1), key)
    assert push_notes(second, "origin") == 1
    auditor = _shard_clone(tmp_path, origin, "auditor")
    sealed = [(r["target"], r["seq"]) for _c, r, ok in trail.noted_batches(auditor, key) if ok and r]
    assert sorted(sealed) == [("ad-lab", 0), ("fw-lab", 0)]
    title = next(r for _c, r in trail.read_notes(auditor, key) if r and r["target"] == "ad-lab")["title"]
    assert title == "Jefa\u2028de\x85área"


def test_notes_a_push_could_not_deliver_are_kept_and_go_with_the_next_push(tmp_path, remote):
    origin, commit = remote
    repo = _shard_clone(tmp_path, origin, "fw")
    trail.attach_note(repo, commit, _records("fw-lab", 2), None)
    repo.git.remote("set-url", "origin", str(tmp_path / "gone.git"))  # the network dropped
    with pytest.raises(ReconcilerError, match="reconciler-local/unpushed-notes"):
        push_notes(repo, "origin", attempts=2, backoff=0)
    # The pipeline's next fetch overwrites refs/notes/*, as a persistent runner's would.
    repo.git.remote("set-url", "origin", str(origin))
    _git("update-ref", "-d", NOTES, cwd=Path(repo.working_dir))
    trail.attach_note(repo, commit, _records("fw-lab", 3)[2:], None)
    push_notes(repo, "origin")
    assert not _git("for-each-ref", UNPUSHED, cwd=Path(repo.working_dir))  # delivered: nothing kept
    auditor = _shard_clone(tmp_path, origin, "auditor")
    assert sorted(r["seq"] for _c, r in trail.read_notes(auditor)) == [0, 1, 2]


def test_a_job_killed_between_its_apply_and_its_push_loses_no_record(tmp_path, remote):
    origin, commit = remote
    repo, other = _shard_clone(tmp_path, origin, "fw"), _shard_clone(tmp_path, origin, "ad")
    trail.attach_note(repo, commit, _records("fw-lab", 1), None)  # the apply noted; the job died here
    trail.attach_note(other, commit, _records("ad-lab", 1), None)
    push_notes(other, "origin")  # another shard pushed meanwhile
    _git("fetch", "-q", "origin", f"+{NOTES}:{NOTES}", cwd=Path(repo.working_dir))  # the next job's fetch
    trail.attach_note(repo, commit, _records("fw-lab", 2)[1:], None)
    push_notes(repo, "origin")
    auditor = _shard_clone(tmp_path, origin, "auditor")
    assert sorted((r["target"], r["seq"]) for _c, r in trail.read_notes(auditor)) == \
        [("ad-lab", 0), ("fw-lab", 0), ("fw-lab", 1)]


def test_an_entry_of_the_notes_tree_that_is_not_a_note_cannot_overwrite_one(tmp_path, remote):
    """Anyone with push rights can put any path in the notes tree, such as `<commit>^0`, which
    Git would resolve to the applied commit if it were ever taken for a revision."""
    origin, commit = remote
    key = ApplyKey.from_env()
    first, second = (_shard_clone(tmp_path, origin, n) for n in ("ad", "fw"))
    trail.attach_note(first, commit, _records("ad-lab", 2), key)
    push_notes(first, "origin")
    hostile = Path(_shard_clone(tmp_path, origin, "hostile").working_dir)
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=hostile, input="forged, unsealed\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    env = {"GIT_INDEX_FILE": str(tmp_path / "hostile.index")}
    tip = _git("rev-parse", NOTES, cwd=hostile)
    for name in (f"{commit}^0", "HEAD", "zz"):
        subprocess.run(["git", "read-tree", tip], cwd=hostile, env={**os.environ, **env}, check=True)
        subprocess.run(["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}"], cwd=hostile,
                       env={**os.environ, **env}, check=True)
        tree = subprocess.run(["git", "write-tree"], cwd=hostile, env={**os.environ, **env}, check=True,
                              capture_output=True, text=True).stdout.strip()
        tip = _git("-c", "user.name=m", "-c", "user.email=m@x", "commit-tree", tree, "-p", tip, "-m", "x", cwd=hostile)
    _git("push", "-q", "origin", f"{tip}:{NOTES}", cwd=hostile)
    trail.attach_note(second, commit, _records("fw-lab", 1), key)
    assert push_notes(second, "origin") == 1
    auditor = _shard_clone(tmp_path, origin, "auditor")
    sealed = sorted((r["target"], r["seq"]) for _c, r, ok in trail.noted_batches(auditor, key) if ok and r)
    assert sealed == [("ad-lab", 0), ("ad-lab", 1), ("fw-lab", 0)]
def test_a_pipelines_fixed_matrix_must_be_exactly_the_shards(lab_copy):
    ok = run_cli("shards", "--inventory", str(lab_copy), "--job", "fw-lab", "--index", "2", "--jobs", "2")
    assert ok[0] == 0, ok
    # A shard missing, one that is not a shard, one too many, and two jobs of one shard (a second
    # matrix dimension) while another shard has none.
    for job, index, jobs in (("fw-lab", "2", "1"), ("mail-lab", "1", "2"), ("fw-lab", "2", "3"), ("ad-lab", "2", "2")):
        code, _out, err = run_cli("shards", "--inventory", str(lab_copy), "--job", job, "--index", index,
                                  "--jobs", jobs)
        assert code == 1 and "ad-lab fw-lab" in err, (job, index, jobs, err)


def test_a_pinned_target_now_out_of_reach_is_refused_unless_its_approved_part_was_empty(fakes):
    fakes.add("SSM-000001")
    fakes.repo.squash_merge("Alta")
    approved = fakes.plan()
    pins = [f"{t}={f}" for t, f in approved.target_fingerprints.items()]
    fakes.write_inventory(second={"unreachable": True})
    with fakes.run(lock=True, revoke_when_unreachable=True) as run:
        plan = run.plan()
        assert plan.targets == ("a-first", "b-second") and "b-second" in run.unreachable
        with pytest.raises(PlanMoved, match="b-second"):  # its approved alta cannot be applied now
            run.check_fingerprint(plan, pins)
    assert not fakes.state("a-first")
    empty = Plan((), tree=approved.tree, targets=("b-second",)).fingerprint
    with fakes.run(lock=True, revoke_when_unreachable=True) as run:
        plan = run.plan()
        run.check_fingerprint(plan, [pins[0], f"b-second={empty}"])  # nothing was approved for it: goes ahead


def test_a_note_left_without_its_last_newline_does_not_break_the_next_runs_seal(tmp_path, remote):
    origin, commit = remote
    key = ApplyKey.from_env()
    repo = _shard_clone(tmp_path, origin, "ad")
    left = tmp_path / "left"
    left.write_bytes(b"someone's line without a newline")
    blob = _git("hash-object", "-w", str(left), cwd=Path(repo.working_dir))
    _git("notes", "--ref", "reconciler", "add", "-f", "-C", blob, commit, cwd=Path(repo.working_dir))
    trail.attach_note(repo, commit, _records("ad-lab", 2), key)
    assert sorted(r["seq"] for _c, r, ok in trail.noted_batches(repo, key) if ok and r) == [0, 1]
