"""dlcv.stable_diffusion.generation: our guided DDIM loop equals diffusers' StableDiffusionPipeline."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dlcv.cli import UserError
from dlcv.stable_diffusion.config import sd_v1_config
from dlcv.stable_diffusion.course_input import read_input_json
from dlcv.stable_diffusion.generation import (
    DEFAULT_STEPS,
    SamplingOptions,
    check_output_folder,
    decode_latents,
    denoise,
    encode_text,
    generate,
    image_names,
    initial_latents,
    placeholders_in,
    prepare_for_inference,
    write_prompt_images,
)
from dlcv.stable_diffusion.tiny import build_tiny_sd
from dlcv_bench.sd_reference import diffusers_pipeline, sd_v1_scheduler

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PROMPT = "a photo of a dog on a hilltop"


@pytest.fixture(scope="module")
def sd():
    return prepare_for_inference(build_tiny_sd(seed=3), torch.device("cpu"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' DPM-Solver and NumPy 2
@pytest.mark.parametrize("solver, guidance, steps", [("ddim", 7.5, 4), ("ddim", 1.0, 3), ("dpm++", 5.0, 4)])
def test_equals_diffusers_pipeline(sd, solver, guidance, steps):
    pipe = diffusers_pipeline(sd, solver)  # SD v1's own scheduler settings
    options = SamplingOptions(steps=steps, guidance=guidance, solver=solver)
    z = initial_latents(sd, 2, options.check(sd), seed=0)
    cond, uncond = encode_text(sd, [PROMPT, ""]).chunk(2)
    ours = denoise(sd, z, cond, uncond, options)
    kwargs = {"height": 32, "width": 32, "num_inference_steps": steps, "guidance_scale": guidance}
    theirs = pipe([PROMPT] * 2, latents=z.clone(), output_type="latent", **kwargs).images
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    images = pipe([PROMPT] * 2, latents=z.clone(), output_type="pt", **kwargs).images
    torch.testing.assert_close((decode_latents(sd, ours) / 2 + 0.5).clamp(0, 1), images, rtol=0, atol=1e-4)


def test_one_unet_forward_per_step_with_both_halves(sd):
    """Classifier-free guidance is batched: one UNet call per step with the 2N latents, the same
    N latents twice, the empty prompt's embedding for the first half and the prompt's for the second."""
    calls = []

    def record(_module, args, kwargs, _out):
        calls.append((args[0].clone(), kwargs["encoder_hidden_states"].clone()))

    hook = sd.unet.register_forward_hook(record, with_kwargs=True)
    try:
        generate(sd, PROMPT, n_images=3, options=SamplingOptions(steps=5), batch_size=3)
    finally:
        hook.remove()
    assert [x.shape[0] for x, _ in calls] == [6] * 5
    uncond, cond = encode_text(sd, ["", PROMPT]).chunk(2)
    for x, text in calls:
        assert torch.equal(x[:3], x[3:])
        assert torch.equal(text[:3], uncond.expand(3, -1, -1))
        assert torch.equal(text[3:], cond.expand(3, -1, -1))


def test_seeded_and_independent_of_batch_size(sd):
    options = SamplingOptions(steps=2)
    a = generate(sd, PROMPT, 3, options, seed=7, batch_size=2)
    b = generate(sd, PROMPT, 3, options, seed=7, batch_size=3)
    c = generate(sd, PROMPT, 3, options, seed=8, batch_size=3)
    assert a.dtype == torch.uint8 and a.shape == (3, 3, 32, 32)
    assert (a.int() - b.int()).abs().max() <= 1  # same noise; only float rounding of batched kernels
    assert (a.int() - c.int()).abs().float().mean() > 10
    assert not torch.equal(a[0], a[1])  # each image has its own noise


def test_resolution_and_options_are_checked(sd):
    assert SamplingOptions(resolution=16).check(sd) == 16
    for bad, message in (
        (SamplingOptions(resolution=15), "multiple of 2"),
        (SamplingOptions(solver="euler"), "`solver`"),
        (SamplingOptions(steps=0), "`steps`"),
    ):
        with pytest.raises(UserError, match=message):
            bad.check(sd)
    assert generate(sd, PROMPT, 1, SamplingOptions(steps=1, resolution=16)).shape == (1, 3, 16, 16)


def _channels_last_convs(net: torch.nn.Module) -> list[bool]:
    return [
        m.weight.is_contiguous(memory_format=torch.channels_last)
        for m in net.modules()
        if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1 and m.kernel_size != (1, 1)
    ]


def test_the_gpu_path_sets_sdpa_attention_and_channels_last_on_cuda_only(monkeypatch):
    """prepare_for_inference replaces whatever attention processors a model has by SDPA
    (AttnProcessor2_0) in the UNet and the VAE, freezes the networks, and lays the convolution
    weights out channels-last on CUDA only; the sampler's batches are channels-last there too. CUDA
    is played by the device passed in (the model itself stays on the CPU)."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    for device, on_cuda in ((torch.device("cpu"), False), (torch.device("cuda"), True)):
        model = build_tiny_sd(seed=3)
        for net in (model.unet, model.vae):
            net.set_attn_processor(AttnProcessor())  # not diffusers' default: ours must replace it
        monkeypatch.setattr(model, "to", lambda *_, model=model, **__: model)  # no CUDA to move to
        prepare_for_inference(model, device)
        for net in (model.unet, model.vae):
            processors = net.attn_processors.values()
            assert processors and all(type(p) is AttnProcessor2_0 for p in processors)
            assert not net.training and not any(p.requires_grad for p in net.parameters())
            layouts = _channels_last_convs(net)
            assert layouts and layouts == [on_cuda] * len(layouts)
        assert not model.text_encoder.training
        assert SamplingOptions().driver_options(SimpleNamespace(device=device))["channels_last"] is on_cuda


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' DPM-Solver and NumPy 2
@pytest.mark.parametrize("steps", [DEFAULT_STEPS, 25, 4])
def test_dpm_solver_timesteps_are_diffusers_leading_ones(steps):
    """The default solver visits the timesteps diffusers' DPMSolverMultistepScheduler visits in
    SD's configuration (leading spacing, offset 1): 941, 894, ..., 48 for 20 steps."""
    options = SamplingOptions(steps=steps)
    assert options.solver == "dpm++"
    ours = options.timesteps(1000)
    assert ours == _dpm_reference_timesteps(steps)
    if steps == 20:
        assert ours[:2] == [941, 894] and ours[-1] == 48


def _dpm_reference_timesteps(steps: int) -> list[int]:
    scheduler = sd_v1_scheduler("dpm++", sd_v1_config())
    scheduler.set_timesteps(steps)
    return scheduler.timesteps.tolist()


@pytest.mark.parametrize("solver", ["ddim", "dpm++"])
def test_eta_adds_seeded_noise_per_image_for_both_solvers(sd, solver):
    """``eta > 0`` is a feature of both solvers (SDE-DPM-Solver++(2M) for dpm++): the images
    change, repeat with the seed and do not depend on the batch size."""
    SamplingOptions(solver=solver, eta=0.5).check_numbers()
    with pytest.raises(UserError, match="`eta` must be a number >= 0"):
        SamplingOptions(solver=solver, eta=-1.0).check_numbers()
    noisy, plain = (SamplingOptions(steps=3, solver=solver, eta=eta, resolution=16) for eta in (1.0, 0.0))
    whole = generate(sd, PROMPT, 3, noisy, seed=2, batch_size=3)
    assert torch.equal(whole, generate(sd, PROMPT, 3, noisy, seed=2, batch_size=2))
    assert not torch.equal(whole, generate(sd, PROMPT, 3, noisy, seed=5, batch_size=3))
    assert not torch.equal(whole, generate(sd, PROMPT, 3, plain, seed=2, batch_size=3))


def test_an_fp32_vae_decodes_in_fp32_inside_an_outer_autocast(sd):
    """Textual Inversion's validation images are made inside the trainer's autocast; its VAE is
    fp32 and must decode in fp32 there (fp16 autocast could overflow)."""
    z = initial_latents(sd, 2, 32, seed=4)
    plain = decode_latents(sd, z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = decode_latents(sd, z)
    assert torch.equal(inside, plain)


def test_half_precision_decode_that_overflows_is_redone_in_fp32(monkeypatch, capsys):
    """A VAE decode whose half-precision output holds NaN/inf is decoded again in fp32; the
    images equal an fp32 decode and the VAE goes back to its dtype."""
    sd = prepare_for_inference(build_tiny_sd(seed=3), torch.device("cpu")).to("cpu", torch.bfloat16)
    rounded = prepare_for_inference(build_tiny_sd(seed=3), torch.device("cpu")).to("cpu", torch.bfloat16)
    rounded.vae.float()  # the same bf16-rounded weights, computing in fp32
    z = initial_latents(sd, 3, 32, seed=1)
    reference = decode_latents(rounded, z)
    decode = sd.vae.decode

    def overflowing(z, **kwargs):  # what an fp16 overflow in the decoder's last layers looks like
        out = decode(z, **kwargs)
        if next(sd.vae.parameters()).dtype != torch.float32:
            out[0][0, 0, 0, 0] = float("inf")
        return out

    monkeypatch.setattr(sd.vae, "decode", overflowing)
    images = decode_latents(sd, z, batch=2)
    assert torch.isfinite(images).all()
    torch.testing.assert_close(images, reference, rtol=0, atol=1e-5)
    assert next(sd.vae.parameters()).dtype == torch.bfloat16
    assert "decoding again in fp32" in capsys.readouterr().err


def test_read_input_json_and_placeholders(tmp_path):
    concepts = read_input_json(FIXTURES / "textual_inversion_input.json")
    assert [(c.key, c.token, len(c.prompts)) for c in concepts] == [("0", "<new1>", 2), ("1", "<new2>", 2)]
    assert placeholders_in("a <new1> next to a <new3>, <new1> <|endoftext|>") == ["<new1>", "<new3>"]
    bad = tmp_path / "input.json"
    cases = [
        ("{", "not valid JSON"),
        ("[]", "expected an object"),
        ('{"0": {"prompt": ["x"]}}', "'0' has no 'token_name'"),
        ('{"0": {"token_name": "<a>", "prompt": []}}', "non-empty 'prompt'"),
    ]
    for content, message in cases:
        bad.write_text(content)
        with pytest.raises(UserError, match=message):
            read_input_json(bad)
    with pytest.raises(UserError, match="input json not found"):
        read_input_json(tmp_path / "missing.json")


def test_output_names_and_foreign_files(sd, tmp_path):
    assert image_names(25)[0] == "00.png" and image_names(25)[-1] == "24.png" and len(image_names(25)) == 25
    assert image_names(101)[-1] == "100.png"
    paths = write_prompt_images(
        sd, [(PROMPT, tmp_path / "a")], 2, SamplingOptions(steps=1, resolution=16), progress=False
    )
    assert [p.name for p in paths] == ["00.png", "01.png"]
    check_output_folder(tmp_path / "a", 2)  # our own names may be overwritten
    (tmp_path / "a" / "old.png").write_bytes(b"")
    with pytest.raises(UserError, match="1 other PNG"):
        check_output_folder(tmp_path / "a", 2)
