from PIL import Image

from ..conftest import run_script


def test_report_figures(tmp_path, tiny_pb1_model):
    result = run_script("PB1/report.py", "--out-dir", str(tmp_path), "--ckpt", str(tiny_pb1_model),
                        "--scale", "2", "--device", "cpu")  # fmt: skip
    assert result.returncode == 0, result.stderr
    for dataset in ("mnistm", "svhn"):
        grid = Image.open(tmp_path / f"{dataset}_grid.png")
        strip = Image.open(tmp_path / f"{dataset}_reverse_process.png")
        assert grid.width >= 10 * 56 and grid.height >= 10 * 56 and grid.width < 11 * 56
        assert strip.width >= 6 * 56 and strip.width < 7 * 56 and strip.height < 2 * 56
