"""``bash hw2_1.sh`` / ``hw2_2.sh`` / ``hw2_3.sh`` as the course runs them: from a plain shell (no
environment activated: the checkout's ``.venv`` is used, else one line says what to do), with
folders whose names begin with ``-``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from .conftest import FIXTURES, REPO


def _plain_shell(tmp_path: Path, **env: str) -> dict[str, str]:
    """The environment of a fresh login: no PYTHON, no virtual environment on PATH."""
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV", "PYTHONPATH")}
    return {**base, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1", **env}


def _checkout(tmp_path: Path, script: str, venv: bool) -> Path:
    """A checkout holding ``script`` and the real problem folders; with ``venv``, a ``.venv``
    whose python (this one) leaves a mark when it runs."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / script, root / script)
    shutil.copy(REPO / "scripts" / "hw_python.sh", root / "scripts")
    for folder in ("PB1", "PB2", "PB3"):
        (root / folder).symlink_to(REPO / folder, target_is_directory=True)
    if venv:
        (root / ".venv" / "bin").mkdir(parents=True)
        python = root / ".venv" / "bin" / "python"
        python.write_text(f'#!/bin/sh\ntouch "{tmp_path}/venv_used"\nexec "{sys.executable}" "$@"\n')
        python.chmod(0o755)
    return root


def test_hw2_1_runs_from_a_plain_shell_with_the_checkouts_venv_into_a_folder_named_dash_out(
    tmp_path, tiny_pb1_model
):
    root = _checkout(tmp_path, "hw2_1.sh", venv=True)
    env = _plain_shell(tmp_path, PB1_CKPT=str(tiny_pb1_model))
    result = subprocess.run(
        ["bash", str(root / "hw2_1.sh"), "-out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "venv_used").exists()
    for dataset in ("mnistm", "svhn"):
        assert len(list((tmp_path / "-out" / dataset).glob("*.png"))) == 500


def test_without_a_python_that_has_the_project_one_line_names_make_demo(tmp_path):
    root = _checkout(tmp_path, "hw2_1.sh", venv=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text("#!/bin/sh\nexit 1\n")  # a python3 without dlcv and torch
    (bin_dir / "python3").chmod(0o755)
    env = _plain_shell(tmp_path, PATH=f"{bin_dir}:/usr/bin:/bin")
    result = subprocess.run(
        ["bash", str(root / "hw2_1.sh"), "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: hw2_1.sh: python3 cannot import this project (dlcv, torch)"), lines
    assert "make demo" in lines[0] and str(root) in lines[0]
    assert not (tmp_path / "out").exists()


def test_hw2_2_writes_into_a_folder_named_dash_out(tmp_path):
    from dlcv.faces.unet import FaceUNet

    torch.manual_seed(0)
    torch.save(FaceUNet(8).state_dict(), tmp_path / "UNet.pt")
    (tmp_path / "noise").mkdir()
    torch.save(torch.randn(1, 3, 32, 32), tmp_path / "noise" / "00.pt")
    result = subprocess.run(
        ["bash", str(REPO / "hw2_2.sh"), "noise", "-out", "UNet.pt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "-out").iterdir()) == ["00.png"]


def test_hw2_3_reads_paths_that_begin_with_a_dash_as_paths(tmp_path):
    result = subprocess.run(
        ["bash", str(REPO / "hw2_3.sh"), str(FIXTURES / "textual_inversion_input.json"), "-out", "-sd.ckpt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: Stable Diffusion checkpoint not found: -sd.ckpt"
