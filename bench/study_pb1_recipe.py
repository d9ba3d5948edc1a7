"""The Problem 1 recipe study: each option against the current recipe, at equal CPU work.

    python bench/study_pb1_recipe.py --options base v edm adagn --budget-minutes 15
    python bench/study_pb1_recipe.py --table-only          # rebuild the table and plot
    python bench/study_pb1_recipe.py --sweep OUT/runs/pca/model.safetensors [MODEL ...] \
        --settings ddim:25:3 dpm++:25:4 ddpm:1000:4 [--sampling-seeds 3 4]  # sampler, steps, guidance
    python bench/study_pb1_recipe.py --pca-bound 64 128 256  # what k components can hold

Every option is a set of ``--set`` overrides of a base config (``--base``, the demo preset)
and is trained by the real ``PB1/train.py`` on ``--data`` (real MNIST-M and SVHN in the
course layout, ../shared/data/digits_mini by default), keeping a model at ``--evals``
points of the run; each model generates ``--per-class`` images of each of the 20 classes,
graded by small CNNs that never saw the generator's images: ``--graders`` (trained on
``--grader-data``, whose test split checks them), else the train split of ``--data`` is cut in
two (``dlcv_bench.pb1.split_for_graders``) and the generator learns from one half, the graders
from the other.

Equal work, whatever this machine's speed: first every option's training speed (--speed-threads, 2,
nothing else running) is measured against the fixed reference network (dlcv_bench/pb1.py);
an option runs ``budget x 3.1 steps/s x its speed / the reference's speed`` steps, i.e. as
many as it would fit in ``--budget-minutes`` on the slow machine. The runs themselves may go
side by side (``--parallel``, one thread each): their length is counted in steps, so the
result does not depend on how fast they went. Results go to ``--out`` (one JSON per option,
``study.md``, ``study.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dlcv_bench.pb1 import (
    DEFAULT_DATA,
    REFERENCE_CONFIG,
    REPO,
    SLOW_MACHINE_STEPS_PER_S,
    ensure_graders,
    grade_model,
    grader_report,
    load_graders,
    plot_curves,
    provenance,
    reference_speed,
    split_for_graders,
    train_steps_per_second,
    write_json,
)

UNET = "config=" + REFERENCE_CONFIG  # the first CPU recipe: a pixel-space UNet

#: The options studied: a base config ("config=..." first, else --base) and overrides of it.
OPTIONS: dict[str, list[str]] = {
    # ---- the first recipe, a pixel-space UNet, and its variations
    "unet": [UNET],
    "unet-v": [UNET, "diffusion.prediction=v"],
    "unet-edm": [
        UNET,
        "diffusion.prediction=edm",
        "train.min_snr_gamma=null",
        "train.timestep_sampling=lognormal",
    ],
    "unet-eps-lognormal": [UNET, "train.timestep_sampling=lognormal"],
    "unet-adagn": [UNET, "model.scale_shift_norm=true"],
    "unet-wide48": [UNET, "model.base_channels=48"],
    "unet-noattn": [UNET, "model.attention_levels=[]"],
    "unet-nrb1": [UNET, "model.num_res_blocks=1"],
    "unet-patch4": [
        UNET,
        "model.patch_size=4",
        "model.channel_mults=[1]",
        "model.attention_levels=[0]",
        "model.base_channels=96",
    ],
    "unet-fullres": [UNET, "model.patch_size=1", "model.channel_mults=[1,2,2]"],
    "unet-lr4e-3": [UNET, "train.lr=4e-3"],
    "unet-batch16": [UNET, "train.batch_size=16"],
    "unet-batch64": [UNET, "train.batch_size=64"],
    # ---- the latent model on principal components (the demo preset) and its variations
    "pca": [],
    "pca-v": ["diffusion.prediction=v"],
    "pca-edm": ["diffusion.prediction=edm", "train.min_snr_gamma=null", "train.timestep_sampling=lognormal"],
    "pca-plain": ["train.min_snr_gamma=null"],
    "pca-k128": ["model.components=128"],
    "pca-k512": ["model.components=512"],
    "pca-w1024": ["model.width=1024"],
    "pca-w256": ["model.width=256"],
    "pca-d8": ["model.depth=8"],
    "pca-lr1e-3": ["train.lr=1e-3"],
    "pca-lr4e-3": ["train.lr=4e-3"],
    "pca-batch128": ["train.batch_size=128"],
    "pca-batch512": ["train.batch_size=512"],
    "pca-ema9995": ["train.ema_decay=0.9995"],
    "pca-ema995": ["train.ema_decay=0.995"],
    "pca-puncond02": ["train.p_uncond=0.2"],
    # ---- round 4: the strong line in 10 slow-machine minutes (the preset: balanced classes; its
    # sampler, dpm++ 100 steps at guidance 12, was chosen by the --sweep on the preset's models)
    "preset": [],  # the demo preset as shipped, at the study's budget
    "preset-35c2ad4": ["train.balanced=false", "sample.steps=50", "sample.guidance=5.0"],  # before round 4
    "pca-unbalanced": ["train.balanced=false"],  # round 4's training change alone
    "pca-d3": ["model.depth=3"],
}


def split_base(overrides: list[str], default: str) -> tuple[str, list[str]]:
    """``(config, overrides)`` of an option: its ``config=...`` entry, else ``default``."""
    if overrides and overrides[0].startswith("config="):
        return overrides[0].split("=", 1)[1], overrides[1:]
    return default, overrides


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--options",
        nargs="*",
        default=["unet", "pca"],
        help=f"names (of: {', '.join(OPTIONS)}) or NAME=key=value,key=value",
    )
    p.add_argument("--base", default="demo", help="the config every option modifies (%(default)s)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default="bench_out/pb1_study")
    p.add_argument(
        "--graders",
        help="folder with {mnistm,svhn}_classifier.safetensors (default: trained into OUT/graders)",
    )
    p.add_argument("--budget-minutes", type=float, default=15.0, help="slow-machine minutes per option")
    p.add_argument("--evals", type=int, default=3, help="graded points per run (%(default)s)")
    p.add_argument("--per-class", type=int, default=20, help="images per class per grading (%(default)s)")
    p.add_argument("--parallel", type=int, default=2, help="runs side by side, one thread each")
    p.add_argument(
        "--speed-threads",
        type=int,
        default=2,
        help="threads of the speed measurement "
        "(%(default)s, as the slow machine's figure; 1 is steadier when busy)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table-only", action="store_true", help="only rebuild study.md and study.png")
    p.add_argument(
        "--sweep",
        nargs="+",
        metavar="MODEL",
        help="grade trained models under each of "
        "--settings (several: e.g. the preset's seeds, for a mean and range)",
    )
    p.add_argument(
        "--sampling-seeds",
        nargs="+",
        type=int,
        metavar="SEED",
        help="for --sweep: sampling seeds per model (default: --seed)",
    )
    p.add_argument(
        "--settings",
        nargs="*",
        default=["ddim:25:3", "ddim:25:4", "dpm++:25:4"],
        metavar="SAMPLER:STEPS:GUIDANCE[:ETA[:LOW-HIGH]]",
        help="for --sweep (%(default)s); GUIDANCE may be MNISTM/SVHN, LOW-HIGH the "
        "timesteps where guidance applies",
    )
    p.add_argument(
        "--pca-bound",
        nargs="*",
        type=int,
        metavar="K",
        help="grade the test images reconstructed from K principal components",
    )
    p.add_argument(
        "--record",
        metavar="JSON",
        help="--sweep: write its results there too; else merge this "
        "run's results (per option and seed, with "
        "the command, commit and speeds) into JSON, e.g. docs/results/pb1_round4.json; an "
        "option already there runs the same steps again (equal work across seeds)",
    )
    p.add_argument(
        "--record-only",
        action="store_true",
        help="only merge --out's graded results of "
        "--options for --seed into --record (e.g. after a failed recording)",
    )
    p.add_argument(
        "--grader-data", help="the graders' own data (its test split checks them), recorded with --record"
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def option_overrides(spec: str) -> tuple[str, list[str]]:
    if "=" in spec.split(",")[0] and spec.count("=") >= 2:
        name, rest = spec.split("=", 1)
        return name, rest.split(",")
    if spec not in OPTIONS:
        sys.exit(f"error: unknown option {spec!r}; known: {', '.join(OPTIONS)}")
    return spec, OPTIONS[spec]


def run_option(args: argparse.Namespace, name: str, overrides: list[str], steps: int, graders: Path) -> None:
    """Train one option for ``steps`` steps (one thread) and grade its kept models."""
    out = Path(args.out) / "runs" / name
    every = max(1, steps // args.evals)
    config, overrides = split_base(overrides, args.base)
    sets = [*overrides, f"train.ckpt_every={every}", "train.sample_every=0", "train.log_every=50"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = Path(args.out) / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    if not (out / "model.safetensors").is_file() or not (out / "models").is_dir():
        cmd = [
            sys.executable,
            str(REPO / "PB1" / "train.py"),
            "--data",
            args.data,
            "--out",
            str(out),
            "--config",
            config,
            "--steps",
            str(steps),
            "--keep-models",
            "--device",
            "cpu",
            "--seed",
            str(args.seed),
            "--set",
            *sets,
        ]
        with open(log, "w") as fh:
            subprocess.run(cmd, check=True, env=env, stdout=fh, stderr=subprocess.STDOUT)
    train_s = time.perf_counter() - began
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--out",
        args.out,
        "--graders",
        str(graders),
        "--per-class",
        str(args.per_class),
        "--seed",
        str(args.seed),
    ]
    with open(log, "a") as fh:
        subprocess.run(cmd, check=True, env=env, stdout=fh, stderr=subprocess.STDOUT)
    result = json.loads((Path(args.out) / "results" / f"{name}.json").read_text())
    result["train_wall_s_1thread"] = round(train_s, 1)
    write_json(Path(args.out) / "results" / f"{name}.json", result)
    last = result["points"][-1]
    print(
        f"{name}: MNIST-M {last['mnistm']:.3f}, SVHN {last['svhn']:.3f} after {last['step']} steps",
        flush=True,
    )


def grade_worker(args: argparse.Namespace) -> None:
    """(in a subprocess, one thread) Grade every kept model of one run."""
    import torch

    torch.set_num_threads(1)
    run = Path(args.out) / "runs" / args.worker
    path = Path(args.out) / "results" / f"{args.worker}.json"
    result = json.loads(path.read_text())
    # the option's sampling settings as defined now (a model file keeps the ones it was trained
    # with; an option that changes only the sampler may reuse another's training)
    from omegaconf import OmegaConf

    from dlcv.digits.model import load_config
    from dlcv.digits.sampling import SampleSettings

    cfg = load_config(*split_base(result["overrides"], result["base"]))
    settings = SampleSettings.resolve(OmegaConf.to_container(cfg.sample)).as_kwargs()
    points = []
    for model in sorted((run / "models").glob("step_*.safetensors")):
        step = int(model.stem.split("_")[1])
        graded = grade_model(model, Path(args.graders), args.per_class, seed=args.seed, **settings)
        points.append({"step": step, **graded})
        print(json.dumps(points[-1]), flush=True)
    result["points"] = points
    write_json(path, result)


def describe(overrides: list[str]) -> str:
    config, rest = split_base(overrides, "demo")
    base = "the first recipe (UNet)" if config == REFERENCE_CONFIG else f"`{config}`"
    return f"{base} {' '.join(rest)}".strip() if rest else base


def minutes_slow(step: int, result: dict) -> float:
    """Slow-machine minutes of ``step`` steps of this option (work, not this machine's time)."""
    ratio = result["reference_steps_per_s"] / result["steps_per_s"]
    return step * ratio / SLOW_MACHINE_STEPS_PER_S / 60


def write_table(out: Path, names: list[str] | None = None) -> None:
    results = {}
    for path in sorted((out / "results").glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("points") and (names is None or data["name"] in names):
            results[data["name"]] = data
    if not results:
        return
    lines = [
        "| option | config and overrides | steps/s here | cost vs ref | steps | images seen "
        "| slow-machine min | min here | sampling | MNIST-M | SVHN | mean |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for name, r in results.items():
        last = r["points"][-1]
        mean = (last["mnistm"] + last["svhn"]) / 2
        rows.append((mean, name, r, last))
    for mean, name, r, last in sorted(rows, key=lambda row: -row[0]):
        lines.append(
            f"| {name} | {describe(r['overrides'])} | {r['steps_per_s']:.2f} "
            f"| {r['reference_steps_per_s'] / r['steps_per_s']:.2f} | {last['step']} "
            f"| {last['step'] * r['batch_size']:,} | {minutes_slow(last['step'], r):.1f} "
            f"| {last['step'] / r['steps_per_s'] / 60:.1f} "
            f"| {last['sampler']} {last['steps']}, g {last['guidance']:g} "
            f"| {last['mnistm']:.3f} | {last['svhn']:.3f} "
            f"| {mean:.3f} |"
        )
    first = next(iter(results.values()))
    ref, threads = first["reference_steps_per_s"], first.get("speed_threads", 2)
    lines.append("")
    lines.append(
        f"Speeds measured with {threads} thread(s): the reference network {ref:.2f} steps/s "
        f"here; the slow machine: {SLOW_MACHINE_STEPS_PER_S} steps/s (2 threads)."
    )
    lines.append("")
    lines.append("Intermediate points (slow-machine minutes: MNIST-M / SVHN):")
    lines.append("")
    for _, name, r, _ in sorted(rows, key=lambda row: -row[0]):
        pts = ", ".join(
            f"{minutes_slow(p['step'], r):.1f}: {p['mnistm']:.2f}/{p['svhn']:.2f}" for p in r["points"]
        )
        lines.append(f"- {name}: {pts}")
    (out / "study.md").write_text("\n".join(lines) + "\n")
    best = [name for _, name, _, _ in sorted(rows, key=lambda row: -row[0])[:3]]
    curves = {
        name: [
            (minutes_slow(p["step"], results[name]), p["mnistm"], p["svhn"]) for p in results[name]["points"]
        ]
        for name in best
    }
    plot_curves(curves, out / "study.png", "PB1 recipe study on digits_mini: the best three")
    print("\n".join(lines))
    print(f"\nwrote {out / 'study.md'} and {out / 'study.png'}")


def write_markdown(path: Path, header: str, rows: list[str]) -> None:
    columns = header.count("|") - 1
    text = "\n".join([header, "|" + "---|" * columns, *rows]) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text + f"\nwrote {path}")


def sweep(args: argparse.Namespace, graders: Path) -> None:
    """Inference settings on trained models: for each setting, every model with every sampling
    seed (the same labels and seeds for each setting), then the mean and range over them."""
    import torch

    torch.set_num_threads(2)
    seeds = args.sampling_seeds or [args.seed]
    rows, results = [], []
    for spec in args.settings:
        sampler, steps, guidance, *rest = spec.split(":")
        eta = float(rest[0]) if rest else 0.0
        interval = [float(v) for v in rest[1].split("-")] if len(rest) > 1 else None
        scales = [float(g) for g in guidance.split("/")]
        runs = []
        for model in args.sweep:
            for seed in seeds:
                r = grade_model(
                    Path(model),
                    graders,
                    args.per_class,
                    sampler=sampler,
                    steps=int(steps),
                    guidance=scales if len(scales) > 1 else scales[0],
                    eta=eta,
                    guidance_interval=interval,
                    seed=seed,
                )
                runs.append({"model": str(model), **r})
        first = runs[0]
        settings = {key: first[key] for key in ("sampler", "steps", "guidance", "eta", "guidance_interval")}
        mean = {name: sum(r[name] for r in runs) / len(runs) for name in ("mnistm", "svhn")}
        results.append({"spec": spec, **settings, "runs": runs, **mean})
        shown = rest[1] if interval else "all"
        seconds = sum(r["sampling_s"] for r in runs) / len(runs)
        rows.append(
            f"| {sampler} | {steps} | {guidance} | {eta:g} | {shown} | {seconds:.0f} | {len(runs)} "
            f"| {mean['mnistm']:.3f} | {mean['svhn']:.3f} |"
        )
        print(rows[-1], flush=True)
    header = (
        "| sampler | steps | guidance | eta | guided at t | sampling s (2 thr) | runs "
        "| MNIST-M mean | SVHN mean |"
    )
    write_markdown(Path(args.out) / "sweep.md", header, rows)
    record = {
        "models": [str(m) for m in args.sweep],
        "sampling_seeds": seeds,
        "results": results,
        **provenance(),
    }
    write_json(Path(args.out) / "sweep.json", record)
    if args.record:
        write_json(Path(args.record), record)
        print(f"recorded in {args.record}")


def pca_bound(args: argparse.Namespace, graders: Path) -> None:
    """The ceiling of a latent model on k principal components: the graders' accuracy on the
    test images projected onto the first k components of the train images and back."""
    import torch

    from dlcv.data.digits import load_joint_digits
    from dlcv.digits.grading import accuracy_stats, predict
    from dlcv.digits.model import build_model, load_config

    torch.set_num_threads(2)
    train, _ = load_joint_digits(args.data, "train", progress=False)
    test, labels = load_joint_digits(args.data, "test", progress=False)
    classifiers = load_graders(graders)
    rows = []
    for k in args.pca_bound:
        model = build_model(load_config("demo", [f"model.components={k}"]))
        kept = model.fit_basis(train, seed=args.seed)
        with torch.no_grad():
            images = model.decode(model.encode(test.float() / 127.5 - 1))
        images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        acc = []
        for d, name in enumerate(("mnistm", "svhn")):
            mask = labels // 10 == d
            acc.append(accuracy_stats(predict(classifiers[name], images[mask]), labels[mask] % 10)["acc"])
        rows.append(f"| {k} | {kept:.1%} | {acc[0]:.3f} | {acc[1]:.3f} |")
        print(rows[-1], flush=True)
    write_markdown(
        Path(args.out) / "pca_bound.md", "| components | pixel variance kept | MNIST-M | SVHN |", rows
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        return grade_worker(args)
    out = Path(args.out)
    if args.table_only:
        return write_table(out)
    if not Path(args.data, "mnistm", "train.csv").is_file():
        sys.exit(f"error: no digits in the course layout at {args.data} (expected mnistm/train.csv)")
    if not args.graders:  # graders that never see the generator's images: the other half of the data
        parts = split_for_graders(Path(args.data), out / "split")
        args.data, args.grader_data = str(parts["generator"]), args.grader_data or str(parts["graders"])
        print(f"generator: {args.data}; graders: {args.grader_data}", flush=True)
    graders = Path(args.graders) if args.graders else ensure_graders(Path(args.grader_data), out / "graders")
    if args.sweep:
        return sweep(args, graders)
    if args.pca_bound:
        return pca_bound(args, graders)
    specs = [option_overrides(spec) for spec in args.options]
    if args.record_only:
        return record_seed(args, [name for name, _ in specs], graders)

    # 1. speed, alone, --speed-threads threads: the work each option may do
    from dlcv.digits.model import load_config

    threads = args.speed_threads
    reference_speed(threads)  # a first, untimed warm-up of the process
    speeds: dict[str, float] = {}
    for _, option in specs:
        config, overrides = split_base(option, args.base)
        cfg = load_config(config, overrides)
        # the cost of a step is the network's and the batch's: options that change only the
        # loss or the optimiser share one measurement (short timings vary by about 10%)
        key = json.dumps([str(cfg.model), int(cfg.train.batch_size)])
        if key not in speeds:
            speeds[key] = train_steps_per_second(config, overrides, threads)
    # the reference before and after the options: the faster of the two (a busy moment
    # during one of them would otherwise scale every option's length)
    ref = max(reference_speed(threads), speeds.get("ref", 0.0))
    ref = max(ref, reference_speed(threads))
    print(f"reference network: {ref:.2f} steps/s here ({threads} threads)", flush=True)
    record = json.loads(Path(args.record).read_text()) if args.record and Path(args.record).is_file() else {}
    jobs = []
    for name, overrides in specs:
        cfg = load_config(*split_base(overrides, args.base))
        batch = int(cfg.train.batch_size)
        speed = speeds[json.dumps([str(cfg.model), batch])]
        steps = int(args.budget_minutes * 60 * SLOW_MACHINE_STEPS_PER_S * speed / ref)
        earlier = next(iter(record.get("runs", {}).get(name, {}).values()), None)
        if earlier is not None:  # another seed of this option: the same work, whatever the timing now
            speed, ref, steps = earlier["steps_per_s"], earlier["reference_steps_per_s"], earlier["steps"]
            print(f"{name}: {steps} steps, as its earlier seed in {args.record}", flush=True)
        print(
            f"{name}: {speed:.2f} steps/s (cost {ref / speed:.2f}x the reference): {steps} steps", flush=True
        )
        write_json(
            out / "results" / f"{name}.json",
            {
                "name": name,
                "overrides": overrides,
                "base": args.base,
                "steps_per_s": speed,
                "reference_steps_per_s": ref,
                "batch_size": batch,
                "steps": steps,
                "budget_minutes": args.budget_minutes,
                "speed_threads": threads,
            },
        )
        jobs.append((name, overrides, steps))

    # 2. train and grade, side by side
    with ThreadPoolExecutor(args.parallel) as pool:
        futures = [
            pool.submit(run_option, args, name, overrides, steps, graders) for name, overrides, steps in jobs
        ]
        for future in futures:
            future.result()
    write_table(out, [name for name, _, _ in jobs])
    if args.record:
        record_seed(args, [name for name, _, _ in jobs], graders)


def record_seed(args: argparse.Namespace, names: list[str], graders: Path) -> None:
    """Merge this seed's graded results of ``names`` (in ``--out``) into ``--record``."""
    out = Path(args.out)
    record = json.loads(Path(args.record).read_text()) if Path(args.record).is_file() else {}
    record.setdefault("runs", {})
    for name in names:
        result = json.loads((out / "results" / f"{name}.json").read_text())
        if not result.get("points"):
            sys.exit(f"error: {out / 'results' / name}.json has no graded points (run the study first)")
        record["runs"].setdefault(name, {})[str(args.seed)] = {**result, **provenance()}
    record["graders"] = grader_report(graders, Path(args.grader_data)) if args.grader_data else None
    write_json(Path(args.record), record)
    print(f"recorded in {args.record}")


if __name__ == "__main__":
    main()
