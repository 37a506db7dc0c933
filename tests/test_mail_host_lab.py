"""The mail host reached over SSH (ci/lab/mailhost-up): the reconciler writes the registry and
the maps there as rc-correo, an account that may do only that; the host key is pinned; an
account with more rights than it needs is not what the lab gives it; a mail host that is gone
at apply time changes nothing, and the next run converges."""
from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess

import pytest
import yaml

from conftest import LAB_SCRIPTS
from test_mail_provider_lab import MAIL_DIR, REGISTRO, bed, changes_of, with_mailbox  # noqa: F401 - bed: a fixture

pytestmark = pytest.mark.lab

SSH_DIR = MAIL_DIR / "ssh"


def as_rc_correo(command: str) -> subprocess.CompletedProcess:
    """A command on the mail host as the reconciler's account, with the reconciler's key."""
    return subprocess.run(["ssh", "-i", str(SSH_DIR / "id_ed25519"), "-o", f"UserKnownHostsFile={SSH_DIR / 'known_hosts'}",
                           "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "rc-correo@192.168.251.2", command],
                          capture_output=True, text=True, timeout=30)


def test_the_registry_and_maps_are_written_over_ssh_as_the_mail_hosts_account(bed):
    address = bed.address("jnunezo")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    bed.sandbox.apply()
    assert any(line.startswith(f"{address}:") for line in bed.registry())
    owner = pwd.getpwnam("rc-correo").pw_uid
    for name, mode in (("users", 0o640), ("denied", 0o640), ("recipients", 0o644), ("aliases", 0o644)):
        st = os.stat(REGISTRO / name)
        # Written by rc-correo through SFTP (root on this host would have kept root's file), the
        # old file's mode and group kept, Dovecot's group able to read it.
        assert (st.st_uid, stat.S_IMODE(st.st_mode), grp.getgrgid(st.st_gid).gr_name) == (owner, mode, "dovecot"), name
    assert not list(REGISTRO.glob(".users.*")), "a temporary file was left behind"
    bed.sandbox.assert_converged()


def test_the_mail_hosts_account_may_do_its_job_and_nothing_else():
    assert as_rc_correo("sudo -n postfix reload").returncode == 0
    refused = as_rc_correo("sudo -n cat /etc/shadow")
    assert refused.returncode != 0 and "root:" not in refused.stdout
    assert as_rc_correo("sudo -n -u vmail rm -rf -- /etc/passwd").returncode != 0  # only under the mail root
    for path in (MAIL_DIR / "doveadm.key", MAIL_DIR / "dovecot.conf", MAIL_DIR / "dovecot-ldap.conf.ext"):
        assert as_rc_correo(f"echo x >> {path}").returncode != 0, path
    assert as_rc_correo(f"cat {MAIL_DIR / 'doveadm.key'}").returncode != 0


def test_a_plan_logs_in_as_the_account_that_may_only_read(bed, tmp_path):
    """The key that writes is not needed to plan (a pull request's runner never holds it); the
    read-only account cannot write the registry's directory nor run the reload."""
    address = bed.address("jnunezo")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    _inventory_with(bed, key=str(tmp_path / "no-such-key"))
    plan = bed.sandbox.plan_json()
    assert [c["key"] for c in changes_of(plan, "mail-test") if c["kind"] == "mailbox"] == ["SSM-000001"]
    code, out, err = bed.sandbox.cli("apply", "--auto-approve")
    assert code != 0 and "no-such-key" in out + err
    reader = subprocess.run(["ssh", "-i", str(SSH_DIR / "lectura_ed25519"), "-o",
                             f"UserKnownHostsFile={SSH_DIR / 'known_hosts'}", "-o", "IdentitiesOnly=yes", "-o",
                             "BatchMode=yes", "rc-correo-lectura@192.168.251.2",
                             f"touch {REGISTRO}/x; sudo -n postfix reload"], capture_output=True, text=True, timeout=30)
    assert reader.returncode != 0 and "Permission denied" in reader.stderr and not (REGISTRO / "x").exists()


def _inventory_with(bed, **ssh) -> None:
    inventory = yaml.safe_load(bed.sandbox.inventory.read_text())
    inventory["targets"]["mail-test"]["ssh"].update(ssh)
    bed.sandbox.inventory.write_text(yaml.safe_dump(inventory, allow_unicode=True))


def test_an_unknown_or_changed_host_key_is_refused_before_anything_is_read(bed, tmp_path):
    address = bed.address("jnunezo")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    forged = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    forged.write_text("192.168.251.2 " + " ".join((tmp_path / "other.pub").read_text().split()[:2]) + "\n")
    _inventory_with(bed, known_hosts=str(forged))
    code, out, err = bed.sandbox.cli("apply", "--auto-approve")
    assert code == 1 and "presented a host key other than the one in" in out + err and str(forged) in out + err
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    _inventory_with(bed, known_hosts=str(empty))
    code, out, err = bed.sandbox.cli("plan")
    assert code == 1 and "its host key is not in" in err
    os.chmod(empty, 0o666)
    code, out, err = bed.sandbox.cli("plan")
    assert code == 1 and "is writable by others" in err
    assert not any(line.startswith(f"{address}:") for line in bed.registry())


def test_a_mail_host_gone_at_apply_changes_nothing_and_the_next_run_converges(bed):
    address = bed.address("jnunezo")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", address))
    pid = int((SSH_DIR / "sshd.pid").read_text())
    os.kill(pid, 15)
    try:
        code, out, err = bed.sandbox.cli("apply", "--auto-approve")
        assert code != 0 and "cannot reach the mail host rc-correo@192.168.251.2:22" in out + err
        assert not any(line.startswith(f"{address}:") for line in bed.registry())
    finally:
        up = subprocess.run([str(LAB_SCRIPTS / "mailhost-up")], capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
    bed.sandbox.apply()
    assert any(line.startswith(f"{address}:") for line in bed.registry())
    bed.sandbox.assert_converged()
