"""CLIP zero-shot classification of hw2_data/clip_zeroshot (Problem 3b).

    python PB3/zeroshot.py --data hw2_data/clip_zeroshot --clip checkpoints/clip-vit-base-patch32
    python PB3/zeroshot.py --data hw2_data/clip_zeroshot --ensemble --clean-labels

Prints the accuracy and five right and five wrong cases; writes predictions.csv,
summary.json and cases.png to --output_dir.
"""

from __future__ import annotations

import argparse
import json

from dlcv.cli import UserError, check_batch_size, prepare_out_dir, run
from dlcv.clip_eval.prompts import CIFAR_TEMPLATES, DEFAULT_TEMPLATE, choose_templates
from dlcv.clip_eval.sources import CLIP_HELP, PRECISIONS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="CLIP zero-shot classification: predict each image of DATA/val/ as the label "
        "of id2label.json whose prompt is most similar to it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True,
                   help="folder with val/{class_id}_{image_id}.png and id2label.json")
    p.add_argument("--clip", default=None, help=CLIP_HELP)
    p.add_argument("--output_dir", default="outputs/clip_zeroshot",
                   help="where predictions.csv, summary.json and cases.png are written")
    p.add_argument("--template", action="append", default=None, metavar="TEXT",
                   help=f"prompt template with a {{label}} placeholder (repeat to average "
                   f"several); default {DEFAULT_TEMPLATE!r}")
    p.add_argument("--ensemble", action="store_true",
                   help=f"average the CLIP paper's {len(CIFAR_TEMPLATES)} CIFAR templates "
                   "(with any --template) instead of the single default prompt")
    p.add_argument("--clean-labels", action="store_true",
                   help="read underscores in labels as spaces (palm_tree -> palm tree); "
                   "by default labels are used exactly as in id2label.json")
    p.add_argument("--batch_size", type=int, default=256, help="images per CLIP forward pass")
    p.add_argument("--workers", type=int, default=4,
                   help="DataLoader processes decoding images (0: in the main process)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda:N")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="model dtype; auto is fp16 on CUDA and fp32 on the CPU")
    p.add_argument("--seed", type=int, default=0, help="seed for drawing the cases shown")
    args = p.parse_args(argv)
    check_batch_size(args.batch_size, "--batch_size")
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    templates = choose_templates(args.template, args.ensemble)
    # torch, torchvision and transformers are imported only now, so --help answers at once.
    from dlcv.clip_eval.figure import GREEN, RED, captioned_grid
    from dlcv.clip_eval.zeroshot import (
        pick_cases,
        read_zeroshot_folder,
        run_zeroshot,
        write_predictions_csv,
    )
    from dlcv.io.checkpoint import save_text
    from dlcv.runtime import configure_backends, pick_device

    data = read_zeroshot_folder(args.data)
    prepare_out_dir(args.output_dir, "--output_dir", create=False)  # fail before the long run
    device = pick_device(args.device)
    configure_backends(device)
    from dlcv.clip_eval.loading import load_clip

    clip = load_clip(args.clip, device, args.precision)
    result = run_zeroshot(clip, data, templates, args.clean_labels, args.batch_size, args.workers)

    labels = data.id2label
    form = "underscores read as spaces" if args.clean_labels else "as given (underscores kept)"
    n_right = sum(result.correct)
    print(f"CLIP: {clip.source}")
    print(f"prompts: {len(templates)} template(s), e.g. {templates[0]!r}; labels {form}")
    print(f"accuracy: {100 * result.accuracy:.2f}% ({n_right}/{len(result.files)}, "
          f"{len(labels)} classes)")
    right, wrong = pick_cases(result.correct, 5, args.seed)
    for title, cases in (("correctly classified", right), ("wrongly classified", wrong)):
        print(f"{title}:")
        for i in cases:
            print(f"  {result.files[i].name}  true: {labels[result.targets[i]]}  "
                  f"predicted: {labels[result.predicted[i]]}")

    csv_path = write_predictions_csv(result, labels, prepare_out_dir(args.output_dir) / "predictions.csv")
    cases = right + wrong
    figure = captioned_grid(
        [result.files[i] for i in cases],
        [(f"true: {labels[result.targets[i]]}", f"pred: {labels[result.predicted[i]]}")
         for i in cases],
        [GREEN] * len(right) + [RED] * len(wrong),
        csv_path.parent / "cases.png",
    )
    summary = {
        "accuracy": result.accuracy,
        "correct": n_right,
        "total": len(result.files),
        "classes": len(labels),
        "templates": templates,
        "label_form": form,
        "clip": clip.source,
        "right_cases": [result.files[i].name for i in right],
        "wrong_cases": [result.files[i].name for i in wrong],
    }
    save_text(json.dumps(summary, indent=2) + "\n", csv_path.parent / "summary.json")
    print(f"wrote {csv_path}, {figure} and {csv_path.parent / 'summary.json'}")
    return summary


if __name__ == "__main__":
    run(main)
