"""Data loading: the course's digit datasets and their procedural stand-in.

:mod:`dlcv.data.digits` reads the course layout; :mod:`dlcv.data.synthetic_digits`
writes a synthetic copy of it (``python -m dlcv.data.synthetic_digits --out DIR``).
"""

from dlcv.data.digits import (
    DATASETS,
    NUM_CLASSES,
    DigitSplit,
    available_splits,
    joint_label,
    load_digit_split,
    load_joint_digits,
    split_joint,
)

__all__ = [
    "DATASETS",
    "NUM_CLASSES",
    "DigitSplit",
    "available_splits",
    "joint_label",
    "load_digit_split",
    "load_joint_digits",
    "split_joint",
]
