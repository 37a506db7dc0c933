"""TEST DOUBLE of a Cisco IOS router's SSH command line.

No emulator with ACL support installs from PyPI (fake-switches does not install on Python 3.11
and stores no ACL entries), so this small paramiko SSH server models the part of IOS the
reconciler's Cisco driver uses: exec and configuration modes with their prompts,
`ip access-list extended` with `remark`/`permit`/`deny` entries, `no ip access-list extended`,
`interface X` with `ip access-group NAME in|out`, `show running-config` and
`show ip access-lists`.  It records, after every configuration command, which ACL each
interface is bound to and whether that ACL exists, so a test can prove there was never a
window without one.
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

import paramiko

HOSTNAME = "rtr-hgc"


@dataclass
class Router:
    acls: dict[str, list[str]] = field(default_factory=dict)  # name -> entries, in order
    interfaces: dict[str, dict[str, str]] = field(default_factory=lambda: {"GigabitEthernet0/1": {}})
    history: list[dict] = field(default_factory=list)  # after each config command: interface -> (acl, exists)
    commands: list[str] = field(default_factory=list)

    def bound(self) -> dict[str, tuple[str, bool]]:
        return {name: (acl, acl in self.acls) for name, cfg in self.interfaces.items()
                for direction, acl in cfg.items()}

    def running_config(self) -> str:
        out = ["Building configuration...", "", "Current configuration : 1024 bytes", "!",
               f"hostname {HOSTNAME}", "!"]
        for name, cfg in self.interfaces.items():
            out.append(f"interface {name}")
            out += [f" ip access-group {acl} {direction}" for direction, acl in cfg.items()]
            out.append("!")
        for name, entries in self.acls.items():
            out.append(f"ip access-list extended {name}")
            out += [f" {e}" for e in entries]
            out.append("!")
        out.append("end")
        return "\r\n".join(out)

    def access_lists(self) -> str:
        out = []
        for name, entries in self.acls.items():
            out.append(f"Extended IP access list {name}")
            seq = 0
            for e in entries:
                if not e.startswith("remark"):
                    seq += 10
                    out.append(f"    {seq} {e}")
        return "\r\n".join(out)


class _Server(paramiko.ServerInterface):
    def __init__(self, username: str, password: str | None, authorized: paramiko.PKey | None = None):
        self.username, self.password, self.authorized = username, password, authorized

    def check_auth_password(self, username, password):
        ok = self.password is not None and username == self.username and password == self.password
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        ok = self.authorized is not None and username == self.username and key == self.authorized
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username):
        return ",".join(kind for kind, on in (("publickey", self.authorized), ("password", self.password)) if on)

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, *args):
        return True

    def check_channel_shell_request(self, channel):
        return True


class _Session:
    """One CLI session: modes, prompts, commands."""

    def __init__(self, router: Router, lock: threading.Lock):
        self.router, self.lock = router, lock
        self.mode, self.context = "exec", None

    @property
    def prompt(self) -> str:
        suffix = {"exec": "#", "config": "(config)#", "acl": "(config-ext-nacl)#", "if": "(config-if)#"}[self.mode]
        return HOSTNAME + suffix

    def run(self, line: str) -> str:
        words = line.split()
        if not words:
            return ""
        with self.lock:
            self.router.commands.append(line)
            out = self._dispatch(line, words)
            if self.mode != "exec" or words[0] in ("end",):
                self.router.history.append(self.router.bound())
        return out

    def _dispatch(self, line: str, words: list[str]) -> str:
        r = self.router
        if words[0] == "end":
            self.mode = "exec"
            return ""
        if words[0] == "exit":
            self.mode = "config" if self.mode in ("acl", "if") else "exec"
            return ""
        if self.mode == "exec":
            if line.startswith("terminal "):
                return ""
            if words[:2] == ["configure", "terminal"]:
                self.mode = "config"
                return "Enter configuration commands, one per line.  End with CNTL/Z."
            if line.startswith("show running-config"):
                return r.running_config()
            if line.startswith("show ip access-lists"):
                return r.access_lists()
            return "% Invalid input detected at '^' marker."
        if self.mode == "acl" and words[0] in ("permit", "deny", "remark"):
            r.acls[self.context].append(line.strip())
            return ""
        if self.mode == "if" and words[:2] == ["ip", "access-group"] and len(words) == 4:
            r.interfaces[self.context][words[3]] = words[2]
            return ""
        if words[:3] == ["ip", "access-list", "extended"] and len(words) == 4:
            self.mode, self.context = "acl", words[3]
            r.acls.setdefault(words[3], [])
            return ""
        if words[:4] == ["no", "ip", "access-list", "extended"] and len(words) == 5:
            r.acls.pop(words[4], None)
            self.mode = "config"
            return ""
        if words[0] == "interface" and len(words) == 2:
            self.mode, self.context = "if", words[1]
            r.interfaces.setdefault(words[1], {})
            return ""
        return "% Invalid input detected at '^' marker."


class IOSDouble:
    """Run the double on 127.0.0.1 (a free port) until stop()."""

    def __init__(self, username: str = "reconciler", password: str | None = "Lab-Cisco-2026",
                 router: Router | None = None, authorized: paramiko.PKey | None = None):
        self.username, self.password, self.authorized = username, password, authorized
        self.router = router or Router()
        self.key = paramiko.RSAKey.generate(2048)
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def known_hosts(self, path) -> str:
        """An OpenSSH known_hosts file pinning this double's host key (as `ssh-keyscan -p PORT` writes it)."""
        path.write_text(f"[127.0.0.1]:{self.port} {self.key.get_name()} {self.key.get_base64()}\n", encoding="ascii")
        return str(path)

    def stop(self) -> None:
        """Stop listening.  shutdown() first: a thread blocked in accept() keeps a closed
        socket listening, and a later double given the same port would lose its clients to it."""
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        transport = paramiko.Transport(client)
        transport.add_server_key(self.key)
        try:
            transport.start_server(server=_Server(self.username, self.password, self.authorized))
            channel = transport.accept(10)
            if channel is None:
                return
            session = _Session(self.router, self.lock)
            channel.send(f"\r\n{session.prompt}")
            buffer = ""
            while True:
                data = channel.recv(4096)
                if not data:
                    return
                for ch in data.decode("utf-8", errors="replace"):
                    if ch in "\r\n":
                        if ch == "\n" and buffer == "" and getattr(session, "_cr", False):
                            session._cr = False
                            continue
                        session._cr = ch == "\r"
                        out = session.run(buffer)
                        channel.send("\r\n" + (out + "\r\n" if out else "") + session.prompt)
                        buffer = ""
                    else:
                        buffer += ch
                        channel.send(ch)  # echo, as a terminal does
        except (EOFError, OSError, paramiko.SSHException):
            return
        finally:
            transport.close()
