"""Envelopes in a Git repository, without the lab: names Git accepts for any folio, sealing that
only the recipients open, and files taken back out."""
from __future__ import annotations

import subprocess
from urllib.parse import unquote

import git
import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.delivery import Delivery, Recipient
from reconciler.delivery.envelopes import REFS, Envelopes, envelopes, ref_name, remove_files
from reconciler.errors import ReconcilerError


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_every_holder_and_folio_makes_a_ref_name_git_accepts_inside_the_namespace(holder, folio):
    name = ref_name(holder, folio)
    assert subprocess.run(["git", "check-ref-format", name]).returncode == 0, name
    parts = name[len(REFS):].split("/")
    assert name.startswith(REFS) and len(parts) == 2  # never climbs out, never a deeper path
    if not folio.startswith(".") and not folio.endswith(".lock") and ".." not in folio:
        assert unquote(parts[1]) == folio


@pytest.fixture
def box(tmp_path):
    repo = git.Repo.init(tmp_path / "repo")
    desk, other = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    delivery = Delivery(recipients={"*": (Recipient("Mesa", str(desk.to_public())),)})
    announced = []
    made = Envelopes(repo, "ad-x", "run-1", delivery, unit_of=lambda key: "HG", letter=lambda **f: f"secret {f['secret']}\n",
                     carta=lambda holder, folio: b"%PDF-carta", announce=announced.append)
    return repo, made, desk, other, announced


def test_a_secret_is_sealed_to_the_recipients_only_and_announced_without_it(box):
    repo, made, desk, other, announced = box
    made.record("jnunezo", "jnunezo@salud.lab", "SSM-1", "=HYPERLINK(\"x\")/../2026", "S3cr3t-1")
    made.record("424", "424@salud.lab", "SSM-1", "=HYPERLINK(\"x\")/../2026", "L1ne-2")  # same request: same envelope
    [envelope] = envelopes(repo)
    assert envelope.holder == "SSM-1" and envelope.folio == "=HYPERLINK(\"x\")/../2026"
    assert envelope.files == ("ad-x.424.age", "ad-x.jnunezo.age")
    tree = repo.commit(envelope.commit).tree
    sealed = tree["ad-x.jnunezo.age"].data_stream.read()
    assert pyrage.decrypt(sealed, [desk]) == b"secret S3cr3t-1\n"
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(sealed, [other])
    assert tree["carta.pdf"].data_stream.read() == b"%PDF-carta"
    assert [a["key"] for a in announced] == ["jnunezo", "424"] and all("S3cr3t" not in str(a) for a in announced)
    # One file out: a new commit without it; the last one out: the envelope is gone.
    assert remove_files(repo, envelope, {"ad-x.424.age"}, "never-used run-1") is not None
    [envelope] = envelopes(repo)
    assert envelope.files == ("ad-x.jnunezo.age",)
    assert remove_files(repo, envelope, {"ad-x.jnunezo.age"}, "never-used run-1") is None
    assert envelopes(repo) == []


def test_nobody_to_seal_to_is_refused_before_anything_is_written(tmp_path):
    repo = git.Repo.init(tmp_path / "repo")
    made = Envelopes(repo, "ad-x", "run-1", Delivery(recipients={}), unit_of=lambda key: "HG",
                     letter=lambda **f: "", carta=lambda h, f: None, announce=lambda r: None)
    with pytest.raises(ReconcilerError, match="no recipient to seal the secret of jnunezo"):
        made.record("jnunezo", "", "SSM-1", "F-1", "S3cr3t")
    assert envelopes(repo) == []
