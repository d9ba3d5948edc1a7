"""dlcv_bench/render_constants.py: the README shows the constants' blocks, rendered from their files."""

from __future__ import annotations

from dlcv.stable_diffusion.generation import RTX_2080_TI_UNET_EVALS_PER_S
from dlcv_bench.pb1 import SLOW_MACHINE_STEPS_PER_S
from dlcv_bench.render import REPO
from dlcv_bench.render_constants import RENDERERS


def test_the_readme_holds_each_block_as_rendered_from_its_file():
    readme = (REPO / "README.md").read_text()
    for name, render in RENDERERS.items():
        assert f"<!-- results: {name} -->\n{render()}\n<!-- /results -->" in readme, name


def test_the_blocks_say_the_constants_the_code_uses():
    hw2_3 = RENDERERS["sd-hw2-3-time"]()
    assert f"at {RTX_2080_TI_UNET_EVALS_PER_S} evaluations/s |" in hw2_3
    assert "**DPM-Solver++(2M) 20 (default)**" in hw2_3 and ": over the limit" in hw2_3
    assert f"`SLOW_MACHINE_STEPS_PER_S` = {SLOW_MACHINE_STEPS_PER_S}" in RENDERERS["reference-speeds"]()
    assert "every step within it" in RENDERERS["sd-memory-check"]()
