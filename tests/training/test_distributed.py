"""The data-parallel set-up: a rendezvous that cannot be reached is one line within seconds."""

from __future__ import annotations

import socket

import pytest

from dlcv.cli import UserError
from dlcv.training import distributed


@pytest.fixture
def refusing_port():
    """A port bound but never listened on: a connection is refused, and no other process (a
    gloo listener of a torchrun test running beside this one) can take the port meanwhile and
    receive the probe's connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_a_listening_rendezvous_is_reached():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        distributed.check_rendezvous("127.0.0.1", server.getsockname()[1], within=5)


def test_an_unreachable_rendezvous_is_one_line_naming_it_and_the_single_node_flags(
    monkeypatch, refusing_port
):
    port = refusing_port
    monkeypatch.setattr(distributed, "REACH_SECONDS", 0.5)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    with pytest.raises(UserError) as info:
        distributed.setup("cpu")  # would wait for torch's 30-minute timeout
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot reach the data-parallel rendezvous 127.0.0.1:{port} (")
    flags = "`torchrun --nnodes 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0 --local-addr 127.0.0.1 "
    assert flags in message
    monkeypatch.setenv("MASTER_PORT", "http")
    with pytest.raises(UserError, match=r"^MASTER_PORT must be a port number, got 'http'$"):
        distributed.setup("cpu")
