import json

import torch

from dlcv.digits.model import load_model
from dlcv.io.checkpoint import load_checkpoint

from ..conftest import run_script


def test_training_writes_a_resumable_checkpoint_and_a_loadable_model(tiny_pb1_model, digits_root):
    out = tiny_pb1_model.parent
    model, cfg = load_model(tiny_pb1_model)
    assert cfg["model"]["base_channels"] == 16 and cfg["sample"]["steps"] == 5
    assert (out / "samples" / "step_0000004.png").is_file()
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 4 and state["config"]["train"]["steps"] == 4

    before = tiny_pb1_model.read_bytes()
    refused = run_script(
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
    assert refused.returncode == 2 and "--resume" in refused.stderr
    assert "Traceback" not in refused.stderr and tiny_pb1_model.read_bytes() == before

    resumed = run_script(
        "PB1/train.py",
        "--data",
        str(digits_root),
        "--out",
        str(out),
        "--config",
        "tiny",
        "--steps",
        "6",
        "--device",
        "cpu",
        "--resume",
    )
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 6
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 6 and steps == sorted(steps)
    resumed_model, _ = load_model(tiny_pb1_model)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), resumed_model.parameters()))


def test_bad_inputs_give_one_line_and_exit_2(tmp_path, digits_root):
    cases = [
        (["--data", str(tmp_path / "nowhere")], "nowhere"),
        (["--data", str(digits_root), "--config", "nonsense"], "--config"),
        (["--data", str(digits_root), "--set", "model.no_such_key=1"], "no_such_key"),
        (["--data", str(digits_root), "--config", "tiny", "--steps", "0"], "train.steps must be >= 1, got 0"),
    ]
    for args, needle in cases:
        result = run_script("PB1/train.py", *args, "--out", str(tmp_path / "o"), "--device", "cpu")
        assert result.returncode == 2, (args, result.stderr)
        assert needle in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_latent_pca_model_trains_generates_and_keeps_its_basis(tmp_path, digits_root):
    """The pca_mlp family end to end through PB1/train.py and PB1/inference.py: the PCA
    basis is fitted on the training images, saved with the weights, and images come out
    as 28x28 PNGs."""
    from PIL import Image

    from ..digits.test_latent_mlp import LATENT_YAML

    config = tmp_path / "latent.yaml"
    config.write_text(LATENT_YAML)
    out = tmp_path / "run"
    mine = tmp_path / "mine.safetensors"  # a link planted where a kept model goes: replaced, not followed
    mine.write_text("mine")
    (out / "models").mkdir(parents=True)
    (out / "models" / "step_0000003.safetensors").symlink_to(mine)
    result = run_script(
        "PB1/train.py",
        "--data",
        str(digits_root),
        "--out",
        str(out),
        "--config",
        str(config),
        "--device",
        "cpu",
        "--keep-models",
    )
    assert result.returncode == 0, result.stderr
    assert mine.read_text() == "mine" and not (out / "models" / "step_0000003.safetensors").is_symlink()
    assert "PCA: 16 components keep" in result.stdout
    assert sorted(p.name for p in (out / "models").iterdir()) == [
        "step_0000003.safetensors",
        "step_0000006.safetensors",
    ]
    model, cfg = load_model(out / "model.safetensors")
    assert cfg["model"]["type"] == "pca_mlp" and model.latent_shape == (16,)
    assert float(model.net.pca_basis.abs().sum()) > 0 and not torch.equal(
        model.net.pca_basis, torch.eye(3 * 28 * 28, 16)
    )
    images = run_script(
        "PB1/inference.py",
        "--out-dir",
        str(tmp_path / "gen"),
        "--ckpt",
        str(out),
        "--n-per-digit",
        "2",
        "--device",
        "cpu",
        "--sampler",
        "dpm++",
    )
    assert images.returncode == 0, images.stderr
    pngs = sorted((tmp_path / "gen" / "svhn").glob("*.png"))
    assert len(pngs) == 20 and Image.open(pngs[0]).size == (28, 28)


def test_the_same_seed_gives_the_same_model(tmp_path, digits_root):
    """A run is a function of its seed: the initial weights, the batches and the noise are
    all drawn from it, so two runs give the same tensors and another seed other ones."""
    from safetensors.torch import load_file

    from ..digits.test_latent_mlp import LATENT_YAML

    config = tmp_path / "latent.yaml"
    config.write_text(LATENT_YAML)
    models = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        result = run_script(
            "PB1/train.py",
            "--data",
            str(digits_root),
            "--out",
            str(tmp_path / name),
            "--config",
            str(config),
            "--device",
            "cpu",
            "--seed",
            str(seed),
        )
        assert result.returncode == 0, result.stderr
        models.append(load_file(tmp_path / name / "model.safetensors"))
    a, b, c = models
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if "pca" not in k)
