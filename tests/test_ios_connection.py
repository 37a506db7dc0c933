"""How the Cisco IOS driver reaches a router, against the SSH TEST DOUBLE of tests/ios_double.py
(no lab needed): the router's host key is pinned (an unknown or changed key is refused before
anything is sent), and it logs in with a key or a password."""
from __future__ import annotations

import paramiko
import pytest

from ios_double import IOSDouble
from reconciler.errors import ReconcilerError
from reconciler.providers.cisco_ios.provider import CiscoProvider
from reconciler.providers.cisco_ios.target import CiscoTarget


def target(double: IOSDouble, known_hosts: str, **auth) -> CiscoTarget:
    return CiscoTarget.build("rtr-test", {"host": "127.0.0.1", "port": double.port, "username": double.username,
                                          "known_hosts": known_hosts, "interface": "GigabitEthernet0/1",
                                          "acl": "RECONCILER", "audit_dir": "/nonexistent", **auth})


@pytest.fixture
def double(monkeypatch):
    d = IOSDouble()
    monkeypatch.setenv("RTR_TEST_PASSWORD", d.password)
    yield d
    d.stop()


def read(t: CiscoTarget):
    with CiscoProvider(t) as provider:
        return provider.read()


def test_a_router_whose_key_is_pinned_is_read(double, tmp_path):
    state = read(target(double, double.known_hosts(tmp_path / "known_hosts"), password={"env": "RTR_TEST_PASSWORD"}))
    assert state.bound is None and state.lists == {}


def test_a_changed_host_key_is_refused_before_anything_is_sent(double, tmp_path):
    impostor = paramiko.RSAKey.generate(2048)
    path = tmp_path / "known_hosts"
    path.write_text(f"[127.0.0.1]:{double.port} ssh-rsa {impostor.get_base64()}\n", encoding="ascii")
    with pytest.raises(ReconcilerError, match="presented a host key other than the one in"):
        read(target(double, str(path), password={"env": "RTR_TEST_PASSWORD"}))
    assert double.router.history == []  # not one command reached it


def test_an_unknown_host_and_a_missing_known_hosts_file_are_refused(double, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("", encoding="ascii")
    with pytest.raises(ReconcilerError, match="its host key is not in"):
        read(target(double, str(empty), password={"env": "RTR_TEST_PASSWORD"}))
    with pytest.raises(ReconcilerError, match="does not exist"):
        read(target(double, str(tmp_path / "nowhere"), password={"env": "RTR_TEST_PASSWORD"}))


def test_key_based_login_without_a_password(tmp_path):
    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(tmp_path / "id_rsa"))
    double = IOSDouble(password=None, authorized=paramiko.RSAKey(filename=str(tmp_path / "id_rsa")))
    try:
        pinned = double.known_hosts(tmp_path / "known_hosts")
        assert read(target(double, pinned, ssh_key=str(tmp_path / "id_rsa"))).lists == {}
        other = paramiko.RSAKey.generate(2048)
        other.write_private_key_file(str(tmp_path / "other"))
        with pytest.raises(ReconcilerError, match="cannot reach the router"):
            read(target(double, pinned, ssh_key=str(tmp_path / "other")))
        with pytest.raises(ReconcilerError, match="cannot reach the router"):  # a message, not a traceback
            read(target(double, pinned, ssh_key=str(tmp_path / "missing")))
    finally:
        double.stop()


def test_the_inventory_needs_known_hosts_and_a_password_or_a_key(tmp_path):
    from reconciler.config.inventory import load_inventory
    from reconciler.errors import ValidationFailed

    base = {"kind": "cisco_ios", "host": "10.0.0.1", "username": "u", "interface": "Gi0/1", "acl": "RECONCILER"}
    for entry, field in ((base | {"password": {"env": "X"}}, "known_hosts"), (base | {"known_hosts": "/k"}, None)):
        path = tmp_path / "inventory.yaml"
        import yaml

        path.write_text(yaml.safe_dump({"targets": {"rtr": entry}}), encoding="utf-8")
        with pytest.raises(ValidationFailed) as failed:
            load_inventory(path)
        text = " ".join(f"{p.field} {p.message}" for p in failed.value.problems)
        assert (field or "password") in text, text


def test_a_known_hosts_others_may_write_and_a_key_others_may_read_are_refused(double, tmp_path):
    import os

    pinned = double.known_hosts(tmp_path / "known_hosts")
    os.chmod(pinned, 0o666)
    with pytest.raises(ReconcilerError, match="writable by others"):
        read(target(double, pinned, password={"env": "RTR_TEST_PASSWORD"}))
    os.chmod(pinned, 0o644)
    key = tmp_path / "id_rsa"
    paramiko.RSAKey.generate(2048).write_private_key_file(str(key))
    os.chmod(key, 0o644)
    with pytest.raises(ReconcilerError, match="readable by others"):
        read(target(double, pinned, ssh_key=str(key)))
    assert double.router.history == []
