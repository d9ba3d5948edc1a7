"""Shared fixtures: the repository root, a small synthetic digits tree and a tiny PB1 model."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Copies of ../shared/fixtures (real files from the ecosystem) and of the face UNet's state-dict
# table from ../shared/specs, kept in the repository so a clean clone tests on its own.
FIXTURES = REPO / "tests" / "fixtures"

torch.set_num_threads(1)


def is_local_address(address: object) -> bool:
    """True for a unix socket path and a loopback host (127.0.0.0/8, ::1, localhost)."""
    if isinstance(address, str | bytes):  # AF_UNIX: a path
        return True
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host in ("localhost", "", "0.0.0.0", "::"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost


class NetworkGuard:
    """Replaces ``socket.socket.connect`` / ``connect_ex`` / ``sendto`` and ``socket.getaddrinfo``
    for one test: anything aimed at a non-local address is recorded and refused before it
    reaches the network, and the test fails."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self.original = {
            "connect": socket.socket.connect,
            "connect_ex": socket.socket.connect_ex,
            "sendto": socket.socket.sendto,
            "getaddrinfo": socket.getaddrinfo,
        }

    def _refuse(self, what: str, address: object) -> None:
        self.attempts.append(f"{what} {address!r}")
        raise OSError(f"network access in a test: {what} {address!r} (the project must run offline)")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        guard = self

        def connect(sock, address, *rest):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
                guard._refuse("connect", address)
            return guard.original["connect"](sock, address, *rest)

        def connect_ex(sock, address, *rest):
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
                guard._refuse("connect_ex", address)
            return guard.original["connect_ex"](sock, address, *rest)

        def sendto(sock, data, *rest):
            address = rest[-1] if rest else None
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
                guard._refuse("sendto", address)
            return guard.original["sendto"](sock, data, *rest)

        def getaddrinfo(host, *args, **kwargs):
            if host is not None and not is_local_address((host,)):
                guard._refuse("getaddrinfo", host)  # a DNS lookup already leaves the machine
            return guard.original["getaddrinfo"](host, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket.socket, "sendto", sendto)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(autouse=True)
def offline(monkeypatch) -> NetworkGuard:
    """Every test runs offline: a connection to a non-local address fails the test, even
    when the code under test catches the error. Loopback and unix sockets (pytest-xdist)
    still work. Subprocesses started by a test are not covered."""
    guard = NetworkGuard()
    guard.install(monkeypatch)
    yield guard
    assert not guard.attempts, f"the test tried to reach the network: {guard.attempts}"


def load_script(path: str, name: str | None = None):
    """The module of a script of the checkout (``PB1/inference.py``, ``bench/gpu_check.py``, ...),
    loaded by its path as the tests' importable copy, under ``name`` (default: the file's stem) in
    ``sys.modules``, where a dataclass of the script looks its module up. Scripts import only the
    library (``dlcv``, ``dlcv_bench``), never each other."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name or Path(path).stem, REPO / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_script(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a repository script (``PB1/train.py ...`` or ``hw2_1.sh ...``) as a user would."""
    cmd = ["bash", *args] if args[0].endswith(".sh") else [sys.executable, *args]
    full_env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory) -> Path:
    """A small synthetic digits tree in the course layout (mnistm/, svhn/)."""
    from dlcv.data.synthetic_digits import write_synthetic_digits

    root = tmp_path_factory.mktemp("digits")
    write_synthetic_digits(root, n_train=60, n_test=20, seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_pb1_model(tmp_path_factory, digits_root) -> Path:
    """A PB1 model trained for a few steps with the tiny preset: its model.safetensors."""
    out = tmp_path_factory.mktemp("pb1")
    result = run_script(
        "PB1/train.py",
        "--data",
        str(digits_root),
        "--out",
        str(out),
        "--config",
        "tiny",
        "--steps",
        "4",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    return out / "model.safetensors"
