"""The mail server's files on the reconciler's own host (LocalHost), failing closed: a home it
cannot look at is an error, never free; a file that is not UTF-8 is an error, never empty; a
write killed halfway leaves a temporary file the next write removes.  (The same over SSH, against
the lab's mail host: test_mail_host_lab.py.)"""
from __future__ import annotations

import os
import stat

import pytest

from reconciler.providers.mail.host import HostError, LocalHost


def test_a_home_that_cannot_be_looked_at_is_an_error_never_free(tmp_path, monkeypatch):
    host = LocalHost()
    assert host.home_exists(str(tmp_path / "nadie")) is False
    (tmp_path / "ana").mkdir()
    assert host.home_exists(str(tmp_path / "ana")) is True
    os.symlink(tmp_path / "se-fue", tmp_path / "enlace")  # a dangling link still takes the name
    assert host.home_exists(str(tmp_path / "enlace")) is True

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(os, "lstat", denied)  # (root passes every permission: the refusal is staged)
    with pytest.raises(HostError, match="Permission denied"):
        host.home_exists(str(tmp_path / "quien-sabe"))


def test_a_file_that_is_not_utf8_is_an_error_naming_it(tmp_path):
    registry = tmp_path / "users"
    registry.write_bytes(b"caf\xe9:x\n")
    with pytest.raises(HostError) as raised:
        LocalHost().read(str(registry))
    assert raised.value.filename == str(registry) and "UTF-8" in str(raised.value)


def test_a_write_keeps_the_mode_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "denied"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    (tmp_path / ".denied.0123456789ab").write_text("half")  # a write killed before its rename
    (tmp_path / ".denied.keep").write_text("not ours")
    LocalHost().write(str(target), "new\n")
    assert target.read_text() == "new\n" and stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [".denied.keep", "denied"]
