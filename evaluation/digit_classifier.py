r"""Grade Problem 1's generated digits the way the course does.

    python evaluation/digit_classifier.py --folder OUT --checkpoint Classifier.pth \
        --svhn-checkpoint resnet34_svhn.pth

OUT holds ``mnistm/`` and ``svhn/`` with ``{digit}_{idx:03d}.png`` (what hw2_1.sh writes);
the label of each image is the first character of its name. Prints the course's lines::

    MNIST-M acc = 0.9780 (correct/total = 489/500)
    SVHN acc = 0.9620 (correct/total = 481/500)
    acc = 0.9700

(``acc`` is the mean of the two accuracies; the pass lines are 0.90 and 0.95 per dataset).
``--json PATH`` also writes the same numbers, the per-digit counts and the checkpoints used
(what ``python -m dlcv.report`` reads).

Checkpoints (all read with ``torch.load(weights_only=True)`` or as safetensors; nothing is
downloaded): the course's MNIST-M LeNet ``Classifier.pth`` unchanged, the course's SVHN
ResNet-34 weights (``resnet34_svhn.pth``, a plain state dict) as a local path, and the
project's own classifiers written by ``evaluation/train_classifier.py``. The architecture is
recognised from the file. Without ``--svhn-checkpoint`` the SVHN classifier is looked for
next to ``--checkpoint`` (``svhn_classifier.safetensors``, then ``resnet34_svhn.pth``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dlcv.cli import check_batch_size, existing_file, run
from dlcv.digits.classifiers import ARCHITECTURES, load_digit_classifier
from dlcv.digits.grading import (
    SVHN_SIBLINGS,
    check_output_folder,
    find_svhn_checkpoint,
    format_details,
    format_report,
    grade_digit_folder,
    grades_record,
)
from dlcv.io.checkpoint import save_text
from dlcv.runtime import configure_backends, pick_device


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--folder",
        required=True,
        help="folder with the generated mnistm/ and svhn/ sub-folders ({digit}_{idx:03d}.png)",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="MNIST-M classifier: the course's Classifier.pth ({'state_dict', 'optimizer'}, "
        "LeNet) or one written by evaluation/train_classifier.py (.pth or .safetensors)",
    )
    p.add_argument(
        "--svhn-checkpoint",
        help="SVHN classifier: the course's ResNet-34 weights (resnet34_svhn.pth, a plain state "
        "dict) or svhn_classifier.safetensors from evaluation/train_classifier.py; default: "
        f"{' or '.join(SVHN_SIBLINGS)} next to --checkpoint",
    )
    p.add_argument(
        "--arch",
        default="auto",
        choices=["auto", *ARCHITECTURES],
        help="architecture of --checkpoint (default: recognised from the file)",
    )
    p.add_argument(
        "--svhn-arch",
        default="auto",
        choices=["auto", *ARCHITECTURES],
        help="architecture of --svhn-checkpoint (default: recognised from the file)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default: 256)")
    p.add_argument(
        "--json",
        metavar="PATH",
        help="also write the accuracies, per-digit counts and checkpoints to this JSON file "
        "(e.g. OUT/grades.json, where python -m dlcv.report looks)",
    )
    p.add_argument(
        "--details",
        action="store_true",
        help="also print per-digit counts and the baseline verdicts (to stderr, after the course's lines)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    check_batch_size(args.batch_size)
    device = pick_device(args.device)
    configure_backends(device)
    check_output_folder(args.folder)
    mnistm_path = existing_file(args.checkpoint, "--checkpoint")
    mnistm_model = load_digit_classifier(mnistm_path, args.arch, device)
    if args.svhn_checkpoint is not None:
        svhn_path = existing_file(args.svhn_checkpoint, "--svhn-checkpoint")
    else:
        svhn_path = find_svhn_checkpoint(mnistm_path)
        print(f"SVHN classifier: {svhn_path} (found next to --checkpoint)", file=sys.stderr)
    svhn_model = load_digit_classifier(svhn_path, args.svhn_arch, device)
    result = grade_digit_folder(args.folder, mnistm_model, svhn_model, device, args.batch_size)
    print("\n".join(format_report(result)), flush=True)
    if args.details:
        print("\n".join(format_details(result)), file=sys.stderr)
    if args.json:
        record = grades_record(result, args.folder, mnistm_path, svhn_path)
        save_text(json.dumps(record, indent=2) + "\n", Path(args.json))


if __name__ == "__main__":
    run(main)
