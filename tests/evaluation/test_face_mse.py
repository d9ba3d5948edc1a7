"""``evaluation/face_mse.py OUT GT`` as a user runs it: the printed report and the exit codes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dlcv.cli import UserError

from ..conftest import load_script, run_script


def save(folder, name, value: int, size: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(folder / name)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mse")
    gt, out = root / "GT", root / "out"
    for name, value in (("00.png", 0), ("01.png", 2)):
        save(gt, name, 100)
        save(out, name, 100 + value)
    return root, out, gt


def entry_point():
    return load_script("evaluation/face_mse.py", "face_mse_entry")


def test_report_as_a_user_sees_it(folders, capsys):
    _, out, gt = folders
    entry_point().main([str(out), str(gt)])  # returns: exit status 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = [["00.png", "0.0000"], ["01.png", "4.0000"], ["mean", "2.0000"]]
    assert [line.split()[:2] for line in lines] == expected
    assert "PASS" in lines[-1]


def test_mismatched_names_give_one_line_and_exit_2(folders):
    root, _, gt = folders
    bad = root / "bad"
    save(bad, "00.png", 100, size=8)
    result = run_script("evaluation/face_mse.py", str(bad), str(gt))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: 1 of the 2 ground-truth images have no output of the same name in {bad}: 01.png"
    ]


def test_fail_exits_1_and_bad_folders_raise_user_errors(folders, capsys):
    root, out, gt = folders
    main = entry_point().main
    with pytest.raises(SystemExit) as exit_info:
        main([str(out), str(gt), "--pass-line", "1"])
    assert exit_info.value.code == 1 and "FAIL" in capsys.readouterr().out
    with pytest.raises(UserError, match="output folder not found"):
        main([str(root / "nowhere"), str(gt)])
    with pytest.raises(UserError, match="ground-truth folder not found"):
        main([str(out), str(root / "nowhere")])
