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
from pathlib import Path

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
    reader = subprocess.run(["sftp", "-i", str(SSH_DIR / "lectura_ed25519"), "-o",
                             f"UserKnownHostsFile={SSH_DIR / 'known_hosts'}", "-o", "IdentitiesOnly=yes", "-b", "-",
                             "rc-correo-lectura@192.168.251.2"], input=f"put /etc/hostname {REGISTRO}/x\n",
                            capture_output=True, text=True, timeout=30)
    assert reader.returncode != 0 and "Permission denied" in reader.stderr + reader.stdout
    assert not (REGISTRO / "x").exists()


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


def test_sudo_lets_the_account_delete_a_home_and_nothing_beside_it():
    """The mail host's sudoers (ci/lab/mailhost-up) is the last word: even an applier fooled
    into asking could not delete outside <mail root>/<domain>/<name>.  (sudo -l: asked, not run.)"""
    root = MAIL_DIR / "vmail"

    def allowed(command: str) -> bool:
        return as_rc_correo(f"sudo -n -l -u vmail {command}").returncode == 0

    assert allowed(f"/usr/bin/rm -rf -- {root}/salud.lab/jnunezo.2")
    for path in (f"{root}/../shared", f"{root}/salud.lab/..", f"{root}/x/../../ssh", f"{root}/salud.lab/a/b",
                 f"{root}/salud.lab/a {MAIL_DIR}/registro", f"{root}/salud.lab", "/etc/passwd"):
        assert not allowed(f"/usr/bin/rm -rf -- {path}"), path
    assert not allowed(f"/usr/bin/rm -rf {root}/salud.lab/a")  # without "--": an option could ride in
    assert allowed(f"/usr/bin/test -e {root}/salud.lab/a -o -L {root}/salud.lab/a")
    assert not allowed("/usr/bin/test -e /etc/shadow -o -L /etc/shadow")


def test_the_read_only_account_runs_no_command_and_cannot_read_dovecots_bind_password():
    """SFTP alone (sshd's ForceCommand internal-sftp): no shell to run the reload or anything
    else; and svc-dovecot's password is root's alone, not Dovecot's group's."""
    login = ["-i", str(SSH_DIR / "lectura_ed25519"), "-o", f"UserKnownHostsFile={SSH_DIR / 'known_hosts'}",
             "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
    ran = subprocess.run(["ssh", *login, "rc-correo-lectura@192.168.251.2", "echo ran-a-command"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert "ran-a-command" not in ran.stdout
    fetched = subprocess.run(["sftp", *login, "-b", "-", "rc-correo-lectura@192.168.251.2"], capture_output=True,
                             text=True, timeout=30,
                             input=f"get {REGISTRO / 'users'} /dev/null\nget {MAIL_DIR / 'dovecot-ldap.conf.ext'} /dev/null\n")
    assert fetched.returncode != 0 and "dovecot-ldap.conf.ext" in fetched.stderr + fetched.stdout
    assert stat.S_IMODE(os.stat(MAIL_DIR / "dovecot-ldap.conf.ext").st_mode) == 0o600


def _mail_host(user: str = "rc-correo", key: str = "id_ed25519"):
    from reconciler.providers.mail.host import SshHost
    from reconciler.providers.mail.target import MailHostSettings

    return SshHost(MailHostSettings("192.168.251.2", user, str(SSH_DIR / key), str(SSH_DIR / "known_hosts")))


def test_small_requests_are_sent_at_once_not_held_for_an_acknowledgement(bed):
    """Without TCP_NODELAY, SFTP's reads of a large registry wait on the mail host's delayed
    acknowledgements (README, "Scale"): the link must turn Nagle's algorithm off."""
    import socket

    host = _mail_host("rc-correo-lectura", "lectura_ed25519")
    try:
        sock = host._client.get_transport().sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert host.read(str(REGISTRO / "users")) is not None
    finally:
        host.close()


def test_a_failing_link_or_refusal_is_an_error_never_taken_for_absent(bed):
    from reconciler.providers.mail.host import HostError

    host = _mail_host()
    try:
        # sudo refuses a path outside the mail root (exit 1, like "does not exist"): an error.
        with pytest.raises(HostError, match="sudo does not allow it"):
            host.home_exists("/etc/passwd")
        assert host.home_exists(str(MAIL_DIR / "vmail" / "salud.lab" / "nadie")) is False
        (REGISTRO / "users").write_bytes(b"caf\xe9:{SHA512-CRYPT}x\n")  # Latin-1, not UTF-8
        with pytest.raises(HostError, match="users"):
            host.read(str(REGISTRO / "users"))
    finally:
        host.close()
    with pytest.raises(HostError, match="users"):  # the link is gone: still the module's own error
        host.read(str(REGISTRO / "users"))
    with pytest.raises(HostError):
        host.home_exists(str(MAIL_DIR / "vmail" / "salud.lab" / "nadie"))


def test_a_write_that_was_killed_leaves_no_temporary_file_after_the_next(bed):
    host = _mail_host()
    try:
        stale = REGISTRO / ".aliases.0123456789ab"
        stale.write_text("half of a file")
        host.write(str(REGISTRO / "aliases"), "x@salud.lab y@salud.lab\n")
        assert not stale.exists() and (REGISTRO / "aliases").read_text() == "x@salud.lab y@salud.lab\n"
        assert grp.getgrgid(os.stat(REGISTRO / "aliases").st_gid).gr_name == "dovecot"
    finally:
        host.close()


def _two_mailboxes_the_first_closed(bed) -> tuple[str, str]:
    """Two people's mailboxes applied, then the first one's baja applied: their addresses."""
    first, second = bed.address("jnunezo"), bed.address("anunezo")
    bed.sandbox.repo.add("HG-CUERNAVACA", with_mailbox("SSM-000001", first),
                         with_mailbox("SSM-000002", second, given_names="Ana", curp=None))
    bed.sandbox.apply()
    bed.sandbox.repo.baja("SSM-000001")
    bed.sandbox.apply()
    return first, second


def test_a_purge_never_follows_a_home_to_another_mailbox_and_retries_once_fixed(bed):
    """A registry's home replaced by a link to someone else's mailbox (by hand, or by an
    attacker on the mail host): the purge refuses it, the other mailbox keeps its mail, the
    line stays; once the link is gone the next run purges."""
    first, second = _two_mailboxes_the_first_closed(bed)
    homes = {line.split(":")[0]: line.split(":")[5] for line in bed.registry()}
    victim = homes[second]
    subprocess.run(["rm", "-rf", homes[first]], check=True)
    os.symlink(victim, homes[first])
    (Path(victim) / "keep").write_text("mail of someone else")
    bed.sandbox.repo.find("SSM-000001")["mailbox"]["purge"] = {"folio": "SSM/STI/2027/00012", "date": "2027-11-21"}
    bed.set_retention(0)
    code, out, err = bed.sandbox.cli("apply", "--auto-approve")
    assert code != 0 and "is not a home of its own under the mail root" in out + err
    assert (Path(victim) / "keep").exists() and any(line.startswith(f"{first}:") for line in bed.registry())
    os.unlink(homes[first])  # the administrator removes the link
    bed.sandbox.apply()
    assert not any(line.startswith(f"{first}:") for line in bed.registry()) and (Path(victim) / "keep").exists()
    bed.sandbox.assert_converged()


def test_a_purge_never_deletes_a_home_another_line_names_however_it_is_written(bed):
    """A closed line edited by hand to name someone else's home with a trailing slash, or a
    doubled one: the homes are compared normalised, and the purge is refused."""
    first, second = _two_mailboxes_the_first_closed(bed)
    lines = bed.registry()
    victim = next(line for line in lines if line.startswith(f"{second}:")).split(":")[5]
    (Path(victim) / "keep").write_text("mail of someone else")
    for written in (victim + "/", victim.replace("/vmail/", "/vmail//")):
        edited = []
        for line in lines:
            fields = line.split(":")
            if line.startswith(f"{first}:"):
                fields[5] = written
            edited.append(":".join(fields))
        (REGISTRO / "users").write_text("\n".join(edited) + "\n")
        bed.sandbox.repo.find("SSM-000001")["mailbox"]["purge"] = {"folio": "SSM/STI/2027/00012", "date": "2027-11-21"}
        bed.set_retention(0)
        code, out, err = bed.sandbox.cli("apply", "--auto-approve")
        assert code != 0 and "is not a home of its own under the mail root" in out + err, written
        assert (Path(victim) / "keep").exists() and any(line.startswith(f"{first}:") for line in bed.registry())
