from __future__ import annotations

import os
import socket
import uuid

import pytest

from monitor.systemd import notify, watchdog_period


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_notify_sends_one_datagram_to_the_socket_path(notify_socket):
    path, sock = notify_socket
    assert notify("READY=1\nSTATUS=up", environ={"NOTIFY_SOCKET": path}) is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_notify_reaches_an_abstract_namespace_socket():
    name = f"twitchwatch-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert notify("WATCHDOG=1", environ={"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_is_a_no_op_outside_systemd():
    assert notify("READY=1", environ={}) is False
    assert notify("READY=1", environ={"NOTIFY_SOCKET": ""}) is False


def test_notify_to_a_vanished_socket_reports_false_instead_of_raising(tmp_path):
    assert notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


def test_notify_ignores_a_socket_that_is_not_a_unix_path():
    assert notify("READY=1", environ={"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_watchdog_period_reads_usec_for_this_process():
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_period(env) == 30.0
    assert watchdog_period({"WATCHDOG_USEC": "500000"}) == 0.5


def test_watchdog_period_is_none_for_another_process_or_when_off():
    assert watchdog_period({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=4242) is None
    assert watchdog_period({}) is None
    assert watchdog_period({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_period({"WATCHDOG_USEC": "soon"}) is None
