import numpy as np
from PIL import Image

from ..conftest import run_script


def test_hw2_1_writes_the_course_files(tmp_path, tiny_pb1_model):
    out = tmp_path / "out"
    (out).mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_script("hw2_1.sh", str(out), env={"PB1_CKPT": str(tiny_pb1_model)})
    assert result.returncode == 0, result.stderr
    for dataset in ("mnistm", "svhn"):
        names = sorted(p.name for p in (out / dataset).iterdir())
        assert names == sorted(f"{d}_{i:03d}.png" for d in range(10) for i in range(1, 51))
        image = Image.open(out / dataset / "7_050.png")
        assert image.size == (28, 28) and image.mode == "RGB"
    assert (out / "keep.txt").read_text() == "mine"


def test_seed_sampler_and_flags(tmp_path, tiny_pb1_model):
    def generate(name, *extra):
        result = run_script(
            "PB1/inference.py",
            "--out-dir",
            str(tmp_path / name),
            "--ckpt",
            str(tiny_pb1_model),
            "--n-per-digit",
            "2",
            "--device",
            "cpu",
            *extra,
        )
        assert result.returncode == 0, result.stderr
        return np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / name).rglob("*.png"))])

    a = generate("a", "--seed", "1", "--batch-size", "7")
    b = generate("b", "--seed", "1", "--batch-size", "40")
    c = generate("c", "--seed", "2")
    assert a.shape == (40, 28, 28, 3)
    assert np.array_equal(a, b)  # a seed and an image index give the same image in any batch
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 10
    d = generate("d", "--sampler", "ddpm", "--n-per-digit", "1", "--guidance", "1")
    assert d.shape == (20, 28, 28, 3)
    # the stochastic DPM-Solver++: per-image fresh noise, so batches still do not matter
    sde = [
        generate(f"sde{bs}", "--seed", "1", "--batch-size", bs, "--sampler", "dpm++", "--eta", "1")
        for bs in ("7", "40")
    ]
    ode = generate("ode", "--seed", "1", "--sampler", "dpm++", "--eta", "0")
    assert np.array_equal(sde[0], sde[1])
    assert np.abs(sde[0].astype(int) - ode.astype(int)).mean() > 1


def test_missing_checkpoint_says_how_to_train_one(tmp_path):
    result = run_script(
        "hw2_1.sh", str(tmp_path / "out"), env={"PB1_CKPT": str(tmp_path / "none.safetensors")}
    )
    assert result.returncode == 2
    assert "PB1/train.py" in result.stderr and "none.safetensors" in result.stderr
    assert "Traceback" not in result.stderr
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    result = run_script("PB1/inference.py", "--out-dir", str(tmp_path / "o"), "--ckpt", str(junk))
    assert result.returncode == 2 and "junk.safetensors" in result.stderr
    assert not (tmp_path / "o").exists()
