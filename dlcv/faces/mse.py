"""Problem 2 grading: per-image MSE between generated faces and the ground truth.

The course's measure (``docs/course_interface.md``): the mean squared error of
the uint8 RGB arrays (0-255 scale) of each output image against the image of the
same name in the ground-truth folder, averaged over the images; a mean below 20
passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from dlcv.cli import UserError, existing_dir
from dlcv.io.images import list_images, load_rgb

PASS_LINE = 20.0


def image_mse(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean of ``(a - b)^2`` over all pixels and channels, on the 0-255 scale, in float64."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float(((a.double() - b.double()) ** 2).mean())


@dataclass
class MseReport:
    """Per-image MSE (by file name, sorted) and their mean, against ``pass_line``.

    ``ignored`` lists images of the output folder that have no ground truth.
    """

    per_image: dict[str, float]
    pass_line: float = PASS_LINE
    ignored: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return sum(self.per_image.values()) / len(self.per_image)

    @property
    def passed(self) -> bool:
        return self.mean < self.pass_line

    def lines(self) -> list[str]:
        """The printed report: one line per image, the mean, and PASS/FAIL."""
        width = max(len(name) for name in [*self.per_image, "mean"])
        out = [f"{name:<{width}}  {mse:10.4f}" for name, mse in self.per_image.items()]
        verdict = "PASS" if self.passed else "FAIL"
        out.append(
            f"{'mean':<{width}}  {self.mean:10.4f}  {verdict} (line: mean < {self.pass_line:g}, "
            f"{len(self.per_image)} images)"
        )
        return out


def compare_folders(out_dir: str | Path, gt_dir: str | Path, pass_line: float = PASS_LINE) -> MseReport:
    """MSE of every image in ``gt_dir`` against the image of the same file name in ``out_dir``.

    Every ground-truth name must be present in ``out_dir`` and each pair must have
    the same size; otherwise a :class:`UserError` names the missing files or the
    sizes. Output images without a ground truth are listed in ``ignored``.
    """
    out_dir = existing_dir(out_dir, "output folder")
    gt_dir = existing_dir(gt_dir, "ground-truth folder")
    outs = {p.name: p for p in list_images(out_dir)}
    gts = {p.name: p for p in list_images(gt_dir)}
    if not gts:
        raise UserError(f"ground-truth folder {gt_dir} contains no images")
    missing = sorted(set(gts) - set(outs))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise UserError(
            f"{len(missing)} of the {len(gts)} ground-truth images have no output of the same name "
            f"in {out_dir}: {shown}"
        )
    per_image = {}
    for name in sorted(gts):
        ours, truth = load_rgb(outs[name]), load_rgb(gts[name])
        if ours.shape != truth.shape:
            raise UserError(
                f"{name}: size {ours.shape[2]}x{ours.shape[1]} in {out_dir} "
                f"but {truth.shape[2]}x{truth.shape[1]} in {gt_dir}"
            )
        per_image[name] = image_mse(ours, truth)
    return MseReport(per_image, pass_line, sorted(set(outs) - set(gts)))
