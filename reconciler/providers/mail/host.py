"""Where the mail server's files are: on this host, or on the mail host reached over SSH.

The reconciler reads and writes four files (Dovecot's registry, Postfix's recipients and aliases,
Dovecot's deny list, plus the sessions still owed a kick), asks Postfix to reload, and, at the
end of a retention, deletes a closed mailbox's home.  `LocalHost` does it here; `SshHost` does
it on the mail host as one dedicated account that may do only that:

- files through SFTP, each write atomic (a temporary file in the same directory, fsync'd, its
  mode and group set to the old file's, then renamed over it: Dovecot and Postfix see the old
  file or the new one, never half);
- the reload through `sudo -n` of the one command the inventory names (sudoers allows it alone);
- the mailboxes' homes as their owner, never as root (`sudo -n -u vmail`): `test` before a
  new home is chosen, `realpath -m` and `rm -rf` for a purge at the end of a retention (the
  applier deletes a home only when it is exactly <mail root>/<domain>/<name>, no symlink on
  the way; the mail host's sudoers allows nothing else).

Every failure of the link (a dropped connection, a timeout, a protocol error, a file that is not
UTF-8) is a HostError naming the file or command: never a traceback, never taken as "absent".

The host key is pinned: only the key in the inventory's known_hosts is accepted, and the login
is by the inventory's key alone (no agent, no ~/.ssh)."""
from __future__ import annotations

import errno
import os
import posixpath
import re
import shlex
import shutil
import socket
import stat
import subprocess
import uuid
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.i18n import _


class HostError(OSError):
    """A file or command on the mail host failed; str() says which and why (an OSError, so that
    callers catch it with the host's own; but its words are its own, not errno's)."""

    def __init__(self, message: str, filename: str | None = None):
        super().__init__(message)
        self.message, self.filename = message, filename

    def __str__(self) -> str:
        return self.message


def temporary_name(name: str) -> str:
    """The name a write gives its temporary file beside `name` (dot-prefixed: Dovecot and Postfix
    never read it)."""
    return f".{name}.{uuid.uuid4().hex[:12]}"


def is_temporary(entry: str, name: str) -> bool:
    """A temporary file of `name` left by a write that was killed before its rename."""
    return re.fullmatch(rf"\.{re.escape(name)}\.[0-9a-f]{{12}}", entry) is not None


class LocalHost:
    """The mail server's files on the reconciler's own host."""

    where = "local"  # not for people

    def read(self, path: str) -> str | None:
        try:
            return Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:
            raise HostError(_("{path} is not UTF-8 text ({error})", path=path, error=exc.reason), path) from None

    def write(self, path: str, text: str) -> None:
        """Readers see the old file or the new one, never half of it; the new file keeps the
        old one's owner, group and mode."""
        target = Path(path)
        try:
            st = target.stat()
        except FileNotFoundError:
            st = None
        for entry in os.listdir(target.parent):
            if is_temporary(entry, target.name):  # left by a run that was killed mid-write
                (target.parent / entry).unlink(missing_ok=True)
        tmp = target.parent / temporary_name(target.name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            if st is not None:
                os.chmod(tmp, st.st_mode & 0o7777)
                os.chown(tmp, st.st_uid, st.st_gid)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def mtime(self, path: str) -> float | None:
        try:
            return Path(path).stat().st_mtime
        except OSError:
            return None

    def home_exists(self, path: str) -> bool:
        """A home, or a link where one would be; a home that cannot be looked at (no right to
        enter the mail root, a disk error) is an error, never "free"."""
        try:
            os.lstat(path)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise HostError(_("{path}: {error}", path=path, error=exc.strerror or str(exc)), path) from None

    def resolve_home(self, path: str) -> str:
        return str(Path(path).resolve())

    def run(self, command: tuple[str, ...]) -> None:
        try:
            subprocess.run(list(command), check=True, capture_output=True, text=True, timeout=60)
        except subprocess.CalledProcessError as exc:
            raise HostError(exc.stderr.strip() or str(exc)) from None
        except (OSError, subprocess.SubprocessError) as exc:
            raise HostError(str(exc)) from None

    def remove_home(self, path: str) -> None:
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        pass


class SshHost:
    """The mail server's files on the mail host, through one SSH connection (paramiko)."""

    def __init__(self, settings, mail_owner: str = "vmail"):
        import paramiko  # only for a mail host reached over SSH

        self.settings, self.mail_owner = settings, mail_owner
        self.where = f"{settings.user}@{settings.host}:{settings.port}"  # not for people
        # What a dropped or garbled link raises: every one becomes a HostError.
        self._failures = (OSError, EOFError, paramiko.SSHException, UnicodeDecodeError)
        check_key_files(settings.known_hosts, settings.key, self.where)
        self._client = paramiko.SSHClient()
        try:
            self._client.load_host_keys(settings.known_hosts)
            self._client.set_missing_host_key_policy(paramiko.RejectPolicy())
            self._client.connect(settings.host, port=settings.port, username=settings.user,
                                 pkey=paramiko.PKey.from_path(settings.key), allow_agent=False,
                                 look_for_keys=False, timeout=15, banner_timeout=15, auth_timeout=15)
            # A link that dies quietly (a firewall forgetting it) is noticed, and a mail host
            # that stops answering is an error after a minute, not a run that hangs.
            self._client.get_transport().set_keepalive(15)
            # Nagle's algorithm holds SFTP's small requests back until the mail host's delayed
            # acknowledgement: reading the 18 MB of the registry and maps of 100,000 mailboxes
            # took 2.6-3.3 s with it, 0.2-0.5 s without (the mail server's settled proof reads
            # them in every nightly drift check).
            self._client.get_transport().sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sftp = self._client.open_sftp()
            self._sftp.get_channel().settimeout(60)
        except paramiko.BadHostKeyException:
            self._client.close()
            raise ReconcilerError(_("the mail host {host} presented a host key other than the one in {path}: refused "
                                    "(a replaced server, or someone in between)",
                                    host=self.where, path=settings.known_hosts)) from None
        except (paramiko.SSHException, OSError, ValueError, EOFError) as exc:
            self._client.close()
            why = (_("its host key is not in {path}", path=settings.known_hosts)
                   if "not found in known_hosts" in str(exc) else str(exc) or type(exc).__name__)  # not for people
            raise ReconcilerError(_("cannot reach the mail host {host} over SSH: {error}",
                                    host=self.where, error=why)) from None

    def read(self, path: str) -> str | None:
        try:
            with self._sftp.open(path, "r") as f:
                # Asked for all at once, not one 32 KiB block per round trip: a registry of
                # 100,000 mailboxes took 4 s, now 0.25 s.
                f.prefetch(max_concurrent_requests=64)
                return f.read().decode("utf-8")
        except FileNotFoundError:
            return None
        except self._failures as exc:
            raise self._error(path, exc) from None

    def write(self, path: str, text: str) -> None:
        directory, name = posixpath.split(path)
        tmp = posixpath.join(directory, temporary_name(name))
        try:
            self._remove_stale(directory, name)
            try:
                old = self._sftp.stat(path)
            except FileNotFoundError:
                old = None
            with self._sftp.open(tmp, "wx") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                f.chmod(stat.S_IMODE(old.st_mode) if old is not None else 0o640)
                if old is not None:
                    self._keep_group(f, old)
                self._fsync(f)
            self._sftp.posix_rename(tmp, path)
        except self._failures as exc:
            try:
                self._sftp.remove(tmp)
            except self._failures:
                pass  # the next write of this file removes it
            raise self._error(path, exc) from None

    def _remove_stale(self, directory: str, name: str) -> None:
        """Temporary files of `name` left by a run killed before its rename (runs of one target
        never overlap: the apply lock)."""
        for entry in self._sftp.listdir(directory):
            if is_temporary(entry, name):
                self._sftp.remove(posixpath.join(directory, entry))

    @staticmethod
    def _keep_group(f, old) -> None:
        """The new file gets the old one's group (Dovecot and Postfix read the registry through
        it): a file they could not read is refused before it replaces the old one."""
        try:
            f.chown(old.st_uid, old.st_gid)
        except OSError:  # the account cannot give the file away: the group is what matters
            try:
                f.chown(f.stat().st_uid, old.st_gid)
            except OSError:
                pass  # a setgid directory may have given it already: checked below
        if f.stat().st_gid != old.st_gid:
            raise OSError(errno.EPERM, _("the new file cannot get the old one's group (gid {gid}), which the mail "
                                         "server reads it through: not replaced; make the account a member of "
                                         "that group or the directory setgid", gid=old.st_gid))

    def _fsync(self, f) -> None:
        """On disk before the rename (OpenSSH's fsync extension; paramiko has no call of its own)."""
        from paramiko.sftp import CMD_EXTENDED

        try:
            self._sftp._request(CMD_EXTENDED, "fsync@openssh.com", f.handle)  # not for people
        except (OSError, EOFError):  # a server without the extension: the rename is still atomic
            pass

    def mtime(self, path: str) -> float | None:
        try:
            return float(self._sftp.stat(path).st_mtime)
        except self._failures:
            return None  # only a wait is sized by it (settled): unknown means the longest wait

    def home_exists(self, path: str) -> bool:
        """A home, or a link where a home would be (dangling or not).  sudo refusing exits 1
        too, like `test` saying "no": a 1 counts as "free" only once sudo has said (-l: asked,
        nothing run) that it would run this very command."""
        command = self._as_owner("test", "-e", path, "-o", "-L", path)
        status = self._exec(command, ok=(0, 1))[0]
        if status == 0:
            return True
        allowed = self._exec(command[:2] + ("-l",) + command[2:], ok=(0, 1))
        if allowed[0] != 0:
            raise HostError(_("{command} on {host}: sudo does not allow it: {error}", command="test -e",
                              host=self.where, error=allowed[2] or path))
        return False

    def resolve_home(self, path: str) -> str:
        """The path as the mail host resolves it (symlinks followed, as the mail owner sees them)."""
        return self._exec(self._as_owner("realpath", "-m", "--", path))[1].rstrip("\n")

    def remove_home(self, path: str) -> None:
        self._exec(self._as_owner("rm", "-rf", "--", path))

    def _as_owner(self, *command: str) -> tuple[str, ...]:
        return ("sudo", "-n", "-u", self.mail_owner, *command)  # not for people

    def run(self, command: tuple[str, ...]) -> None:
        self._exec(command)

    def _exec(self, command: tuple[str, ...], ok: tuple[int, ...] = (0,)) -> tuple[int, str, str]:
        """Run a command on the mail host (no shell on this side: each word quoted); its exit
        status, output and what it wrote to stderr.  A status outside `ok` is a HostError with
        what it wrote."""
        line = " ".join(shlex.quote(part) for part in command)
        try:
            _stdin, out, err = self._client.exec_command(line, timeout=60)
            output = out.read().decode("utf-8", "replace")
            # recv_exit_status() waits for ever: a host that never sends the status is an error.
            if not out.channel.status_event.wait(60):
                raise TimeoutError(_("no exit status after 60 s"))
            status = out.channel.recv_exit_status()
            problem = err.read().decode("utf-8", "replace").strip()
        except Exception as exc:  # noqa: BLE001 - paramiko's SSHException, socket timeouts, a dropped link
            raise HostError(_("{command} on {host}: {error}", command=line, host=self.where,
                              error=str(exc) or type(exc).__name__)) from None
        if status not in ok:
            raise HostError(_("{command} on {host} exited {code}: {error}", command=line, host=self.where,
                              code=status, error=problem))
        return status, output, problem

    def _error(self, path: str, exc: BaseException) -> HostError:
        return HostError(_("{path} on {host}: {error}", path=path, host=self.where,
                           error=getattr(exc, "strerror", None) or str(exc) or type(exc).__name__), path)

    def close(self) -> None:
        self._client.close()


def check_key_files(known_hosts: str, key: str, host: str) -> None:
    """As ssh itself refuses them: a known_hosts that is missing or others may write (anyone
    could pin a key of theirs there), a private key others may read."""
    try:
        if os.stat(known_hosts).st_mode & 0o022:
            raise ReconcilerError(_("known_hosts file {path} of {host} is writable by others: anyone could pin a key "
                                    "of theirs there; chmod go-w it", path=known_hosts, host=host))
    except FileNotFoundError:
        raise ReconcilerError(_("known_hosts file {path} of {host} does not exist: its host key must be pinned "
                                "there (ssh-keyscan, checked against the console)", path=known_hosts, host=host)) from None
    except OSError as exc:
        raise ReconcilerError(_("cannot read {path}: {error}", path=known_hosts, error=exc.strerror or exc)) from None
    try:
        if os.stat(key).st_mode & 0o077:
            raise ReconcilerError(_("the private key {path} for {host} is readable by others; chmod 600 it",
                                    path=key, host=host))
    except FileNotFoundError:
        raise ReconcilerError(_("the private key {path} for {host} does not exist", path=key, host=host)) from None
    except OSError as exc:
        raise ReconcilerError(_("cannot read {path}: {error}", path=key, error=exc.strerror or exc)) from None


def open_host(target) -> LocalHost | SshHost:
    """The mail server's files as this run reaches them (a run that only reads, with the
    read-only account when the inventory names one)."""
    login = target.host_login
    return SshHost(login, target.mail_owner) if login is not None else LocalHost()
