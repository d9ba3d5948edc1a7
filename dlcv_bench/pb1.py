"""What the Problem 1 benchmarks share: the fixed speed reference, graders trained on the
benchmark data, grading a model snapshot, and the accuracy-against-time plot.

Speed on CPUs of the same kind differs about 3x, so every figure is also expressed in the
work it took: a run is measured in steps of the *reference network* (the demo network of
the first recipe: base 32, mults [1, 2], patch 2, batch 32, on 2 threads), which runs at
3.1 steps/s on the slower machines seen. "Minutes on the slow machine" below is that
work divided by 3.1 steps/s, whatever machine measured it.

The 3.1 is a measurement, not a definition, but its record is lost: when the benches were
written (commit 7a5529c, 2026-11-30) it was given as the slowest 2-core build machine of this
project seen so far (the reference network on 2 threads, idle; the fastest about 9), and nothing
of that run was kept. The measurements kept since are in ``docs/results/reference_speeds.json``:
``python bench/reference_speed.py --record`` measures the machine it runs on (2 threads, the best
of two timings of :func:`reference_speed` after a warm-up) and appends the speed with the machine,
commit, date and load average; the speeds that other results files recorded (their
``reference_steps_per_s``) were copied in with the file they came from. A test keeps
:data:`SLOW_MACHINE_STEPS_PER_S` at most every 2-thread speed recorded there on an idle machine
(:func:`measured_idle`: a shared machine busy with other work measures slower, and such runs are
recorded and shown but do not count), so a slower machine, once recorded, forces the constant down
(and the "slow-machine minutes" figures with it). Only
the machine a command runs on can be measured: the constant bounds the machines recorded, not
every machine; a slower one than 3.1 would make every "slow-machine minutes" figure an
underestimate there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "digits_mini"
SLOW_MACHINE_STEPS_PER_S = 3.1  # the reference network on the slowest 2-core machine seen (see above)
#: The recorded speeds of the reference network (``bench/reference_speed.py --record`` appends).
REFERENCE_SPEEDS = REPO / "docs" / "results" / "reference_speeds.json"

#: The first demo recipe (a pixel-space UNet, batch 32): the fixed speed reference of every PB1 bench.
REFERENCE_CONFIG = str(REPO / "bench" / "configs" / "pb1_unet_cpu.yaml")


def train_steps_per_second(
    config: str, overrides: list[str], threads: int = 2, steps: int = 30, repeats: int = 3
) -> float:
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


def recorded_reference_speeds(path: Path = REFERENCE_SPEEDS) -> list[dict]:
    """The measurements of the reference network in ``path`` (``[]`` when it does not exist yet)."""
    return json.loads(path.read_text())["measurements"] if path.is_file() else []


def measured_idle(measurement: dict) -> bool:
    """Whether a recorded measurement counts for the slow-machine constant: made on a machine that was
    idle (1-minute load average below half its CPUs before it; a busy machine measures its neighbours
    too) or whose load was not recorded (the speeds copied from other results files)."""
    load = measurement.get("load_average_1min")
    return load is None or load < measurement["cpus"] / 2


def record_reference_speed(entry: dict, path: Path = REFERENCE_SPEEDS) -> list[dict]:
    """Append one measurement (``steps_per_s``, ``threads``, the provenance) to ``path``; return them all."""
    measurements = [*recorded_reference_speeds(path), entry]
    note = (
        "Speeds of the fixed reference network of the Problem 1 benches (dlcv_bench.pb1.REFERENCE_CONFIG), "
        "training steps/s. SLOW_MACHINE_STEPS_PER_S must be at most every 2-thread speed here measured on "
        "an idle machine (dlcv_bench.pb1.measured_idle)."
    )
    write_json(path, {"note": note, "measurements": measurements})
    return measurements


def split_for_graders(data: Path, out: Path, seed: int = 0, grader_share: float = 0.5) -> dict[str, Path]:
    """Split ``data``'s train split into two disjoint parts in the course layout: ``out/generator``
    (what a generator may train on) and ``out/graders`` (what the digit graders train on), so that
    no grader has seen an image the generator learnt from. Each digit of each dataset is split
    on its own (a seeded permutation, ``grader_share`` of it to the graders), so both parts keep
    the data's class balance; both parts keep the full test split, where the graders are checked.
    The image folders are symlinks to ``data``'s; ``out/split.json`` lists the counts and the
    CSVs' SHA-256. Returns ``{"generator": ..., "graders": ...}`` (reused when ``out`` holds them)."""
    import csv
    import hashlib

    out = Path(out)
    parts = {"generator": out / "generator", "graders": out / "graders"}
    if (out / "split.json").is_file():
        return parts
    summary: dict = {"data": str(Path(data).resolve()), "seed": seed, "grader_share": grader_share}
    for dataset in ("mnistm", "svhn"):
        source = Path(data) / dataset
        with open(source / "train.csv", newline="") as f:
            rows = [(r["image_name"], r["label"]) for r in csv.DictReader(f)]
        g = torch.Generator().manual_seed(seed)
        chosen: dict[str, list[tuple[str, str]]] = {"generator": [], "graders": []}
        for digit in sorted({label for _, label in rows}):
            mine = [r for r in rows if r[1] == digit]
            order = torch.randperm(len(mine), generator=g).tolist()
            cut = round(len(mine) * grader_share)
            chosen["graders"] += [mine[i] for i in order[:cut]]
            chosen["generator"] += [mine[i] for i in order[cut:]]
        for part, folder in parts.items():
            target = folder / dataset
            target.mkdir(parents=True, exist_ok=True)
            if not (target / "data").exists():
                (target / "data").symlink_to((source / "data").resolve(), target_is_directory=True)
            lines = ["image_name,label", *(f"{n},{y}" for n, y in sorted(chosen[part]))]
            (target / "train.csv").write_text("\n".join(lines) + "\n")
            (target / "test.csv").write_bytes((source / "test.csv").read_bytes())
            digest = hashlib.sha256((target / "train.csv").read_bytes()).hexdigest()
            summary[f"{part}/{dataset}"] = {"train_images": len(chosen[part]), "train_csv_sha256": digest}
    write_json(out / "split.json", summary)
    return parts


def ensure_graders(data: Path, out: Path, epochs: int = 30) -> Path:
    """Digit graders trained on ``data``'s train split (a small CNN per dataset, checked on
    its test split by the trainer), reused when ``out`` already holds them."""
    files = [out / "mnistm_classifier.safetensors", out / "svhn_classifier.safetensors"]
    if all(f.is_file() for f in files):
        return out
    for dataset in ("mnistm", "svhn"):
        if (out / f"{dataset}_classifier.safetensors").is_file():
            continue
        cmd = [
            sys.executable,
            str(REPO / "evaluation" / "train_classifier.py"),
            "--data",
            str(data),
            "--dataset",
            dataset,
            "--arch",
            "smallcnn",
            "--epochs",
            str(epochs),
            "--out",
            str(out / f"run_{dataset}"),
        ]
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


def grade_model(
    model_path: Path,
    graders: Path,
    per_class: int,
    *,
    guidance: float | list | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    guidance_interval: list | None = None,
    seed: int = 0,
) -> dict:
    """Generate ``per_class`` images of each of the 20 classes with the model's own sampler
    settings (or the ones given) and classify them: ``{"mnistm": acc, "svhn": acc, ...}`` with,
    per dataset, the counts, the 95% Wilson interval (``{name}_ci``) and the per-digit counts."""
    from dlcv.digits.grading import accuracy_stats, predict, wilson_interval
    from dlcv.digits.model import load_for_sampling
    from dlcv.digits.sampling import SampleRequest, sample_course_set

    request = SampleRequest(
        sampler=sampler, steps=steps, guidance=guidance, eta=eta, guidance_interval=guidance_interval
    )
    job = load_for_sampling(model_path, "cpu", request)  # the settings hw2_1.sh resolves for the model
    settings = job.settings
    began = time.perf_counter()
    images = sample_course_set(
        job.model, job.schedule, per_class, seed=seed, batch_size=200, progress=False, **settings.as_kwargs()
    )
    seconds = time.perf_counter() - began
    digits = torch.arange(10).repeat_interleave(per_class)
    result: dict = {
        **settings.as_kwargs(),
        "per_class": per_class,
        "seed": seed,
        "sampling_s": round(seconds, 1),
    }
    for i, (name, clf) in enumerate(load_graders(graders).items()):
        part = images[i * 10 * per_class : (i + 1) * 10 * per_class]
        stats = accuracy_stats(predict(clf, part), digits)
        result[name] = stats["acc"]
        result[f"{name}_correct"], result[f"{name}_total"] = stats["correct"], stats["total"]
        result[f"{name}_ci"] = [round(v, 4) for v in wilson_interval(stats["correct"], stats["total"])]
        result[f"{name}_per_digit"] = [stats["per_digit"][d][0] for d in range(10)]
    return result


def grader_report(graders: Path, data: Path) -> dict:
    """The graders' held-out accuracy on ``data``'s test split (never trained on): per dataset
    the accuracy, its 95% Wilson interval and the accuracy of each digit; written next to the
    graders as ``held_out.json`` and reused."""
    from dlcv.data.digits import load_digit_split
    from dlcv.digits.grading import accuracy_stats, predict, wilson_interval

    path = Path(graders) / "held_out.json"
    if path.is_file():
        return json.loads(path.read_text())
    report: dict = {"data": str(Path(data).resolve()), "split": "test"}
    for name, clf in load_graders(graders).items():
        test = load_digit_split(data, name, "test", progress=False)
        stats = accuracy_stats(predict(clf, test.images), test.digits)
        report[name] = {
            "acc": stats["acc"],
            "correct": stats["correct"],
            "total": stats["total"],
            "ci": [round(v, 4) for v in wilson_interval(stats["correct"], stats["total"])],
            "per_digit": [round(c / t, 4) for c, t in (stats["per_digit"][d] for d in range(10))],
        }
    write_json(path, report)
    return report


def plot_curves(
    curves: dict[str, list[tuple[float, float, float]]],
    path: Path,
    title: str,
    targets: tuple[float, ...] = (0.90, 0.95),
) -> Path:
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


def provenance() -> dict:
    """Where a result came from: the command, the commit (and whether the tree had changes),
    the date, the CPU and its thread count."""
    import datetime
    import platform

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip()

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line)
    except (OSError, StopIteration):
        pass
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO).as_posix() if script.is_relative_to(REPO) else sys.argv[0]
    return {
        "command": " ".join(["python", shown, *sys.argv[1:]]),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
    }


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
