"""One Textual Inversion step of ours against the same step written plainly with diffusers' parts.

The oracle is the training step of diffusers' textual-inversion example, written out here
(not copied): the VAE posterior sampled and scaled, ``DDPMScheduler.add_noise`` at uniform
timesteps, the text encoder with the placeholder's row in its embedding table, the UNet,
and the MSE between predicted and true noise; the gradient is the table's placeholder row.
Ours is :func:`~dlcv.stable_diffusion.textual_inversion.textual_inversion_loss` on a
:class:`~dlcv.stable_diffusion.textual_inversion.TextualInversion` (the forward hook), fed the
same images, captions and initial embedding; its random draws (posterior noise, timesteps,
diffusion noise) are replayed from a generator with the same seed.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from dlcv.clip_tokenizer import offline_clip_tokenizer
from dlcv.stable_diffusion.textual_inversion import (
    TextualInversion,
    add_placeholder,
    init_vectors,
    prepare_for_training,
    textual_inversion_loss,
)
from dlcv.stable_diffusion.ti_data import encode_views, templates, tokenize_captions
from dlcv.stable_diffusion.tiny import build_tiny_sd

TOKEN = "<oracle>"


def _ours(sd, views, captions, init, seed):
    prepare_for_training(sd, torch.device("cpu"))
    ids = add_placeholder(sd, TOKEN, init)
    model = TextualInversion(sd, TOKEN, ids, init)
    mean, std = encode_views(sd.vae, views)
    batch = {"mean": mean, "std": std, "ids": tokenize_captions(sd.tokenizer, captions)}
    loss = textual_inversion_loss(
        model, batch, torch.Generator().manual_seed(seed), sd.schedule, sd.config.scaling_factor
    )
    loss.backward()
    return loss.detach(), model.vectors.grad[0].clone()


def _plain(sd, views, captions, init, seed):
    """diffusers' example, step by step, with the draws of ``_ours`` replayed from the seed."""
    c = sd.config
    scheduler = DDPMScheduler(
        num_train_timesteps=c.num_train_timesteps,
        beta_start=c.beta_start,
        beta_end=c.beta_end,
        beta_schedule="scaled_linear",
    )
    tokenizer = offline_clip_tokenizer()
    tokenizer.add_tokens([TOKEN])
    placeholder = tokenizer.convert_tokens_to_ids(TOKEN)
    text_encoder = sd.text_encoder
    text_encoder.resize_token_embeddings(len(tokenizer))
    table = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        table[placeholder] = init[0]
    table.requires_grad_(True)

    g = torch.Generator().manual_seed(seed)
    dist = sd.vae.encode(views).latent_dist
    e = torch.randn(dist.mean.shape, generator=g)
    latents = (dist.mean + dist.std * e) * c.scaling_factor
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(views),), generator=g)
    noise = torch.randn(latents.shape, generator=g)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    input_ids = tokenizer(
        captions,
        padding="max_length",
        truncation=True,
        max_length=tokenizer.model_max_length,
        return_tensors="pt",
    ).input_ids
    hidden = text_encoder(input_ids)[0]
    pred = sd.unet(noisy, timesteps, hidden).sample
    loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
    loss.backward()
    return loss.detach(), table.grad[placeholder].clone()


def test_one_step_matches_the_plain_diffusers_step():
    sd = build_tiny_sd(seed=3)
    oracle_sd = copy.deepcopy(sd)
    g = torch.Generator().manual_seed(0)
    views = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    captions = [t.format(TOKEN) for t in templates("object")[:3]]
    init = init_vectors(sd, "dog")

    loss, grad = _ours(sd, views, captions, init, seed=11)
    ref_loss, ref_grad = _plain(oracle_sd, views, captions, init, seed=11)

    assert float(ref_grad.abs().max()) > 1e-6  # the step does reach the placeholder
    assert abs(float(loss) - float(ref_loss)) <= 1e-5, (float(loss), float(ref_loss))
    assert float((grad - ref_grad).abs().max()) <= 1e-5, float((grad - ref_grad).abs().max())
    # a different initial embedding gives another gradient: the comparison can fail
    other_loss, other_grad = _ours(build_tiny_sd(seed=3), views, captions, init_vectors(sd, "cat"), seed=11)
    assert float((other_grad - ref_grad).abs().max()) > 1e-4 * float(ref_grad.abs().max())
