"""The check of ``make demo-ti`` (``bench/bench_ti_learns.py``, :func:`check`): Textual Inversion
learns a concept on a CPU, in the digit world, with Problem 3's own jobs.

1. Takes a small text-to-image world (:mod:`dlcv_bench.digit_world`: a diffusers
   ``UNet2DConditionModel`` with cross-attention and a transformers ``CLIPTextModel`` with the
   project's CLIP tokenizer, on the 2x2 means of the 28x28 pixels through a built
   ``AutoencoderKL``), trained on the procedural digits in both styles. Captions name the
   digit ("a photo of a digit three") and may describe its look (smooth or grainy, pale or
   vivid) and its shape (open or looped, top- or bottom-heavy, narrow- or broad-based, measured
   from its strokes), and carry a word that says nothing about it, but never name the style,
   and the held-out digit (seven) only ever gets generic captions ("a photo of a digit", "a
   photo of an open top-heavy digit"): the model can draw it, and both styles, but has no word
   for them. The world ships in ``dlcv_bench/digit_world/shipped/`` (training it takes longer
   than the demo: ``train_world`` does, with the recipe of :class:`Settings`, and
   ``export_world`` writes it in the shipped form); it is written as a diffusers folder
   to OUT/world and reused by later runs. How far it follows its words is measured first:
   images of "a photo of a digit three" etc. (every digit but the held-out one), graded (the
   named-digit rate).
2. Trains two small classifiers with the digit grader's machinery: digits (both styles) and
   styles (MNIST-M-like vs SVHN-like), on procedural digits as the world draws them (through
   its autoencoder), the only view in which a grader can judge the world's images.
3. Runs ``PB3/train.py``'s job (:func:`dlcv.stable_diffusion.ti_job.learn_concepts`: loss, hook,
   templates, checkpointing, one ``images`` folder, ``learned_embeds.safetensors``) on 5 images of
   the held-out digit (``<new1>``, an object initialised from "digit") and on 5 SVHN-like images of
   mixed digits (``<new2>``, a style initialised from "photo"), two vectors per token.
4. Generates through ``PB3/inference.py``'s job (:func:`dlcv.stable_diffusion.course.hw2_3`, guided
   DDIM) from "a photo of <new1>" and "the digit
   five in the style of <new2>", with the token at its initial embedding (before) and learned
   (after), and grades the images: the held-out digit's rate for the object; the SVHN-like rate
   (and the rate of fives) for the style.

Ends with ``TI object: before = 0.xx, after = 0.yy`` and ``TI style: before = 0.xx, after = 0.yy``;
writes OUT/ti_learns.png (rows: object before, after; style before, after) and OUT/results.json.
Every length is a number of steps and every draw is seeded, so a run repeats.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dlcv.cli import ArgumentError
from dlcv.io.checkpoint import load_weights
from dlcv.io.images import list_images, load_rgb, save_grid, save_png
from dlcv.stable_diffusion import generation as sampling
from dlcv.stable_diffusion.course import ConceptPlan, GenerationJob, hw2_3
from dlcv.stable_diffusion.embeddings import LEARNED_EMBEDS, token_stem
from dlcv.stable_diffusion.loading import StableDiffusion, load_stable_diffusion
from dlcv.stable_diffusion.textual_inversion import TIConfig, init_vectors, save_learned_embeds
from dlcv.stable_diffusion.ti_data import Augmentation
from dlcv.stable_diffusion.ti_job import LearnJob, default_warmup, learn_concepts
from dlcv.training import TrainConfig
from dlcv_bench import digit_world as world

# The digit grader's machinery (the only imports from the PB1 side of the package).
from dlcv.digits.classifiers import load_digit_classifier, save_digit_classifier  # isort: skip
from dlcv.digits.grader_training import train_digit_classifier  # isort: skip
from dlcv.digits.grading import predict  # isort: skip

OBJECT_TOKEN, STYLE_TOKEN = "<new1>", "<new2>"
OBJECT_INIT, STYLE_INIT = world.GENERIC_WORD, "photo"
OBJECT_PROMPT = f"a photo of {OBJECT_TOKEN}"
STYLE_DIGIT = 5
STYLE_PROMPT = f"the digit {world.DIGIT_WORDS[STYLE_DIGIT]} in the style of {STYLE_TOKEN}"
STYLE_IMAGE_DIGITS = (1, 2, 3, 4, 9)  # the style's 5 images: mixed digits, SVHN-like (docs/ti_world.md)
SVHN = world.STYLES.index("svhn")
GRADER_VIEW = "through the world's autoencoder"  # what the graders were trained on (older runs: raw pixels)


@dataclass
class Settings:
    """Every length of the check (steps, images); the defaults are ``make demo-ti``'s. The
    ``world_*`` fields are the shipped world's recipe (what ``--train-world`` trains)."""

    world_steps: int = 3000
    world_batch: int = 64
    world_images: int = 10000
    world_channels: tuple[int, ...] = (16, 32, 64)
    world_attention: int = 1  # UNet levels with cross-attention (besides the middle block)
    world_pool: int = 2  # the latents are the 2x2 means of the pixels in [-1, 1] (14x14)
    world_lr: float = 2e-3
    world_generic: float = 0.3  # of the named digits' images: captioned generically
    world_appearance: float = 0.5  # each appearance word (grain, colour) in a caption
    world_shape: float = 0.5  # each shape word (measured from the digit's strokes) in a caption
    world_filler: float = 0.25  # a caption carries a filler word (one that says nothing of the image)
    world_seed: int = 0
    grader_steps: int = 600
    grader_images: int = 4000
    ti_steps: int = 800
    ti_batch: int = 8
    ti_lr: float = 2e-2  # the world's token embeddings are 25x wider than CLIP's
    ti_vectors: int = 2  # vectors per token
    n_images: int = 100
    sampler_steps: int = 25
    guidance: float = 5.0
    held_out: int = 7
    seed: int = 0


def _say(text: str) -> None:
    print(text, flush=True)


def world_recipe(s: Settings) -> tuple[dict, world.WorldTraining]:
    """The world's architecture (:func:`world.world_config` arguments) and training, from ``s``."""
    arch = {"channels": list(s.world_channels), "attention_levels": s.world_attention, "pool": s.world_pool}
    opts = world.WorldTraining(
        steps=s.world_steps,
        batch_size=s.world_batch,
        lr=s.world_lr,
        n_images=s.world_images,
        held_out=s.held_out,
        generic_fraction=s.world_generic,
        appearance_fraction=s.world_appearance,
        shape_fraction=s.world_shape,
        filler_fraction=s.world_filler,
        seed=s.world_seed,
    )
    return arch, opts


def world_info(s: Settings) -> dict:
    """How a world of ``s``'s recipe is made (its ``done.json``; the shipped ``world.json``)."""
    arch, opts = world_recipe(s)
    return {"seed": s.world_seed, "architecture": arch, "training": asdict(opts)}


def write_world(sd: StableDiffusion, folder: Path, info: dict) -> Path:
    """``sd`` as a diffusers folder with ``done.json`` (``info``): what :func:`world_folder` reuses."""
    world.save_world(sd, folder)
    (folder / "done.json").write_text(json.dumps(info, indent=2))
    return folder


def world_folder(out: Path, s: Settings, train: bool = False, export: Path | None = None) -> Path:
    """The world's diffusers folder OUT/world (its ``done.json``: how it was made): reused when
    there, else the package's shipped world (:data:`world.SHIPPED_WORLD`), or with ``train``
    trained from scratch. ``export`` (where :func:`check` will write it in the shipped form)
    refuses a reused world."""
    folder = out / "world"
    if (folder / "unet" / "config.json").is_file() and (folder / "done.json").is_file():
        if export is not None:
            raise ArgumentError(f"`export_world`: {folder} already holds a world; train into a fresh `out`")
        _say(f"world: reusing {folder}")
        return folder
    if not train:
        sd, info = world.load_shipped_world()
        write_world(sd, folder, info)
        _say(
            f"world: the shipped one ({world.SHIPPED_WORLD}, {info['training']['steps']} steps; "
            f"rebuild it with --train-world) -> {folder}"
        )
        return folder
    began = time.perf_counter()
    arch, opts = world_recipe(s)
    sd = world.build_world(s.world_seed, world.world_config(**arch))
    _say(
        f"world: training the UNet ({sum(p.numel() for p in sd.unet.parameters()) / 1e6:.2f} M parameters) "
        f"for {s.world_steps} steps of {s.world_batch} images"
    )
    world.train_world(sd, out / "world_run", opts)
    seconds = round(time.perf_counter() - began)
    write_world(sd, folder, world_info(s) | {"train_seconds": seconds, "threads": torch.get_num_threads()})
    _say(f"world: {seconds} s -> {folder}")
    return folder


def build_graders(out: Path, world_dir: Path, s: Settings) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The digit classifier (both styles) and the style classifier (0 MNIST-M-like, 1 SVHN-like),
    trained and checked on procedural digits as the world can draw them (through its autoencoder,
    :func:`world.through_autoencoder`): at the full 28x28 pixels a style classifier misjudged 27%
    of real images seen at the world's resolution, and called nearly every generated image
    MNIST-M-like."""
    folder = out / "graders"
    paths = {name: folder / f"{name}_classifier.safetensors" for name in ("digit", "style")}
    if not all(p.is_file() and (load_weights(p)[1] or {}).get("seen") == GRADER_VIEW for p in paths.values()):
        began = time.perf_counter()
        n = s.grader_images
        g = torch.Generator().manual_seed(s.seed + 1)
        digits = torch.randint(10, (n + 1000,), generator=g)
        styles = torch.randint(2, (n + 1000,), generator=g)
        drawn = world.render_digits(digits.tolist(), styles.tolist(), seed=s.seed + 1)
        images = world.through_autoencoder(load_stable_diffusion(world_dir), drawn)
        for name, labels in (("digit", digits), ("style", styles)):
            shutil.rmtree(folder / f"train_{name}", ignore_errors=True)  # an older run's (stale) training
            model = train_digit_classifier(
                images[:n],
                labels[:n],
                folder / f"train_{name}",
                "lenet",
                steps=s.grader_steps,
                batch_size=128,
                device="cpu",
                seed=s.seed,
            )
            acc = float((predict(model, images[n:]) == labels[n:]).float().mean())
            save_digit_classifier(
                model, paths[name], "lenet", {"task": name, "heldout_acc": round(acc, 4), "seen": GRADER_VIEW}
            )
            _say(f"grader {name}: held-out accuracy {acc:.3f} on 1000 fresh images, as the world draws them")
        _say(f"graders: {time.perf_counter() - began:.0f} s")
    return (load_digit_classifier(paths["digit"], "lenet"), load_digit_classifier(paths["style"], "lenet"))


def concept_folders(out: Path, s: Settings) -> dict[str, Path]:
    """5 images of the held-out digit (both styles) and 5 SVHN-like images of mixed digits."""
    obj, sty = out / "concepts" / "new1", out / "concepts" / "new2"
    for folder, digits, styles in (
        (obj, [s.held_out] * 5, [0, 1, 0, 1, 1]),
        (sty, list(STYLE_IMAGE_DIGITS), [SVHN] * 5),
    ):
        if folder.is_dir():
            shutil.rmtree(folder)
        for i, image in enumerate(world.render_digits(digits, styles, seed=s.seed + 2)):
            save_png(image, folder / f"{i}.png")
    return {OBJECT_TOKEN: obj, STYLE_TOKEN: sty}


def learn(world_dir: Path, images: Path, token: str, init: str, kind: str, out: Path, s: Settings) -> Path:
    """PB3/train.py's job (:func:`~dlcv.stable_diffusion.ti_job.learn_concepts`) on ``images``; returns
    the folder holding ``learned_embeds.safetensors``."""
    done = out / "done.json"
    recipe = {"steps": s.ti_steps, "lr": s.ti_lr, "vectors": s.ti_vectors, "batch": s.ti_batch}
    if done.is_file() and json.loads(done.read_text()) == recipe:
        _say(f"{token}: reusing {out}")
        return out
    if out.exists():
        shutil.rmtree(out)
    began = time.perf_counter()
    plan = ConceptPlan(
        out.parent, images=str(images), token=token, init_word=init, style=kind == "style", out=str(out)
    )
    ti = TIConfig(
        token="",
        init_word="",
        vectors=s.ti_vectors,
        validate_images=0,
        augmentation=Augmentation(world.SIZE, crop_min=1.0, flip=False),
    )
    train = TrainConfig(
        out_dir=out,
        steps=s.ti_steps,
        batch_size=s.ti_batch,
        lr=s.ti_lr,
        grad_clip=None,
        warmup_steps=default_warmup(s.ti_steps),
        ema_decay=None,
        log_every=25,
        sample_every=500,
        ckpt_every=s.ti_steps,
        seed=s.seed,
        device="cpu",
    )
    learn_concepts(LearnJob(str(world_dir), plan, ti, train))
    done.write_text(json.dumps(recipe))
    _say(f"{token}: {s.ti_steps} steps in {time.perf_counter() - began:.0f} s")
    return out


def initial_embedding(world_dir: Path, token: str, init: str, out: Path, vectors: int = 1) -> Path:
    """The token at its initial embedding (the init word's), saved like a learned one."""
    sd = load_stable_diffusion(world_dir)
    save_learned_embeds({token: init_vectors(sd, init, vectors)}, out, {"note": f"initialised from {init!r}"})
    return out


def generate(world_dir: Path, prompt: str, embeddings: Path, out: Path, s: Settings) -> torch.Tensor:
    """``s.n_images`` images of ``prompt`` through PB3/inference.py's job (guided DDIM), as uint8."""
    if out.exists():
        shutil.rmtree(out)
    options = sampling.SamplingOptions(s.sampler_steps, s.guidance, solver="ddim", resolution=world.SIZE)
    hw2_3(
        GenerationJob(
            out_dir=out,
            ckpt=str(world_dir),
            prompt=prompt,
            embeddings=[str(embeddings)],
            defaults=[],
            n_images=s.n_images,
            sampling=options,
            seed=s.seed,
            batch_size=s.n_images,
            device="cpu",
            progress=False,
        )
    )
    return torch.stack([load_rgb(p) for p in list_images(out)])


@torch.no_grad()
def named_digit_rate(world_dir: Path, digit_clf: torch.nn.Module, s: Settings, per_digit: int = 10) -> dict:
    """How far the world itself listens to its captions: images of "a photo of a digit NAME" for
    every named digit (not the held-out one), generated with the bench's sampler (guided DDIM,
    the same code as ``PB3/inference.py``), graded by the digit classifier.

    Textual Inversion can only steer a world that follows its words: this rate is what to
    look at first (chance is about 0.1). Returns ``{"rate", "per_digit": {digit: rate}}``.
    """
    sd = load_stable_diffusion(world_dir)
    options = sampling.SamplingOptions(s.sampler_steps, s.guidance, solver="ddim", resolution=world.SIZE)
    per: dict[int, float] = {}
    for digit in (d for d in range(10) if d != s.held_out):
        images = sampling.generate(sd, world.caption(digit), per_digit, options, s.seed, per_digit)
        per[digit] = float((predict(digit_clf, images) == digit).float().mean())
    return {"rate": sum(per.values()) / len(per), "per_digit": per}


@torch.no_grad()
def denoising_gain(world_dir: Path, token: str, init: str, learned: Path, s: Settings, n: int = 48) -> dict:
    """How much better the learned token than its initial embedding explains fresh images of the
    held-out digit (not the 5 training images), against images of the other digits.

    The world's noise-prediction error with the caption "a photo of a TOKEN" at fixed timesteps
    and noise, with the token at its initial embedding and learned; the gain is the relative drop
    ``1 - learned / initial``. A token that moved toward the held-out digit gains on its images
    more than on the others'.
    """
    from dlcv.stable_diffusion.embeddings import add_embeddings, expand_placeholders, load_embedding
    from dlcv.stable_diffusion.generation import encode_text

    sd = load_stable_diffusion(world_dir)
    final = load_embedding(learned, token)[1]
    start = init_vectors(sd, init, len(final))
    ids = add_embeddings(sd.tokenizer, sd.text_encoder, {token: start})[token]
    prompt = expand_placeholders(f"a photo of a {token}", {token: len(final)})
    table = sd.text_encoder.get_input_embeddings().weight
    g = torch.Generator().manual_seed(s.seed + 3)
    others = [d for d in range(10) if d != s.held_out]
    sets = {"held_out": [s.held_out] * n, "others": [others[i % len(others)] for i in range(n)]}
    t = torch.randint(600, 950, (n,), generator=g)  # noisy enough for the caption to matter
    errors: dict[str, dict[str, float]] = {}
    for name, digits in sets.items():
        z0 = world.encode_images(sd, world.render_digits(digits, [i % 2 for i in range(n)], seed=s.seed + 4))
        noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(s.seed + 5))
        x_t = sd.schedule.add_noise(z0, noise, t)
        errors[name] = {}
        for which, vector in (("initial", start), ("learned", final)):
            table[ids] = vector.to(table.dtype)
            cond = encode_text(sd, [prompt]).expand(n, -1, -1)
            pred = sd.unet(x_t, t, encoder_hidden_states=cond).sample
            errors[name][which] = float((pred - noise).pow(2).mean())
    gains = {name: 1.0 - e["learned"] / e["initial"] for name, e in errors.items()}
    return {"errors": errors, "gain": gains}


def check(
    out: Path,
    s: Settings,
    world_only: bool = False,
    train_world: bool = False,
    export_world: Path | None = None,
) -> dict:
    """The whole check; returns the rates (also in OUT/results.json). With ``world_only``, stops
    after the world's own named-digit rate (:func:`named_digit_rate`)."""
    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    world_dir = world_folder(out, s, train_world, export_world)
    digit_clf, style_clf = build_graders(out, world_dir, s)
    named = named_digit_rate(world_dir, digit_clf, s)
    _say(
        f'world: named-digit rate {named["rate"]:.2f} ("{world.caption(0)}" etc., every digit but the '
        f"held-out one; chance 0.10)"
    )
    if export_world is not None:  # the shipped form says how it was made and what it measured
        made = json.loads((world_dir / "done.json").read_text())
        info = made | {"named_digit_rate": round(named["rate"], 3)}
        world.export_world(load_stable_diffusion(world_dir), export_world, info)
        _say(f"world: exported to {export_world}")
    if world_only:
        result = {"settings": asdict(s), "world_named_digit_rate": named}
        (out / "results.json").write_text(json.dumps(result, indent=2))
        return result
    folders = concept_folders(out, s)
    runs = {
        OBJECT_TOKEN: learn(
            world_dir,
            folders[OBJECT_TOKEN],
            OBJECT_TOKEN,
            OBJECT_INIT,
            "object",
            out / "ti" / token_stem(OBJECT_TOKEN),
            s,
        ),
        STYLE_TOKEN: learn(
            world_dir,
            folders[STYLE_TOKEN],
            STYLE_TOKEN,
            STYLE_INIT,
            "style",
            out / "ti" / token_stem(STYLE_TOKEN),
            s,
        ),
    }
    before = {
        token: initial_embedding(world_dir, token, init, out / "before" / token_stem(token), s.ti_vectors)
        for token, init in ((OBJECT_TOKEN, OBJECT_INIT), (STYLE_TOKEN, STYLE_INIT))
    }
    gain = denoising_gain(world_dir, OBJECT_TOKEN, OBJECT_INIT, runs[OBJECT_TOKEN] / LEARNED_EMBEDS, s)
    _say(
        f"{OBJECT_TOKEN}: noise-prediction error on fresh images, relative drop from the initial to the "
        f"learned embedding: held-out digit {gain['gain']['held_out']:+.3f}, other digits "
        f"{gain['gain']['others']:+.3f}"
    )
    images, rates = {}, {}
    for when, embeds in (("before", before), ("after", runs)):
        obj = generate(
            world_dir,
            OBJECT_PROMPT,
            embeds[OBJECT_TOKEN] / LEARNED_EMBEDS,
            out / "samples" / f"object_{when}",
            s,
        )
        sty = generate(
            world_dir,
            STYLE_PROMPT,
            embeds[STYLE_TOKEN] / LEARNED_EMBEDS,
            out / "samples" / f"style_{when}",
            s,
        )
        images[f"object_{when}"], images[f"style_{when}"] = obj, sty
        obj_digits = predict(digit_clf, obj)
        sty_styles, sty_digits = predict(style_clf, sty), predict(digit_clf, sty)
        rates[when] = {
            "object_held_out_rate": float((obj_digits == s.held_out).float().mean()),
            "object_digits": torch.bincount(obj_digits, minlength=10).tolist(),
            "style_svhn_rate": float((sty_styles == SVHN).float().mean()),
            "style_digit_rate": float((sty_digits == STYLE_DIGIT).float().mean()),
            "style_digits": torch.bincount(sty_digits, minlength=10).tolist(),
        }
    per_row = min(10, s.n_images)
    rows = ("object_before", "object_after", "style_before", "style_after")
    grid = torch.cat([images[k][:per_row] for k in rows])
    save_grid(grid, out / "ti_learns.png", nrow=per_row)
    result = {
        "settings": asdict(s),
        "world_named_digit_rate": named,
        "rates": rates,
        "denoising_gain": gain,
        "seconds": round(time.perf_counter() - began, 1),
        "prompts": {"object": OBJECT_PROMPT, "style": STYLE_PROMPT},
    }
    (out / "results.json").write_text(json.dumps(result, indent=2))
    b, a = rates["before"], rates["after"]
    _say(
        f"style check: digit {STYLE_DIGIT} rate before = {b['style_digit_rate']:.2f}, "
        f"after = {a['style_digit_rate']:.2f}"
    )
    _say(
        f"grid: {out / 'ti_learns.png'} (rows: object before, after; style before, after); "
        f"{result['seconds']:.0f} s in all"
    )
    _say(f"TI object: before = {b['object_held_out_rate']:.2f}, after = {a['object_held_out_rate']:.2f}")
    _say(f"TI style: before = {b['style_svhn_rate']:.2f}, after = {a['style_svhn_rate']:.2f}")
    return result
