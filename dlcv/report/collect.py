"""Collect what the runs produced into the report's three sections.

Each item says which command made it and from which checkpoint; whatever is missing or
unreadable becomes a :class:`~dlcv.report.document.Gap` naming the command that produces it.
The report's own images (curves, contact sheets) are written to ``img_dir``.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import torch

from dlcv.cli import UserError
from dlcv.clip_eval.grading import PromptResult, load_results
from dlcv.clip_eval.zeroshot import ZeroShotSummary
from dlcv.digits.grading import DATASETS, DISPLAY_NAMES, GradesRecord, digit_files
from dlcv.digits.model import MODEL_FILE
from dlcv.faces.mse import compare_folders
from dlcv.io.images import list_images
from dlcv.report import commands
from dlcv.report.commands import FACE_UNET, SD_CKPT
from dlcv.report.document import Block, Code, Figure, Gap, Item, Section, Table, Text
from dlcv.report.plots import MetricsLog, contact_sheet, plot_training_curves, read_metrics
from dlcv.report.sources import DEFAULT_FACE_GT, DEFAULT_TI_INPUT, GRADES_NAME, Inputs, show
from dlcv.stable_diffusion.embeddings import LEARNED_EMBEDS
from dlcv.training.trainer import CHECKPOINT_NAME, METRICS_NAME

PB2_FIGURES = [
    ("eta_grid.png", "DDIM eta grid: rows eta = 0, 0.25, 0.5, 0.75, 1; columns the first four noises"),
    (
        "interpolation_slerp.png",
        "spherical linear interpolation (slerp) of noises 0 and 1, alpha = 0, 0.1, ..., 1",
    ),
    ("interpolation_lerp.png", "linear interpolation of the same two noises"),
]
PB2_STRIPS = {"interpolation_slerp.png", "interpolation_lerp.png"}


def collect(inputs: Inputs, img_dir: Path) -> list[Section]:
    """The PB1, PB2 and PB3 sections for ``inputs``; plots and contact sheets go to ``img_dir``."""
    img_dir.mkdir(parents=True, exist_ok=True)
    return [pb1_section(inputs, img_dir), pb2_section(inputs, img_dir), pb3_section(inputs, img_dir)]


# ---- small helpers -------------------------------------------------------------------------


def code(path: str | Path) -> str:
    return f"`{show(path)}`"


def written(path: Path) -> str:
    """``path`` with the time it was last written."""
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    return f"{code(path)} (written {stamp})"


def stale(product: Path, reference: Path, how: str) -> list[Block]:
    """A warning when ``product`` is older than the ``reference`` it was made from."""
    if product.exists() and reference.exists() and product.stat().st_mtime < reference.stat().st_mtime - 1:
        return [
            Text(
                f"Older than {code(reference)}: made from an earlier version of it? Re-run `{how}`.",
                warning=True,
            )
        ]
    return []


def figures(
    folder: Path | None,
    names: list[tuple[str, str]],
    what: str,
    where: str,
    how: str,
    strips: set[str],
) -> list[Block]:
    """The figures ``names`` (file name, caption) of ``folder``: one gap for a missing folder, one per
    missing file. The file names in ``strips`` are shown at full width."""
    if folder is None or not folder.is_dir():
        return [Gap(what, where, how)]
    blocks: list[Block] = []
    for name, caption in names:
        path = folder / name
        if path.is_file():
            blocks.append(Figure(path, caption, wide=name in strips))
        else:
            blocks.append(Gap(f"{what}: {name}", f"not found in {show(folder)}", how))
    return blocks


def curves_blocks(logs: dict[str, MetricsLog], out: Path, title: str) -> list[Block]:
    """The training-curve figure and a table of each run's length, last loss and time."""
    plot_training_curves(logs, out, title)
    rows = []
    for name, log in logs.items():
        minutes = f"{log.seconds[-1] / 60:.1f}" if log.seconds else "not logged"
        extra = ", ".join(f"{k} {v[-1]:.4f}" for k, v in log.series.items() if k != "loss")
        rows.append([name, str(log.steps[-1]), f"{log.last('loss'):.4f}", minutes, extra or "-"])
    blocks: list[Block] = [
        Figure(out, f"{title}: loss against training steps and time", wide=True),
        Table(["run", "last step", "last loss", "training time (min)", "other"], rows),
    ]
    for name, log in logs.items():
        blocks += [Text(f"{name}: {note}.", warning=True) for note in log.notes]
    return blocks


# ---- Problem 1 -------------------------------------------------------------------------------


def pb1_section(inputs: Inputs, img_dir: Path) -> Section:
    model_dir = inputs.expected("pb1_model")
    data = model_dir.parent / "hw2_data" / "digits"  # a run folder's own digits (make demo writes them)
    data = data if data.is_dir() else Path("hw2_data/digits")
    train_cmd = str(commands.pb1_train(data, model_dir))
    items = [pb1_training(inputs, model_dir, train_cmd, img_dir), pb1_recipe(inputs, model_dir, train_cmd)]

    fig_dir = inputs.get("pb1_figures") or inputs.expected("pb1_figures")
    fig_model = inputs.sibling("pb1_figures", "pb1_model") / MODEL_FILE
    report_cmd = str(commands.pb1_figures(fig_dir, fig_model))
    where = inputs.where_looked("pb1_figures")
    for title, suffix, caption in (
        ("10x10 grids of generated digits", "grid", "rows: digits 0-9; columns: ten noises"),
        (
            'Reverse process of the first "0"',
            "reverse_process",
            "six timesteps from pure noise (left) to the result (right)",
        ),
    ):
        names = [(f"{d}_{suffix}.png", f"{DISPLAY_NAMES[d]}: {caption}") for d in DATASETS]
        strips = {f"{d}_reverse_process.png" for d in DATASETS}
        blocks = figures(inputs.get("pb1_figures"), names, title, where, report_cmd, strips)
        for fig in [b for b in blocks if isinstance(b, Figure)][:1]:
            blocks += stale(fig.source, fig_model, report_cmd)
        items.append(
            Item(title, f"`{report_cmd}`", written(fig_model) if fig_model.is_file() else "", blocks)
        )
    items.append(pb1_accuracies(inputs))

    intro = "Class-conditional DDPM with classifier-free guidance on MNIST-M and SVHN (20 joint classes)."
    synthetic = [s.root / "hw2_data" / "digits" for s in inputs.sources if s.layout == "run"]
    synthetic = [p for p in synthetic if p.is_dir()]
    if synthetic:
        intro += (
            f" The run folder holds its own digits ({code(synthetic[0])}): `make demo` writes "
            "synthetic MNIST-M-like and SVHN-like digits there, a stand-in for the course's data."
        )
    return Section("pb1", "Problem 1: conditional DDPM on digits", intro, items)


def pb1_training(inputs: Inputs, model_dir: Path, train_cmd: str, img_dir: Path) -> Item:
    metrics, model = model_dir / METRICS_NAME, model_dir / MODEL_FILE
    item = Item("Training curve", f"`{train_cmd}`", written(model) if model.is_file() else "")
    if not metrics.is_file():
        where = inputs.missing("pb1_model", f"{METRICS_NAME} not found in {show(model_dir)}")
        item.blocks.append(
            Gap("training curve", where, f"`{train_cmd}` (or `make demo` for a run on synthetic digits)")
        )
        return item
    log = read_metrics(metrics)
    if not log.steps:
        item.blocks.append(Gap("training curve", f"{show(metrics)} holds no readable record", train_cmd))
        return item
    item.blocks += curves_blocks({"PB1": log}, img_dir / "pb1_training_curve.png", "PB1 training")
    item.blocks.append(Text(f"Read from {written(metrics)}."))
    return item


def pb1_recipe(inputs: Inputs, model_dir: Path, train_cmd: str) -> Item:
    """The config the model was trained with: the checkpoint's full config, else the model's."""
    ckpt, model = model_dir / CHECKPOINT_NAME, model_dir / MODEL_FILE
    item = Item("Recipe (config)", f"`{train_cmd}`")
    state = None
    if ckpt.is_file():
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # a corrupt or foreign file: fall back to the model's own config
            state = None
    recipe: dict[str, Any] | None = None
    if isinstance(state, dict) and isinstance(state.get("config"), dict):
        recipe = dict(state["config"])
        train = state.get("train_config") or {}
        run = {k: train[k] for k in ("seed", "device", "time_budget", "precision") if k in train}
        recipe["run"] = {"steps_done": int(state.get("step", 0)), **run}
        item.checkpoint = written(ckpt)
    elif model.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(model), framework="pt") as f:
                meta = f.metadata() or {}
            recipe = json.loads(meta["config"])
            item.checkpoint = written(model)
        except Exception:
            recipe = None
    if recipe is None:
        unreadable = f"no readable {CHECKPOINT_NAME} or {MODEL_FILE} in {show(model_dir)}"
        where = inputs.missing("pb1_model", unreadable)
        item.blocks.append(Gap("recipe (config)", where, train_cmd))
        return item
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        item.blocks.append(Code(OmegaConf.to_yaml(OmegaConf.create(recipe)).rstrip()))
    except (OmegaConfBaseException, ValueError, TypeError):
        item.blocks.append(Code(json.dumps(recipe, indent=2, default=str)))
    if not ckpt.is_file():
        item.blocks.append(
            Text(
                f"Only the model's part of the config: {CHECKPOINT_NAME} (with the training "
                f"section) is not in {code(model_dir)}."
            )
        )
    return item


def pb1_accuracies(inputs: Inputs) -> Item:
    out = inputs.get("pb1_outputs") or inputs.expected("pb1_outputs")
    grades = out / GRADES_NAME
    gen_model = inputs.sibling("pb1_outputs", "pb1_model") / MODEL_FILE
    generate, grade = str(commands.hw2_1(out, gen_model)), str(commands.grade_digits(out, grades))
    item = Item("The grader's accuracies", f"`{generate}`, then `{grade}`")
    if "pb1_outputs" not in inputs.found:
        item.blocks.append(
            Gap(
                "grader's accuracies",
                "no generated digits: " + inputs.where_looked("pb1_outputs"),
                f"{generate} && {grade}",
            )
        )
        return item
    counts = {d: len(digit_files(out / d)) if (out / d).is_dir() else 0 for d in DATASETS}
    item.blocks.append(
        Text(
            f"{counts['mnistm']} MNIST-M and {counts['svhn']} SVHN images in {code(out)} "
            "(hw2_1.sh writes 500 + 500)."
        )
    )
    if not grades.is_file():
        item.blocks.append(Gap("grader's accuracies", f"{GRADES_NAME} not found in {show(out)}", grade))
        return item
    try:
        record = GradesRecord.load(grades)
    except UserError as err:
        item.blocks.append(Gap("grader's accuracies", str(err), grade))
        return item
    rows = []
    for d in DATASETS:
        g = record.grades[d]
        verdicts = ["pass" if g.acc >= line else "FAIL" for line in record.baselines.values()]
        rows.append([DISPLAY_NAMES[d], f"{g.acc:.4f}", f"{g.correct}/{g.total}", *verdicts])
    rows.append(["mean (acc)", f"{record.acc:.4f}", *[""] * (len(record.baselines) + 1)])
    counts = {d: record.grades[d].per_digit for d in DATASETS}
    per_digit = [
        [DISPLAY_NAMES[d], *("{}/{}".format(*counts[d].get(k, ("-", "-"))) for k in range(10))]
        for d in DATASETS
    ]
    header = [
        "dataset",
        "accuracy",
        "correct/total",
        *[f"{name} baseline ({line:.2f})" for name, line in record.baselines.items()],
    ]
    item.blocks += [
        Table(header, rows),
        Text("Correct per digit:"),
        Table(["dataset", *map(str, range(10))], per_digit),
    ]
    classifiers = (record.mnistm_checkpoint, record.svhn_checkpoint)
    item.checkpoint = (
        f"images from {code(gen_model)}; graded with "
        + " and ".join(code(c) for c in classifiers)
        + f"; numbers from {written(grades)}"
    )
    item.blocks += stale(grades, gen_model, f"{generate} && {grade}")
    return item


# ---- Problem 2 -------------------------------------------------------------------------------


def pb2_section(inputs: Inputs, img_dir: Path) -> Section:
    items = []
    face_dir = inputs.get("pb2_figures") or inputs.expected("pb2_figures")
    face_cmd = str(commands.pb2_face_figures(face_dir))
    face = Item(
        "Eta grid and interpolation on the face UNet",
        f"`{face_cmd}`",
        f"the course's face UNet ({code(FACE_UNET)})",
    )
    digit_dir = inputs.get("pb2_digit_figures")
    where = inputs.where_looked("pb2_figures")
    how = face_cmd
    if digit_dir is None:
        how = f"`{face_cmd}` (or on a PB1 model: `{commands.pb2_digit_figures('MODEL', 'DIR')}`)"
    face.blocks = figures(
        inputs.get("pb2_figures"),
        PB2_FIGURES,
        "face UNet eta grid and interpolations",
        where,
        how,
        PB2_STRIPS,
    )
    items.append(face)
    if digit_dir is not None:
        model = inputs.sibling("pb2_digit_figures", "pb1_model") / MODEL_FILE
        cmd = str(commands.pb2_digit_figures(model, digit_dir))
        digits = Item(
            "Eta grid and interpolation on the PB1 digit model",
            f"`{cmd}`",
            written(model) if model.is_file() else code(model),
        )
        digits.blocks = figures(
            digit_dir,
            PB2_FIGURES,
            "digit-model eta grid and interpolations",
            "",
            cmd,
            PB2_STRIPS,
        )
        digits.blocks.insert(
            0,
            Text(
                "The same DDIM experiments on Problem 1's model (class-conditioned, "
                "noises drawn from the seed), where the face UNet is not at hand."
            ),
        )
        digits.blocks += stale(digit_dir / PB2_FIGURES[0][0], model, cmd)
        items.append(digits)
    items.append(pb2_mse(inputs, img_dir))
    intro = "DDIM (50 steps, the course's timesteps) with the course's pretrained face UNet."
    return Section("pb2", "Problem 2: DDIM", intro, items)


def pb2_mse(inputs: Inputs, img_dir: Path) -> Item:
    out = inputs.get("pb2_outputs") or inputs.expected("pb2_outputs")
    generate = str(commands.hw2_2(out))
    gt = inputs.face_gt
    item = Item(
        "Per-image MSE against the ground truth",
        f"`{generate}`",
        f"the course's face UNet ({code(FACE_UNET)})",
    )
    if "pb2_outputs" not in inputs.found:
        item.blocks.append(
            Gap("MSE against GT", "no generated faces: " + inputs.where_looked("pb2_outputs"), generate)
        )
        return item
    if gt is None:
        item.blocks.append(
            Gap(
                "MSE against GT",
                f"no ground truth: {DEFAULT_FACE_GT} not found",
                "pass `--face-gt GT_DIR` (the course's `hw2_data/face/GT`)",
            )
        )
        return item
    grade = str(commands.face_mse(out, gt))
    try:
        report = compare_folders(out, gt)
    except UserError as err:
        item.blocks.append(Gap("MSE against GT", str(err), f"{generate} && {grade}"))
        return item
    item.made_by += f", then the MSE as `{grade}` computes it"
    rows = [[name, f"{mse:.4f}"] for name, mse in report.per_image.items()]
    verdict = "PASS" if report.passed else "FAIL"
    rows.append(["mean", f"{report.mean:.4f}"])
    line = f"mean < {report.pass_line:g}"
    item.blocks.append(Table(["image", "MSE (0-255 scale)"], rows))
    item.blocks.append(Table(["mean MSE", "pass line", "result"], [[f"{report.mean:.4f}", line, verdict]]))
    if report.ignored:
        item.blocks.append(Text(f"Outputs without a ground truth (ignored): {', '.join(report.ignored)}."))
    names = list(report.per_image)[:10]
    sheet = contact_sheet(
        [out / n for n in names] + [gt / n for n in names],
        img_dir / "pb2_outputs_vs_gt.png",
        tile=96,
        per_row=len(names),
    )
    item.blocks.append(
        Figure(sheet, f"top: the outputs in {show(out)}; bottom: the ground truth in {show(gt)}", wide=True)
    )
    return item


# ---- Problem 3 -------------------------------------------------------------------------------


def pb3_section(inputs: Inputs, img_dir: Path) -> Section:
    items = [pb3_zeroshot(inputs), pb3_training(inputs, img_dir), pb3_samples(inputs, img_dir)]
    intro = (
        "CLIP zero-shot classification, and Textual Inversion on Stable Diffusion v1.4 graded with "
        "CLIP ViT-B/32."
    )
    return Section("pb3", "Problem 3: CLIP zero-shot and Textual Inversion", intro, items)


def pb3_zeroshot(inputs: Inputs) -> Item:
    folder = inputs.get("zeroshot") or inputs.expected("zeroshot")
    cmd = str(commands.zeroshot(folder))
    item = Item("CLIP zero-shot accuracy, five right and five wrong cases", f"`{cmd}`")
    summary_path = folder / "summary.json"
    if "zeroshot" not in inputs.found or not summary_path.is_file():
        reason = inputs.missing("zeroshot", f"summary.json not found in {show(folder)}")
        item.blocks.append(Gap("CLIP zero-shot", reason, cmd))
        return item
    try:
        summary = ZeroShotSummary.load(summary_path)
    except UserError as err:
        item.blocks.append(Gap("CLIP zero-shot", str(err), cmd))
        return item
    item.checkpoint = f"CLIP: {code(summary.clip)}; numbers from {written(summary_path)}"
    templates = summary.templates
    item.blocks.append(
        Table(
            ["accuracy", "correct/total", "classes", "prompt", "labels"],
            [
                [
                    f"{100 * summary.accuracy:.2f}%",
                    f"{summary.correct}/{summary.total}",
                    str(summary.classes),
                    f"{templates[0]!r}"
                    + (f" (+{len(templates) - 1} more, averaged)" if len(templates) > 1 else ""),
                    summary.label_form,
                ]
            ],
        )
    )
    cases = [(name, True) for name in summary.right_cases] + [(n, False) for n in summary.wrong_cases]
    labels = _prediction_rows(folder / "predictions.csv")
    rows = []
    for name, right in cases:
        row = labels.get(name, {})
        rows.append(
            [
                name,
                "right" if right else "wrong",
                row.get("label", "?"),
                row.get("pred_label", "?"),
                row.get("confidence", "?"),
            ]
        )
    item.blocks.append(Table(["image", "case", "true label", "predicted", "confidence"], rows))
    figure = folder / "cases.png"
    if figure.is_file():
        item.blocks.append(
            Figure(figure, "the five right (green) and five wrong (red) cases, true and predicted labels")
        )
    else:
        item.blocks.append(Gap("zero-shot cases figure", f"cases.png not found in {show(folder)}", cmd))
    return item


def _prediction_rows(path: Path) -> dict[str, dict[str, str]]:
    """``predictions.csv`` by file name (empty when absent or unreadable)."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return {row["file"]: row for row in csv.DictReader(f) if "file" in row}
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}


def _concept_dirs(folder: Path) -> dict[str, Path]:
    """Textual Inversion output folders: ``folder`` itself when it holds a run, else its sub-folders."""
    if (folder / METRICS_NAME).is_file() or (folder / LEARNED_EMBEDS).is_file():
        return {folder.name: folder}
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.is_dir() and ((p / METRICS_NAME).is_file() or (p / LEARNED_EMBEDS).is_file())
    }


def pb3_training(inputs: Inputs, img_dir: Path) -> Item:
    folder = inputs.get("pb3_embeddings") or inputs.expected("pb3_embeddings")
    ti_input = inputs.ti_input or Path(DEFAULT_TI_INPUT)
    cmd = str(commands.pb3_train(ti_input, folder))
    item = Item("Textual Inversion training", f"`{cmd}`", f"Stable Diffusion v1.4 ({code(SD_CKPT)})")
    concepts = _concept_dirs(folder) if "pb3_embeddings" in inputs.found and folder.is_dir() else {}
    if not concepts:
        reason = inputs.missing("pb3_embeddings", f"no concept folder with {METRICS_NAME} in {show(folder)}")
        item.blocks.append(Gap("Textual Inversion training curves", reason, cmd))
        return item
    logs = {}
    for key, path in concepts.items():
        if (path / METRICS_NAME).is_file():
            log = read_metrics(path / METRICS_NAME)
            if log.steps:
                logs[f"concept {key}"] = log
    if logs:
        item.blocks += curves_blocks(logs, img_dir / "pb3_training_curves.png", "Textual Inversion training")
    else:
        item.blocks.append(
            Gap("Textual Inversion training curves", f"no readable {METRICS_NAME} in {show(folder)}", cmd)
        )
    embeds = [code(p / LEARNED_EMBEDS) for p in concepts.values() if (p / LEARNED_EMBEDS).is_file()]
    if embeds:
        item.checkpoint += f"; learned embeddings {', '.join(embeds)}"
    for key, path in concepts.items():
        samples = sorted((path / "samples").glob("step_*.png")) if (path / "samples").is_dir() else []
        if samples:
            step = samples[-1].stem.removeprefix("step_").lstrip("0") or "0"
            item.blocks.append(
                Figure(
                    samples[-1],
                    f"concept {key}: validation samples at step {step} (one row per validation prompt)",
                )
            )
    return item


def _prompts(inputs: Inputs) -> dict[tuple[str, int], str]:
    """(concept key, prompt index) -> the generation prompt of input.json (empty without it)."""
    if inputs.ti_input is None:
        return {}
    from dlcv.stable_diffusion.course_input import read_input_json

    try:
        concepts = read_input_json(inputs.ti_input)
    except UserError:
        return {}
    return {(c.key, i): p for c in concepts for i, p in enumerate(c.prompts)}


def pb3_samples(inputs: Inputs, img_dir: Path) -> Item:
    out = inputs.get("pb3_outputs") or inputs.expected("pb3_outputs")
    ti_input = inputs.ti_input or Path(DEFAULT_TI_INPUT)
    grades = out / GRADES_NAME
    generate, grade = str(commands.hw2_3(ti_input, out)), str(commands.grade_hw2_3(ti_input, out, grades))
    emb = inputs.get("pb3_embeddings")
    item = Item(
        "Textual Inversion samples per prompt and the grader's CLIP scores",
        f"`{generate}`, then `{grade}`",
        f"Stable Diffusion v1.4 ({code(SD_CKPT)})" + (f" with the embeddings in {code(emb)}" if emb else ""),
    )
    folders = {}
    if "pb3_outputs" in inputs.found and out.is_dir():
        for key_dir in sorted(p for p in out.iterdir() if p.is_dir()):
            for prompt_dir in sorted(
                (p for p in key_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
            ):
                folders[(key_dir.name, int(prompt_dir.name))] = prompt_dir
    if not folders:
        empty = f"no {{concept}}/{{prompt index}}/ image folders in {show(out)}"
        reason = inputs.missing("pb3_outputs", empty)
        item.blocks.append(Gap("Textual Inversion samples and CLIP scores", reason, f"{generate} && {grade}"))
        return item
    scores: dict[tuple[str, int], PromptResult] = {}
    if grades.is_file():
        try:
            scores = {(r.key, r.index): r for r in load_results(grades)}
        except UserError as err:
            item.blocks.append(Gap("grader's CLIP scores", str(err), grade))
    else:
        item.blocks.append(Gap("grader's CLIP scores", f"{GRADES_NAME} not found in {show(out)}", grade))
    prompts = _prompts(inputs)
    rows, sheets = [], []
    for (key, index), folder in folders.items():
        files = list_images(folder)
        r = scores.get((key, index))
        prompt = prompts.get((key, index)) or (r.prompt if r else "")
        if r:
            cells = [
                f"{r.image_score:.2f} / {r.baseline[0]:g}",
                f"{r.text_score:.2f} / {r.baseline[1]:g}",
                "PASS" if r.passed else "FAIL",
            ]
        else:
            cells = ["-", "-", "not graded"]
        count = f"{len(files)}" + ("" if len(files) == 25 else " (the grader needs 25)")
        rows.append([key, str(index), prompt, count, *cells])
        if files:
            sheet = contact_sheet(files[:25], img_dir / f"pb3_samples_{key}_{index}.png")
            verdict = f": image {cells[0]}, text {cells[1]}, {cells[2]}" if r else ""
            sheets.append(Figure(sheet, f"concept {key}, prompt {index}: {prompt}{verdict}"))
    if scores:
        item.checkpoint += f"; scores from {written(grades)}"
        passed = sum(1 for r in scores.values() if r.passed)
        item.blocks.append(
            Text(
                f"{passed} of {len(scores)} prompts pass (top 5 of image + 2.5 x text score, "
                "both averages at or above the baseline)."
            )
        )
    item.blocks.append(
        Table(
            [
                "concept",
                "prompt",
                "text",
                "images",
                "image score / baseline",
                "text score / baseline",
                "result",
            ],
            rows,
        )
    )
    item.blocks += sheets
    return item
