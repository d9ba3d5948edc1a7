"""dlcv.clip_eval.sources: the --clip help and lookup import nothing heavy."""

from __future__ import annotations

import subprocess
import sys

from dlcv.clip_eval.sources import CLIP_HELP, DEFAULT_LOOKUP, PRECISIONS, WHERE_TO_PUT


def test_help_texts_name_every_place():
    for place in DEFAULT_LOOKUP:
        assert place in CLIP_HELP
    assert "checkpoints/clip-vit-base-patch32/" in WHERE_TO_PUT
    assert "~/.cache/clip/ViT-B-32.pt" in WHERE_TO_PUT
    assert PRECISIONS[0] == "auto"


def test_command_line_modules_import_without_torch():
    code = (
        "import sys, dlcv.clip_eval.sources, dlcv.clip_eval.prompts; "
        "print(sorted(m for m in ('torch', 'transformers', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
