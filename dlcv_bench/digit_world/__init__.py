"""A small text-to-image world in which Textual Inversion can be watched learning, on a CPU.

Stable Diffusion's weights are not available where this project is built and tested, so
the question "does our Textual Inversion find an embedding that makes the model draw the
concept?" is asked of a small model of the same families instead:

* a diffusers ``UNet2DConditionModel`` (three levels, cross-attention in the middle block and
  optionally lower levels, the caption also attention-pooled into the time embedding, diffusers'
  ``addition_embed_type="text"``, AdaGN time conditioning, the caption paths zeroed at the
  start) and a transformers
  ``CLIPTextModel`` (two layers, width 64, random and frozen, as SD's CLIP is frozen) with the
  project's CLIP tokenizer and its full BPE vocabulary;
* an ``AutoencoderKL`` built, not trained (:func:`pixel_autoencoder`): with one level the
  identity, so the "latents" are the pixels themselves (28x28); with two (``pool=2``) the
  encoder takes 2x2 means and the decoder repeats them (14x14 latents, a UNet four times
  cheaper per image; the digit grader still reads 0.99 of such images right). The real code
  path (encode the training views, sample latents, decode) runs unchanged, at no training cost;
* trained (:func:`train_world`) on the procedural digits of :mod:`dlcv.data.synthetic_digits`
  in both styles (MNIST-M-like and SVHN-like) with captions that name the digit ("a photo
  of a digit three") but never the style, except for one held-out digit, whose images are
  only ever captioned with the generic "a photo of a digit"-type captions. Part of the other
  digits' images get generic captions too, and the unconditional caption ("", for
  classifier-free guidance) is given to images of that same generic group, so that guidance
  does not by itself favour the held-out digit. Captions may also carry words that describe
  the image without naming its style or its digit, as SD's captions describe what a picture
  looks like: its look (:data:`APPEARANCE_WORDS`, measured from the pixels: smooth or grainy,
  pale or vivid) and its digit's shape (:data:`SHAPE_WORDS`, measured from the digit's strokes,
  the held-out digit's too: open or looped, top- or bottom-heavy, narrow- or broad-based), and
  words that say nothing about it (:func:`filler_words`). Without descriptions no token can
  steer a style (the caption would carry nothing about it) and a token for the held-out digit
  only finds the nearest named digit; without filler words the world reads any word it never
  saw as a description. The model can draw the held-out digit and both styles but has no word
  for any of them. The UNet predicts
  the noise, as SD's does; its error is weighted like an x0 error (``1/SNR``, clipped) at
  high noise, the band where only the caption tells what to draw.

Training such a world takes longer than the demo's minutes on a CPU, so a trained one ships
in ``dlcv_bench/digit_world/shipped/`` (:data:`SHIPPED_WORLD`, :func:`export_world`,
:func:`load_shipped_world`: the UNet in float16 and the text encoder without its token table,
which is redrawn from the seed, about 2.5 MB); ``python bench/bench_ti_learns.py --train-world``
trains it again from scratch. How far a world listens to its captions is what limits the check:
``--world-only`` prints its named-digit rate (images of "a photo of a digit three" etc.
graded), and ``docs/ti_world.md`` keeps what was measured on the way.

The world is saved as a diffusers folder (``unet/ vae/ text_encoder/ tokenizer/ scheduler/``),
so ``PB3/train.py --sd-ckpt WORLD`` and the generation path of ``PB3/inference.py`` load it
as they load Stable Diffusion. ``bench/bench_ti_learns.py`` writes it and runs the check.

It is bench and test material, not part of the product package: one job per module,
:mod:`~dlcv_bench.digit_world.model` (the networks), :mod:`~dlcv_bench.digit_world.captions` (the
caption grammar), :mod:`~dlcv_bench.digit_world.data` (the images and the training set),
:mod:`~dlcv_bench.digit_world.train` (training the UNet) and :mod:`~dlcv_bench.digit_world.store`
(world folders, the shipped form); their names are importable from here. The check of
``make demo-ti`` that runs in the world is :mod:`dlcv_bench.digit_world.check` (imported by itself:
it uses this package).
"""

from __future__ import annotations

from dlcv_bench.digit_world.captions import (
    APPEARANCE_WORDS,
    DESCRIPTIONS,
    DIGIT_WORDS,
    GENERIC_WORD,
    SHAPE_WORDS,
    WORLD_TEMPLATES,
    appearance,
    caption,
    filler_words,
    shape,
    world_captions,
)
from dlcv_bench.digit_world.data import (
    STYLES,
    WorldData,
    render_digits,
    world_data,
)
from dlcv_bench.digit_world.model import (
    SIZE,
    TOKEN_SCALE,
    build_world,
    encode_images,
    pixel_autoencoder,
    silence_captions,
    through_autoencoder,
    token_table,
    world_config,
)
from dlcv_bench.digit_world.store import (
    SHIPPED_WORLD,
    export_world,
    load_shipped_world,
    save_world,
)
from dlcv_bench.digit_world.train import (
    WorldTraining,
    train_world,
)

__all__ = [
    "APPEARANCE_WORDS",
    "DESCRIPTIONS",
    "DIGIT_WORDS",
    "GENERIC_WORD",
    "SHAPE_WORDS",
    "SHIPPED_WORLD",
    "SIZE",
    "STYLES",
    "TOKEN_SCALE",
    "WORLD_TEMPLATES",
    "WorldData",
    "WorldTraining",
    "appearance",
    "build_world",
    "caption",
    "encode_images",
    "export_world",
    "filler_words",
    "load_shipped_world",
    "pixel_autoencoder",
    "render_digits",
    "save_world",
    "shape",
    "silence_captions",
    "through_autoencoder",
    "token_table",
    "train_world",
    "world_captions",
    "world_config",
    "world_data",
]
