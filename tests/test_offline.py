"""The suite-wide offline guard of tests/conftest.py refuses non-local connections."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from .conftest import is_local_address


def test_local_addresses():
    assert is_local_address(("127.0.0.1", 80)) and is_local_address(("127.8.0.1", 1))
    assert is_local_address(("::1", 80, 0, 0)) and is_local_address(("localhost", 1))
    assert is_local_address("/tmp/xdist.sock") and is_local_address(b"\0abstract")
    assert not is_local_address(("192.0.2.1", 80)) and not is_local_address(("10.0.0.1", 80))
    assert not is_local_address(("huggingface.co", 443)) and not is_local_address(None)


def test_non_local_connections_are_refused_before_anything_is_sent(offline):
    # The guard is in place, and what it would call is replaced by recorders: even a broken
    # guard could not reach the network from this test.
    assert socket.socket.connect is not offline.original["connect"]
    assert socket.getaddrinfo is not offline.original["getaddrinfo"]
    reached = []
    offline.original.update(
        connect=lambda sock, address, *rest: reached.append(address),
        getaddrinfo=lambda host, *args, **kwargs: reached.append(host) or [],
    )
    with socket.socket() as sock, pytest.raises(OSError, match="network access in a test"):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1, a documentation address
    with pytest.raises(OSError, match="network access in a test"):
        urllib.request.urlopen("https://huggingface.co/openai/clip-vit-base-patch32", timeout=1)
    assert reached == []
    assert offline.attempts == ["connect ('192.0.2.1', 80)", "getaddrinfo 'huggingface.co'"]
    offline.attempts.clear()  # made on purpose: the fixture's teardown would fail the test


def test_loopback_still_works():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"ok")
                assert peer.recv(2) == b"ok"
