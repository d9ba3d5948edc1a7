from PIL import Image

from ..conftest import run_script


def test_report_figures(tmp_path, tiny_pb1_model):
    result = run_script(
        "PB1/report.py",
        "--out-dir",
        str(tmp_path),
        "--ckpt",
        str(tiny_pb1_model),
        "--scale",
        "2",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    for dataset in ("mnistm", "svhn"):
        grid = Image.open(tmp_path / f"{dataset}_grid.png")
        strip = Image.open(tmp_path / f"{dataset}_reverse_process.png")
        assert grid.width >= 10 * 56 and grid.height >= 10 * 56 and grid.width < 11 * 56
        assert strip.width >= 6 * 56 and strip.width < 7 * 56 and strip.height < 2 * 56


def test_the_report_draws_with_the_settings_hw2_1_uses(tmp_path, tiny_pb1_model):
    """A model whose sampler is the stochastic DPM-Solver++ (eta 1): the report's grid is the
    image hw2_1.sh's settings give for those labels and seed, and differs from eta 0's."""
    import numpy as np
    import torch

    from dlcv.digits.figures import _upscale
    from dlcv.digits.model import build_schedule, load_model
    from dlcv.digits.sampling import SampleSettings, sample_labels
    from dlcv.io.checkpoint import load_weights, save_weights
    from dlcv.io.images import save_grid

    tensors, cfg = load_weights(tiny_pb1_model)
    cfg["sample"] = {"sampler": "dpm++", "steps": 4, "guidance": 3.0, "eta": 1.0}
    model_file = save_weights(tensors, tmp_path / "sde.safetensors", cfg)
    for flags, folder in (([], "model"), (["--eta", "0"], "eta0")):
        result = run_script(
            "PB1/report.py",
            "--out-dir",
            str(tmp_path / folder),
            "--ckpt",
            str(model_file),
            "--scale",
            "1",
            "--device",
            "cpu",
            *flags,
        )
        assert result.returncode == 0, result.stderr
    model, cfg = load_model(model_file)
    settings = SampleSettings.resolve(cfg)  # what PB1/inference.py (hw2_1.sh) resolves
    assert settings.eta == 1.0 and settings.sampler == "dpm++"
    labels = torch.arange(10).repeat_interleave(10)  # the MNIST-M grid: rows are digits
    images = sample_labels(
        model,
        build_schedule(cfg),
        labels,
        **settings.as_kwargs(),
        seed=0,
        batch_size=len(labels),
        progress=False,
    )
    expected = np.asarray(Image.open(save_grid(_upscale(images, 1), tmp_path / "expected.png", nrow=10)))
    drawn = np.asarray(Image.open(tmp_path / "model" / "mnistm_grid.png"))
    assert np.array_equal(drawn, expected)
    assert not np.array_equal(drawn, np.asarray(Image.open(tmp_path / "eta0" / "mnistm_grid.png")))
