"""``PB2/experiments.py``: the report figures from a face UNet or from a PB1 digit model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import run
from dlcv.faces.figures import face_experiments

from ..conftest import load_script, run_script

FIGURES = ["eta_grid.png", "interpolation_lerp.png", "interpolation_slerp.png"]


def entry_main():
    """The command line's ``main`` as ``dlcv.cli.run`` runs it: a user error raises SystemExit(2)
    after one ``error:`` line, flags named as the command line names them."""
    module = load_script("PB2/experiments.py", "pb2_experiments")
    return lambda argv: run(lambda: module.main(argv))


def test_digit_model_figures_as_make_demo_runs_them(digit_model_file, tmp_path):
    out = tmp_path / "figs"
    result = run_script(
        "PB2/experiments.py",
        "--digit-ckpt",
        str(digit_model_file),
        "--out",
        str(out),
        "--steps",
        "2",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == FIGURES
    grid = Image.open(out / "eta_grid.png")
    assert grid.width > 4 * 56 and grid.height > 5 * 56  # 28x28 digits enlarged, 4 x 5 cells
    assert Image.open(out / "interpolation_slerp.png").height < 2 * 56 + 30  # one row


def test_face_unet_figures_and_seeded_repeatability(face_files, tmp_path):
    def figures(folder, **kwargs):
        face_experiments(
            tmp_path / folder,
            face_files["unet"],
            face_files["noise_dir"],
            steps=3,
            device="cpu",
            progress=False,
            **kwargs,
        )

    figures("a")
    figures("b", batch_size=1)
    figures("c", seed=5)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == FIGURES

    def pixels(folder, name):
        return torch.from_numpy(np.asarray(Image.open(tmp_path / folder / name)).astype(np.int16))

    slerp = pixels("a", "interpolation_slerp.png")
    assert (slerp - pixels("b", "interpolation_slerp.png")).abs().max() <= 1  # batching: rounding only
    assert torch.equal(slerp, pixels("c", "interpolation_slerp.png"))  # eta 0: the seed does not matter
    assert not torch.equal(slerp, pixels("a", "interpolation_lerp.png"))
    grid_a, grid_c = pixels("a", "eta_grid.png"), pixels("c", "eta_grid.png")
    assert torch.equal(grid_a, pixels("a", "eta_grid.png"))
    assert not torch.equal(grid_a, grid_c)  # eta > 0 rows follow the seed
    assert grid_a.shape[0] > 5 * 64 and grid_a.shape[1] > 4 * 64


def test_unet_without_noise_dir_is_one_line_exit_2(face_files, tmp_path):
    result = run_script("PB2/experiments.py", "--unet", str(face_files["unet"]), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = "error: --unet needs --noise-dir (the folder of face noises)"
    assert result.stderr.strip().splitlines() == [expected]


def test_bad_inputs_are_one_line_naming_the_flag(face_files, digit_model_file, tmp_path, capsys):
    main = entry_main()
    few = tmp_path / "few"
    few.mkdir()
    torch.save(torch.zeros(1, 3, 32, 32), few / "00.pt")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    digit = ["--digit-ckpt", str(digit_model_file), "--out", str(tmp_path / "o"), "--device", "cpu"]
    cases = [
        (
            ["--unet", str(face_files["unet"]), "--noise-dir", str(few), "--out", str(tmp_path / "o")],
            "the eta grid needs 4 noises, found 1",
        ),
        (
            [
                "--unet",
                str(face_files["unet"]),
                "--noise-dir",
                str(few),
                "--out",
                str(tmp_path / "o"),
                "--steps",
                "0",
            ],
            "--steps must be 1-999, got 0",
        ),
        ([*digit, "--labels", "0,1,x,3"], "--labels: expected comma-separated integers"),
        ([*digit, "--labels", "0,1,2"], "--labels: expected 4 class labels in 0..19"),
        ([*digit, "--labels", "0,1,2,20"], "--labels: expected 4 class labels in 0..19"),
        ([*digit, "--interp-label", "-1"], "--interp-label: expected a class label"),
        ([*digit, "--steps", "0"], "--steps must be 1-1000, got 0"),
        ([*digit, "--noise-dir", str(few)], "--noise-dir is for --unet"),
        (["--digit-ckpt", str(junk), "--out", str(tmp_path / "o")], "cannot read weights"),
        (["--digit-ckpt", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "o")], "no PB1 model"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        lines = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(lines) == 1 and message in lines[0], (argv, lines)
    assert not (tmp_path / "o").exists()
