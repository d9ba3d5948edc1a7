"""Shared fixtures: the repository root, a small synthetic digits tree and a tiny PB1 model."""

from __future__ import annotations

import os
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
    result = run_script("PB1/train.py", "--data", str(digits_root), "--out", str(out), "--config", "tiny",
                        "--steps", "4", "--device", "cpu")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out / "model.safetensors"
