"""The rendered blocks of the README and docs/ match their results files (make docs-check)."""

import json

import pytest

import dlcv_bench.render

from ..conftest import load_script


def test_every_rendered_block_matches_its_results_file():
    render_docs = load_script("scripts/render_docs.py")
    assert render_docs.main(["--check"]) == 0
    blocks = [m["name"] for p in render_docs.documents() for m in render_docs.BLOCK.finditer(p.read_text())]
    assert {"pb1-round4", "pb1-shipped", "pb1-graders", "pb1-sweep"} <= set(blocks)
    ti_world = {
        "ti-world-strokes",
        "ti-world-appearance",
        "ti-world-probes",
        "ti-world-graders",
        "ti-world-study",
    }
    assert ti_world <= set(blocks)  # docs/ti_world.md's study figures (dlcv_bench.render_studies)


def test_a_hand_edited_block_is_caught(tmp_path, monkeypatch, capsys):
    render_docs = load_script("scripts/render_docs.py")
    results = tmp_path / "docs" / "results"
    results.mkdir(parents=True)
    run = {
        "svhn_total": 500,
        "mnistm": 0.99,
        "mnistm_correct": 495,
        "mnistm_total": 500,
        "svhn": 0.96,
        "svhn_correct": 480,
    }
    sweep = {
        "models": ["m.safetensors"],
        "sampling_seeds": [3, 4],
        "commit": "abc",
        "command": "python x.py",
        "results": [
            {
                "sampler": "dpm++",
                "steps": 50,
                "guidance": 8.0,
                "eta": 1.0,
                "guidance_interval": None,
                "runs": [run, {**run, "svhn": 0.94, "svhn_correct": 470}],
            }
        ],
    }
    (results / "pb1_sweep.json").write_text(json.dumps(sweep))
    doc = tmp_path / "docs" / "x.md"
    doc.write_text("text\n<!-- results: pb1-sweep -->\n| typed by hand |\n<!-- /results -->\nmore\n")
    monkeypatch.setattr(render_docs, "REPO", tmp_path)
    monkeypatch.setattr(dlcv_bench.render, "RESULTS", results)  # where every renderer loads from
    monkeypatch.setattr(render_docs, "FIGURES", {})
    assert render_docs.main(["--check"]) == 1
    assert "docs/x.md" in capsys.readouterr().out
    assert render_docs.main([]) == 0  # renders it
    text = doc.read_text()
    assert "0.950 (0.940 - 0.960)" in text and "0.950 [0.935, 0.962]" in text  # mean (range), pooled
    assert text.startswith("text\n") and text.endswith("more\n")
    assert render_docs.main(["--check"]) == 0
    doc.write_text("<!-- results: no-such-table -->\nx\n<!-- /results -->\n")
    with pytest.raises(SystemExit, match="no-such-table"):
        render_docs.main(["--check"])
