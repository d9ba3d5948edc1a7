"""dlcv.stable_diffusion.course: hw2_3's settings (prompt folders, tokens, the training hint, the one
output check) and the plan of Textual Inversion's concepts (kinds, init words, folders)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dlcv.cli import UserError
from dlcv.stable_diffusion.course import ConceptPlan, GenerationJob, check_concept_folder
from dlcv.stable_diffusion.generation import check_output_folders

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INPUT_JSON = FIXTURES / "textual_inversion_input.json"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "textual_inversion"
    for key in ("0", "1"):
        (root / key).mkdir(parents=True)
    shutil.copy(INPUT_JSON, root / "input.json")
    return root


def test_json_concepts_take_their_kind_init_word_and_folder(tmp_path, data):
    default = tmp_path / "pb3"
    plan = ConceptPlan(default, json=str(data / "input.json"))
    got = [(c.name, c.token, c.kind, c.init_word, c.images, c.out) for c in plan.concepts()]
    assert got == [
        ("0", "<new1>", "object", "dog", data / "0", default / "0"),
        ("1", "<new2>", "style", "David Revoy", data / "1", default / "1"),
    ]
    forced = ConceptPlan(default, json=str(data / "input.json"), kind=["1=object"], keys=["1"], init_word="x")
    assert [(c.name, c.kind, c.init_word) for c in forced.concepts()] == [("1", "object", "x")]
    all_styles = ConceptPlan(default, json=str(data / "input.json"), style=True)
    assert [c.kind for c in all_styles.concepts()] == ["style", "style"]
    with pytest.raises(UserError, match="`kind` '1=texture': expected KEY=object or KEY=style"):
        ConceptPlan(default, json=str(data / "input.json"), kind=["1=texture"]).concepts()
    with pytest.raises(UserError, match="`token` is for `images`"):
        ConceptPlan(default, json=str(data / "input.json"), token="<x>").concepts()


def test_one_concept_goes_to_a_plain_folder_inside_the_default_one(tmp_path, data):
    """``token "<..>"`` without ``out``: the folder is DEFAULT/__, not DEFAULT/.. (above it)."""
    default = tmp_path / "pb3"
    (concept,) = ConceptPlan(default, images=str(data / "0"), token="<..>").concepts()
    assert (concept.out, concept.base, concept.kind, concept.init_word) == (
        default / "__",
        default,
        "object",
        "object",
    )
    styled_plan = ConceptPlan(default, images=str(data / "0"), token="<s>", style=True, out=str(tmp_path))
    (styled,) = styled_plan.concepts()
    assert (styled.out, styled.base, styled.init_word) == (tmp_path, None, "painting")
    with pytest.raises(UserError, match="`data`, `keys` and `kind` go with `json`"):
        ConceptPlan(default, images=str(data / "0"), token="<s>", keys=["0"]).concepts()


def test_a_concept_folder_holding_a_checkpoint_needs_resume_or_overwrite(tmp_path, data):
    (concept,) = ConceptPlan(tmp_path / "pb3", images=str(data / "0"), token="<a>").concepts()
    check_concept_folder(concept, resume=False, overwrite=False)
    concept.out.mkdir(parents=True)
    (concept.out / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(UserError, match="pass `resume` to continue it"):
        check_concept_folder(concept, resume=False, overwrite=False)
    check_concept_folder(concept, resume=True, overwrite=False)


def test_generation_job_lists_its_folders_tokens_and_the_command_that_trains_them(tmp_path):
    job = GenerationJob(out_dir=tmp_path / "out", ckpt="sd.ckpt", json=str(INPUT_JSON))
    folders, tokens = job.prompt_folders()
    assert [f.relative_to(tmp_path / "out").as_posix() for _, f in folders] == ["0/0", "0/1", "1/0", "1/1"]
    assert tokens == {"<new1>": "0", "<new2>": "1"}
    assert job.train_hint("<new1>") == f"python PB3/train.py --sd-ckpt sd.ckpt --json {INPUT_JSON}"
    free = GenerationJob(out_dir=tmp_path, ckpt=None, prompt="a <x> and a <y>", embeddings=["<z>=z.pt"])
    assert free.prompt_folders() == ([("a <x> and a <y>", tmp_path)], {"<z>": None, "<x>": None, "<y>": None})
    assert '--token "<x>" --out checkpoints/pb3/x' in free.train_hint("<x>")
    with pytest.raises(UserError, match="`ckpt` is required"):
        free.check()
    with pytest.raises(UserError, match="`n_images` must be positive"):
        GenerationJob(out_dir=tmp_path, ckpt=str(INPUT_JSON), prompt="a", n_images=0).check()


def test_output_folders_are_checked_once_for_links_and_foreign_images(tmp_path):
    out = tmp_path / "out"
    check_output_folders(out, [out / "0" / "0"], 25)  # nothing there yet: fine, nothing created
    assert not out.exists()
    (out / "0").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (out / "0" / "0").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UserError, match="is a symbolic link"):
        check_output_folders(out, [out / "0" / "0"], 25)
    (out / "1").mkdir()
    (out / "1" / "old.png").write_bytes(b"")
    with pytest.raises(UserError, match="1 other PNG"):
        check_output_folders(out, [out / "1"], 25)


class _Loaded(Exception):
    """Raised by the stand-in model loader: the test ends where hw2_3 loads Stable Diffusion."""


@pytest.mark.parametrize(
    "device, capability, precision, dtype",
    [
        ("cuda", (7, 5), "auto", torch.float16),  # the course's RTX 2080 Ti (Turing): no bf16 units
        ("cuda", (7, 0), "auto", torch.float16),  # Volta
        ("cuda", (8, 0), "auto", torch.bfloat16),  # Ampere and later: bf16 tensor cores
        ("cuda", (9, 0), "auto", torch.bfloat16),
        ("cuda", (8, 6), "fp32", torch.float32),  # an explicit --precision wins
        ("cuda", (7, 5), "bf16", torch.bfloat16),
        ("cpu", None, "auto", torch.float32),
    ],
)
def test_hw2_3_loads_stable_diffusion_in_the_cards_half_type(
    tmp_path, monkeypatch, device, capability, precision, dtype
):
    """What hw2_3 decides for the GPU, on a played card: fp16 below compute capability 8.0, bf16
    from it, fp32 on the CPU, an explicit --precision as given; the loader gets that dtype and the
    device (no CUDA needed: the test stops at the model load)."""
    from dlcv.stable_diffusion import course

    if capability is not None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    loaded = {}

    def load_model(ckpt, model_config, **kwargs):
        loaded.update(kwargs)
        raise _Loaded

    monkeypatch.setattr(course, "load_model", load_model)
    job = GenerationJob(
        out_dir=tmp_path / "out", ckpt=str(INPUT_JSON), prompt="a dog", device=device, precision=precision
    )
    backends = torch.backends.cuda.matmul, torch.backends.cudnn
    flags = backends[0].allow_tf32, backends[1].allow_tf32, backends[1].benchmark
    try:
        with pytest.raises(_Loaded):
            course.hw2_3(job)
    finally:  # what hw2_3 sets for a CUDA job is undone for the other tests
        backends[0].allow_tf32, backends[1].allow_tf32, backends[1].benchmark = flags
    assert loaded == {"device": torch.device(device), "dtype": dtype}
