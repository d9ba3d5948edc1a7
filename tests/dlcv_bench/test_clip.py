"""dlcv_bench/clip.py: the synthetic zero-shot data is a folder the zero-shot reader accepts."""

from __future__ import annotations

from dlcv.clip_eval.zeroshot import read_zeroshot_folder
from dlcv_bench.clip import ARCHS, write_zeroshot_data


def test_synthetic_zeroshot_data_reads_as_a_course_folder(tmp_path):
    data = read_zeroshot_folder(write_zeroshot_data(tmp_path / "zs", classes=3, per_class=2, size=32, seed=0))
    assert sorted(data.targets) == [0, 0, 1, 1, 2, 2] and data.id2label[2] == "class_2"
    assert {"tiny", "vit-b32"} <= set(ARCHS)
