"""The command lines the report names: which script makes each input, and with which flags.

Every command the report shows (what made an item, what fills a gap) is built here, once, from
the paths of the run; ``tests/report/test_commands.py`` checks each flag against the script's own
``--help``, so that a renamed flag fails a test instead of leaving the report naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlcv.report.sources import show

#: The course's inputs, where the README puts them.
FACE_UNET = "hw2_data/face/UNet.pt"
FACE_NOISE = "hw2_data/face/noise"
SD_CKPT = "sd-v1-4.ckpt"
ZEROSHOT_DATA = "hw2_data/clip_zeroshot"
DIGIT_CLASSIFIERS = ("Classifier.pth", "resnet34_svhn.pth")  # the course's MNIST-M and SVHN graders


@dataclass(frozen=True)
class Command:
    """One command line: a script of the checkout (``PB1/train.py``, ``hw2_1.sh``), its arguments
    and the environment variables set before it; ``str()`` is what a user types."""

    script: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        runner = "bash" if self.script.endswith(".sh") else "python"
        return " ".join([*(f"{k}={v}" for k, v in self.env), runner, self.script, *self.args])

    def flags(self) -> list[str]:
        """The ``--flags`` among the arguments."""
        return [a for a in self.args if a.startswith("--")]


def _command(script: str, *args: str | Path, env: dict[str, str | Path] | None = None) -> Command:
    """A :class:`Command` with path arguments shown as a user types them (:func:`show`)."""
    shown = tuple(a if isinstance(a, str) and a.startswith("--") else show(a) for a in args)
    return Command(script, shown, tuple((k, show(v)) for k, v in (env or {}).items()))


def pb1_train(data: Path, out: Path) -> Command:
    """Problem 1's training run (``PB1/train.py``)."""
    return _command("PB1/train.py", "--data", data, "--out", out)


def pb1_figures(out_dir: Path, model: Path) -> Command:
    """Problem 1's report figures: the 10x10 grids and the reverse process (``PB1/report.py``)."""
    return _command("PB1/report.py", "--out-dir", out_dir, "--ckpt", model)


def hw2_1(out: Path, model: Path) -> Command:
    """The course's Problem 1 generation of ``model`` (``hw2_1.sh``, which reads ``PB1_CKPT``)."""
    return _command("hw2_1.sh", out, env={"PB1_CKPT": model})


def grade_digits(folder: Path, grades: Path) -> Command:
    """The digit grader on hw2_1's output with the course's classifiers, its JSON to ``grades``."""
    mnistm, svhn = DIGIT_CLASSIFIERS
    flags = ("--folder", folder, "--checkpoint", mnistm, "--svhn-checkpoint", svhn, "--json", grades)
    return _command("evaluation/digit_classifier.py", *flags)


def pb2_face_figures(out_dir: Path) -> Command:
    """Problem 2's eta grid and interpolations on the course's face UNet (``PB2/experiments.py``)."""
    flags = ("--unet", FACE_UNET, "--noise-dir", FACE_NOISE, "--out-dir", out_dir)
    return _command("PB2/experiments.py", *flags)


def pb2_digit_figures(model: Path | str, out_dir: Path | str) -> Command:
    """The same experiments on a Problem 1 model."""
    return _command("PB2/experiments.py", "--digit-ckpt", model, "--out-dir", out_dir)


def hw2_2(out: Path) -> Command:
    """The course's Problem 2 generation from the course's noises and face UNet (``hw2_2.sh``)."""
    return _command("hw2_2.sh", FACE_NOISE, out, FACE_UNET)


def face_mse(out: Path, gt: Path) -> Command:
    """The per-image MSE of hw2_2's faces against the ground truth (``evaluation/face_mse.py``)."""
    return _command("evaluation/face_mse.py", out, gt)


def zeroshot(out_dir: Path) -> Command:
    """CLIP zero-shot classification of the course's images (``PB3/zeroshot.py``)."""
    return _command("PB3/zeroshot.py", "--data", ZEROSHOT_DATA, "--output_dir", out_dir)


def pb3_train(ti_input: Path, out: Path) -> Command:
    """Textual Inversion of every concept of ``ti_input`` on Stable Diffusion (``PB3/train.py``)."""
    return _command("PB3/train.py", "--sd-ckpt", SD_CKPT, "--json", ti_input, "--out", out)


def hw2_3(ti_input: Path, out: Path) -> Command:
    """The course's Problem 3 generation (``hw2_3.sh``)."""
    return _command("hw2_3.sh", ti_input, out, SD_CKPT)


def grade_hw2_3(ti_input: Path, out: Path, grades: Path) -> Command:
    """The course's CLIP grading of hw2_3's images, its JSON to ``grades`` (``evaluation/grade_hw2_3.py``)."""
    inputs = ("--json_path", ti_input, "--input_dir", ti_input.parent)
    flags = (*inputs, "--output_dir", out, "--save_json", grades)
    return _command("evaluation/grade_hw2_3.py", *flags)
