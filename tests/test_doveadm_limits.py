"""doveadm requests under load (issue 13 item 8): batches, a time limit that grows with the
work, and a message that says what is known when Dovecot is slow.

The server here is a test double of Dovecot's HTTP API (it answers each command "ok" after a
delay per command): a slow Dovecot cannot be made on demand in the lab."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reconciler.errors import ReconcilerError
from reconciler.providers.mail import doveadm
from reconciler.providers.mail.doveadm import Command, Doveadm, Unanswered


@pytest.fixture
def slow_dovecot():
    """A stand-in for Dovecot's doveadm HTTP API taking `delay` seconds per command; and the
    first `late` requests `stall` seconds more (Dovecot's late answers, Doveadm.READS)."""
    state = {"delay": 0.0, "requests": [], "late": 0, "stall": 0.0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            commands = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append([name for name, _, _ in commands])
            late = len(state["requests"]) <= state["late"]
            time.sleep(state["delay"] * len(commands) + (state["stall"] if late else 0))
            body = json.dumps([["doveadmResponse", [], tag] for _, _, tag in commands]).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/doveadm/v1", state
    server.shutdown()


def commands(n: int) -> list[Command]:
    return [Command("mailboxCreate", {"user": f"u{i}@salud.lab"}, f"c-{i}") for i in range(n)]


def test_many_commands_go_in_batches_each_with_time_for_its_size(slow_dovecot, monkeypatch):
    url, state = slow_dovecot
    monkeypatch.setattr(doveadm, "PER_COMMAND", 0.02)
    state["delay"] = 0.01  # 250 commands take 2.5 s in all: more than the fixed part allows
    api = Doveadm(url, "key", timeout=0.5)
    answers = api.run(commands(250))
    assert len(answers) == 250 and all(a.ok for a in answers.values())
    assert [len(r) for r in state["requests"]] == [100, 100, 50]
    assert api.limit(100) == pytest.approx(2.5)


def test_a_batch_that_times_out_keeps_the_answers_before_it_and_says_what_is_known(slow_dovecot, monkeypatch):
    url, state = slow_dovecot
    monkeypatch.setattr(doveadm, "PER_COMMAND", 0.0)
    api = Doveadm(url, "key", timeout=0.3)
    real = api._request
    calls = []

    def second_is_slow(batch):
        calls.append(len(batch))
        state["delay"] = 0.01 if len(calls) == 2 else 0.0
        return real(batch)
    api._request = second_is_slow
    with pytest.raises(Unanswered) as caught:
        api.run(commands(150))
    assert len(caught.value.answers) == 100  # the first batch's answers are kept
    message = str(caught.value)
    assert "did not answer 50 commands in 0.3 s; Dovecot may still finish them" in message
    # the API key is a last hint, not the diagnosis
    assert message.endswith("If it never answers, check the API key: Dovecot answers a wrong one late")


def reads(n: int) -> list[Command]:
    return [Command("user", {"userMask": ["*"]}, "users")] + [
        Command("aclGet", {"user": f"compartido{i}@salud.lab", "mailbox": "INBOX"}, f"acl-{i}") for i in range(n)]


def test_a_read_answered_late_is_asked_once_more_and_its_answer_used(slow_dovecot, monkeypatch):
    url, state = slow_dovecot
    monkeypatch.setattr(doveadm, "PER_COMMAND", 0.0)
    state["late"], state["stall"] = 1, 1.0
    answers = Doveadm(url, "key", timeout=0.3).run(reads(3))
    assert set(answers) == {"users", "acl-0", "acl-1", "acl-2"} and all(a.ok for a in answers.values())
    assert state["requests"] == [["user", "aclGet", "aclGet", "aclGet"]] * 2


def test_a_read_late_twice_is_not_asked_a_third_time(slow_dovecot, monkeypatch):
    url, state = slow_dovecot
    monkeypatch.setattr(doveadm, "PER_COMMAND", 0.0)
    state["late"], state["stall"] = 2, 1.0
    with pytest.raises(Unanswered) as caught:
        Doveadm(url, "key", timeout=0.3).run(reads(1))
    assert "did not answer 2 commands in 0.3 s" in str(caught.value) and caught.value.answers == {}
    assert len(state["requests"]) == 2


@pytest.mark.parametrize("written", ["mailboxCreate", "aclSet", "aclDelete", "kick"])  # what apply sends
def test_a_request_that_writes_is_never_sent_twice(slow_dovecot, monkeypatch, written):
    """Dovecot may still be carrying out the first: the read back and the next plan say what is left."""
    url, state = slow_dovecot
    monkeypatch.setattr(doveadm, "PER_COMMAND", 0.0)
    state["late"], state["stall"] = 1, 1.0
    batch = reads(1) + [Command(written, {"user": "ana.nunez@salud.lab"}, "w")]
    with pytest.raises(Unanswered) as caught:
        Doveadm(url, "key", timeout=0.3).run(batch)
    assert "Dovecot may still finish them" in str(caught.value)
    assert len(state["requests"]) == 1


def test_a_read_refused_is_not_asked_again(monkeypatch):
    """Only a late answer is asked for again: a refusal (a wrong key, a server error) or an
    unreachable server is reported at once."""
    api = Doveadm("http://127.0.0.1:9/doveadm/v1", "key", timeout=0.3)
    sent = []

    def refused(batch):
        sent.append(batch)
        raise ReconcilerError("doveadm API refused the request: HTTP 500")  # not for people
    monkeypatch.setattr(api, "_request", refused)
    with pytest.raises(Unanswered, match="HTTP 500"):
        api.run(reads(2))
    assert len(sent) == 1
