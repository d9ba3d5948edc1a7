"""What the Problem 1 benchmarks share: the fixed speed reference, graders trained on the
benchmark data, grading a model snapshot, and the accuracy-against-time plot.

Speed on CPUs of the same kind differs about 3x, so every figure is also expressed in the
work it took: a run is measured in steps of the *reference network* (the demo network of
the first recipe: base 32, mults [1, 2], patch 2, batch 32, on 2 threads), which runs at
3.1 steps/s on the slower machines seen. "Minutes on the slow machine" below is that
work divided by 3.1 steps/s, whatever machine measured it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "digits_mini"
SLOW_MACHINE_STEPS_PER_S = 3.1  # the reference network on the slower 2-core machines seen

#: The first demo recipe (a pixel-space UNet, batch 32): the fixed speed reference of every PB1 bench.
REFERENCE_CONFIG = str(Path(__file__).resolve().parent / "configs" / "pb1_unet_cpu.yaml")


def train_steps_per_second(config: str, overrides: list[str], threads: int = 2, steps: int = 30,
                           repeats: int = 3) -> float:
    """Training steps/s of a PB1 config on this CPU: the loss, backward pass and AdamW step of
    PB1/train.py on random digits; the best of ``repeats`` timings of ``steps`` steps after 5
    untimed ones (single timings vary by 10-20% on a shared machine)."""
    from dlcv.diffusion import diffusion_loss
    from dlcv.digits.model import build_model, build_objective, build_schedule, load_config

    torch.set_num_threads(threads)
    cfg = load_config(config, overrides)
    model = build_model(cfg).to(memory_format=torch.channels_last)  # as PB1/train.py does
    schedule, objective = build_schedule(cfg), build_objective(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    batch = int(cfg.train.batch_size)
    x0 = (torch.rand(batch, 3, 28, 28, generator=g) * 2 - 1).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 20, (batch,), generator=g)

    def step() -> None:
        loss = diffusion_loss(lambda x, t: model(x, t, y), model.encode(x0), schedule, g, objective)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    best = 0.0
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(steps):
            step()
        best = max(best, steps / (time.perf_counter() - began))
    return best


def reference_speed(threads: int = 2) -> float:
    """Steps/s of the fixed reference network here (see the module docstring)."""
    return train_steps_per_second(REFERENCE_CONFIG, [], threads)


def ensure_graders(data: Path, out: Path, epochs: int = 30) -> Path:
    """Digit graders trained on ``data``'s train split (a small CNN per dataset, checked on
    its test split by the trainer), reused when ``out`` already holds them."""
    files = [out / "mnistm_classifier.safetensors", out / "svhn_classifier.safetensors"]
    if all(f.is_file() for f in files):
        return out
    for dataset in ("mnistm", "svhn"):
        if (out / f"{dataset}_classifier.safetensors").is_file():
            continue
        cmd = [sys.executable, str(REPO / "evaluation" / "train_classifier.py"), "--data", str(data),
               "--dataset", dataset, "--arch", "smallcnn", "--epochs", str(epochs),
               "--out", str(out / f"run_{dataset}")]  # fmt: skip
        subprocess.run(cmd, check=True)
        (out / f"run_{dataset}" / f"{dataset}_classifier.safetensors").replace(
            out / f"{dataset}_classifier.safetensors"
        )
    return out


def load_graders(graders: Path) -> dict:
    """``{"mnistm": classifier, "svhn": classifier}`` from a folder of ``{name}_classifier.safetensors``."""
    from dlcv.digits.classifiers import load_digit_classifier

    names = ("mnistm", "svhn")
    return {name: load_digit_classifier(graders / f"{name}_classifier.safetensors") for name in names}


def grade_model(model_path: Path, graders: Path, per_class: int, *, guidance: float | None = None,
                sampler: str | None = None, steps: int | None = None, eta: float | None = None,
                seed: int = 0) -> dict:
    """Generate ``per_class`` images of each of the 20 classes with the model's own sampler
    settings (or the ones given) and classify them: ``{"mnistm": acc, "svhn": acc, ...}``."""
    from dlcv.digits.grading import accuracy_stats, predict
    from dlcv.digits.model import build_schedule, load_model
    from dlcv.digits.sampling import sample_course_set

    model, cfg = load_model(model_path)
    s = cfg.get("sample", {})
    settings = {
        "sampler": sampler or s.get("sampler", "ddim"),
        "steps": int(steps or s.get("steps", 25)),
        "guidance": float(guidance if guidance is not None else s.get("guidance", 3.0)),
        "eta": float(eta if eta is not None else s.get("eta", 0.0)),
    }
    began = time.perf_counter()
    images = sample_course_set(model, build_schedule(cfg), per_class, seed=seed, batch_size=200,
                               progress=False, **settings)  # fmt: skip
    seconds = time.perf_counter() - began
    digits = torch.arange(10).repeat_interleave(per_class)
    result: dict = {**settings, "per_class": per_class, "sampling_s": round(seconds, 1)}
    for i, (name, clf) in enumerate(load_graders(graders).items()):
        part = images[i * 10 * per_class : (i + 1) * 10 * per_class]
        result[name] = accuracy_stats(predict(clf, part), digits)["acc"]
    return result


def plot_curves(curves: dict[str, list[tuple[float, float, float]]], path: Path, title: str,
                targets: tuple[float, ...] = (0.90, 0.95)) -> Path:
    """Accuracy against training time: one colour per run, MNIST-M solid and SVHN dashed;
    ``curves[name] = [(minutes, mnistm, svhn), ...]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, (name, points) in enumerate(curves.items()):
        colour = f"C{i}"
        minutes = [p[0] for p in points]
        ax.plot(minutes, [p[1] for p in points], "-o", color=colour, label=f"{name}: MNIST-M")
        ax.plot(minutes, [p[2] for p in points], "--s", color=colour, label=f"{name}: SVHN")
    for target in targets:
        ax.axhline(target, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("training time on the slow 2-core machine (min; reference-network work / 3.1 steps/s)")
    ax.set_ylabel("accuracy of generated digits")
    ax.set_ylim(0, 1.0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
