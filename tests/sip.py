"""A minimal SIP user agent for the tests: REGISTER over UDP with digest authentication
(RFC 3261 and RFC 2617, MD5), the way a desk phone registers its line.  A real client
talking to the real Kamailio; it answers with the final status code."""
from __future__ import annotations

import hashlib
import re
import secrets
import socket

SERVER = ("127.0.0.1", 5060)
DOMAIN = "salud.lab"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


class Phone:
    def __init__(self, user: str, password: str, domain: str = DOMAIN, server=SERVER):
        self.user, self.password, self.domain, self.server = user, password, domain, server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3)
        self.port = self.sock.getsockname()[1]
        self.call_id = secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def _request(self, expires: int, authorization: str | None) -> tuple[int, str]:
        self.cseq += 1
        uri = f"sip:{self.domain}"
        lines = [
            f"REGISTER {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{self.domain}>;tag={self.tag}",
            f"To: <sip:{self.user}@{self.domain}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>",
            f"Expires: {expires}",
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        lines += ["Content-Length: 0", "", ""]
        self.sock.sendto("\r\n".join(lines).encode(), self.server)
        while True:
            data = self.sock.recv(65535).decode(errors="replace")
            status = int(data.split(" ", 2)[1])
            if status >= 200:  # skip provisional answers
                return status, data

    def register(self, expires: int = 300) -> int:
        """REGISTER, answering one digest challenge; the final status code."""
        status, answer = self._request(expires, None)
        if status != 401:
            return status
        challenge = re.search(r"^WWW-Authenticate:\s*Digest\s+(.*)$", answer, re.MULTILINE | re.IGNORECASE).group(1)
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        realm, nonce, qop = params["realm"], params["nonce"], params.get("qop")
        uri = f"sip:{self.domain}"
        ha1 = _md5(f"{self.user}:{realm}:{self.password}")
        ha2 = _md5(f"REGISTER:{uri}")
        header = f'Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
        if qop:
            cnonce, nc = secrets.token_hex(8), "00000001"
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            header += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        header += f', response="{response}"'
        status, _ = self._request(expires, header)
        return status


def register(user: str, password: str) -> int:
    phone = Phone(user, password)
    try:
        return phone.register()
    finally:
        phone.close()
