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
   Which 5 + 5 images is the image set's (:func:`concept_images`, a rule fixed before measuring).
4. Generates through ``PB3/inference.py``'s job (:func:`dlcv.stable_diffusion.course.hw2_3`, guided
   DDIM) from "a photo of <new1>" and "the digit five in the style of <new2>", with the token at its
   initial embedding (before: the init word in each of its vectors, "a photo of digit digit") and
   learned (after), and the three controls of :func:`control_rows` with the same settings: the
   world's best words for the concept, no token (words); random vectors in the token's place
   (random); the init word once in its place (init word). It grades the images: the held-out
   digit's rate for the object; the SVHN-like rate (and the rate of fives) for the style.

Ends with ``TI object: before = 0.xx, after = 0.yy``, ``TI style: before = 0.xx, after = 0.yy`` and
``TI controls: object: words = 0.xx, random = 0.xx, init word = 0.xx; style: ...``
(:func:`controls_lines`); writes OUT/ti_learns.png (rows: object before, after; style before,
after) and OUT/results.json. :func:`check_image_sets` runs it for several image sets. Every length
is a number of steps and every draw is seeded, so a run repeats.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
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
SVHN = world.STYLES.index("svhn")
OBJECT_IMAGE_STYLES = (0, 1, 0, 1, 1)  # the object's 5 sevens: both styles
GRADER_VIEW = "through the world's autoencoder"  # what the graders were trained on (older runs: raw pixels)

#: The world's best words for each concept (the ``words`` control of :func:`control_rows`), fixed
#: before any run measured them: on each axis of :data:`world.DESCRIPTIONS`, the word the concept's
#: images carry far more often than the other images do (4,000 rendered images: sevens open 1.00,
#: top-heavy 0.99, narrow-based 0.90, the other digits 0.48, 0.09, 0.19; SVHN-like images smooth 0.78
#: and pale 0.78, MNIST-M-like 0.18 and 0.25; no other axis differs by more than 0.12). They stand
#: where the world's captions put them, in the caption the world was trained to give such an image
#: (its grammar, :func:`world.caption`: "a photo of a open ...", "the smooth pale digit five"), the
#: strongest wording of the concept the world has: the words are what the token competes with.
OBJECT_WORDS = ("open", "top-heavy", "narrow-based")
STYLE_WORDS = ("smooth", "pale")
WORDS_PROMPTS = {
    OBJECT_TOKEN: world.caption(None, "a photo of a {}", OBJECT_WORDS),
    STYLE_TOKEN: world.caption(STYLE_DIGIT, "the {}", STYLE_WORDS),
}
#: The rows of the check: the token at its initial embedding (``before``: its init word in each of
#: its vectors, "a photo of digit digit" with two) and learned (``after``), and the three controls
#: of :func:`control_rows` (``words``, ``random``, ``init_word``).
ROWS = ("before", "after", "words", "random", "init_word")


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
    image_set: int = 0  # which 5 + 5 concept images (:func:`concept_images`); the rest is unchanged


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


def concept_images(s: Settings) -> dict[str, dict]:
    """What image set ``s.image_set`` draws, a rule fixed before any set was measured: 5 sevens (the
    held-out digit) in the styles :data:`OBJECT_IMAGE_STYLES`, and 5 SVHN-like images of 5 different
    digits drawn from those that are neither the held-out digit nor the style prompt's (five), so that
    neither the sevens' nor the fives' rate rides on the style's images; both rendered with the
    set's seed. Returns per token ``{"digits", "styles", "seed"}``."""
    seed = s.seed + 2 + 100 * s.image_set
    pool = [d for d in range(10) if d not in (s.held_out, STYLE_DIGIT)]
    pick = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:5]
    return {
        OBJECT_TOKEN: {"digits": [s.held_out] * 5, "styles": list(OBJECT_IMAGE_STYLES), "seed": seed},
        STYLE_TOKEN: {"digits": [pool[i] for i in pick.tolist()], "styles": [SVHN] * 5, "seed": seed},
    }


def concept_folders(out: Path, s: Settings) -> dict[str, Path]:
    """The concept images of :func:`concept_images`, as PNGs in OUT/concepts/new1 and new2."""
    folders = {}
    for token, drawn in concept_images(s).items():
        folder = folders[token] = out / "concepts" / token_stem(token)
        if folder.is_dir():
            shutil.rmtree(folder)
        for i, image in enumerate(world.render_digits(drawn["digits"], drawn["styles"], seed=drawn["seed"])):
            save_png(image, folder / f"{i}.png")
    return folders


def learn(world_dir: Path, images: Path, token: str, init: str, kind: str, out: Path, s: Settings) -> Path:
    """PB3/train.py's job (:func:`~dlcv.stable_diffusion.ti_job.learn_concepts`) on ``images``; returns
    the folder holding ``learned_embeds.safetensors``."""
    done = out / "done.json"
    recipe = {"steps": s.ti_steps, "lr": s.ti_lr, "vectors": s.ti_vectors, "batch": s.ti_batch}
    recipe |= {"seed": s.seed, "image_set": s.image_set}
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


def typical_token_norm(sd: StableDiffusion) -> float:
    """The mean norm of the rows of the world's token-embedding table (what a word's embedding measures)."""
    return float(sd.text_encoder.get_input_embeddings().weight.detach().float().norm(dim=1).mean())


def random_embedding(sd: StableDiffusion, vectors: int, seed: int) -> torch.Tensor:
    """``vectors`` random directions (normal, from ``seed``), each scaled to :func:`typical_token_norm`:
    a token that carries no concept, as long as a word."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn((vectors, sd.text_encoder.config.hidden_size), generator=g)
    return v / v.norm(dim=1, keepdim=True) * typical_token_norm(sd)


def control_rows(world_dir: Path, out: Path, s: Settings) -> dict[str, dict[str, tuple[str, Path | None]]]:
    """The controls, each generated and graded as the learned token is: per row and token, the prompt
    and the embeddings file it needs (None: no token in the prompt).

    * ``words``: the world's best words for the concept instead of the token, no training
      (:data:`WORDS_PROMPTS`);
    * ``random``: ``s.ti_vectors`` random vectors in the token's place (:func:`random_embedding`, seed
      ``s.seed + 6 + s.image_set``, the style's 1000 more: each image set draws its own), saved in
      OUT/controls/random like a learned token;
    * ``init_word``: the init word once in the token's place ("a photo of digit"), where ``before``
      has it in each of the token's vectors ("a photo of digit digit").
    """
    sd = load_stable_diffusion(world_dir)
    rows: dict[str, dict[str, tuple[str, Path | None]]] = {"words": {}, "random": {}, "init_word": {}}
    for k, (token, init, prompt) in enumerate(
        ((OBJECT_TOKEN, OBJECT_INIT, OBJECT_PROMPT), (STYLE_TOKEN, STYLE_INIT, STYLE_PROMPT))
    ):
        folder = out / "controls" / "random" / token_stem(token)
        vector = random_embedding(sd, s.ti_vectors, s.seed + 6 + s.image_set + 1000 * k)
        save_learned_embeds({token: vector}, folder, {"note": "random, at the token table's mean norm"})
        rows["words"][token] = (WORDS_PROMPTS[token], None)
        rows["random"][token] = (prompt, folder / LEARNED_EMBEDS)
        rows["init_word"][token] = (prompt.replace(token, init), None)
    return rows


def generate(world_dir: Path, prompt: str, embeddings: Path | None, out: Path, s: Settings) -> torch.Tensor:
    """``s.n_images`` images of ``prompt`` through PB3/inference.py's job (guided DDIM), as uint8
    (``embeddings``: the learned-embeddings file of the prompt's token, None when it has none)."""
    if out.exists():
        shutil.rmtree(out)
    options = sampling.SamplingOptions(s.sampler_steps, s.guidance, solver="ddim", resolution=world.SIZE)
    hw2_3(
        GenerationJob(
            out_dir=out,
            ckpt=str(world_dir),
            prompt=prompt,
            embeddings=[] if embeddings is None else [str(embeddings)],
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
    runs: Path | None = None,
) -> dict:
    """The whole check; returns the rates of every row (:data:`ROWS`; also in OUT/results.json). With
    ``world_only``, stops after the world's own named-digit rate (:func:`named_digit_rate`). ``runs``:
    where the concept images, tokens, samples, grid and results go (default ``out``, which always
    holds the world and the graders)."""
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
    work = out if runs is None else runs
    folders = concept_folders(work, s)
    learned = {
        token: learn(world_dir, folders[token], token, init, kind, work / "ti" / token_stem(token), s)
        for token, init, kind in ((OBJECT_TOKEN, OBJECT_INIT, "object"), (STYLE_TOKEN, STYLE_INIT, "style"))
    }
    before = {
        token: initial_embedding(world_dir, token, init, work / "before" / token_stem(token), s.ti_vectors)
        for token, init in ((OBJECT_TOKEN, OBJECT_INIT), (STYLE_TOKEN, STYLE_INIT))
    }
    gain = denoising_gain(world_dir, OBJECT_TOKEN, OBJECT_INIT, learned[OBJECT_TOKEN] / LEARNED_EMBEDS, s)
    _say(
        f"{OBJECT_TOKEN}: noise-prediction error on fresh images, relative drop from the initial to the "
        f"learned embedding: held-out digit {gain['gain']['held_out']:+.3f}, other digits "
        f"{gain['gain']['others']:+.3f}"
    )
    prompts = {OBJECT_TOKEN: OBJECT_PROMPT, STYLE_TOKEN: STYLE_PROMPT}
    rows = {
        "before": {t: (prompts[t], before[t] / LEARNED_EMBEDS) for t in prompts},
        "after": {t: (prompts[t], learned[t] / LEARNED_EMBEDS) for t in prompts},
    } | control_rows(world_dir, work, s)
    norm = typical_token_norm(load_stable_diffusion(world_dir))
    for line in describe_rows(rows, s.ti_vectors, norm):
        _say(line)
    images, rates = {}, {}
    for row, concepts in rows.items():
        obj = generate(world_dir, *concepts[OBJECT_TOKEN], work / "samples" / f"object_{row}", s)
        sty = generate(world_dir, *concepts[STYLE_TOKEN], work / "samples" / f"style_{row}", s)
        images[f"object_{row}"], images[f"style_{row}"] = obj, sty
        obj_digits = predict(digit_clf, obj)
        sty_styles, sty_digits = predict(style_clf, sty), predict(digit_clf, sty)
        rates[row] = {
            "object_held_out_rate": float((obj_digits == s.held_out).float().mean()),
            "object_digits": torch.bincount(obj_digits, minlength=10).tolist(),
            "style_svhn_rate": float((sty_styles == SVHN).float().mean()),
            "style_digit_rate": float((sty_digits == STYLE_DIGIT).float().mean()),
            "style_digits": torch.bincount(sty_digits, minlength=10).tolist(),
        }
    per_row = min(10, s.n_images)
    shown = ("object_before", "object_after", "style_before", "style_after")
    grid = torch.cat([images[k][:per_row] for k in shown])
    save_grid(grid, work / "ti_learns.png", nrow=per_row)
    result = {
        "settings": asdict(s),
        "world": json.loads((world_dir / "done.json").read_text()),
        "world_named_digit_rate": named,
        "graders_heldout_acc": {
            name: load_weights(out / "graders" / f"{name}_classifier.safetensors")[1]["heldout_acc"]
            for name in ("digit", "style")
        },
        "rates": rates,
        "denoising_gain": gain,
        "seconds": round(time.perf_counter() - began, 1),
        "prompts": {"object": OBJECT_PROMPT, "style": STYLE_PROMPT},
        "rows": {row: {"object": c[OBJECT_TOKEN][0], "style": c[STYLE_TOKEN][0]} for row, c in rows.items()},
        "random_norm": round(norm, 4),
        "concept_images": {token_stem(t): drawn for t, drawn in concept_images(s).items()},
    }
    (work / "results.json").write_text(json.dumps(result, indent=2))
    _say(
        f"style check: digit {STYLE_DIGIT} rate "
        + ", ".join(f"{row.replace('_', ' ')} = {rates[row]['style_digit_rate']:.2f}" for row in ROWS)
    )
    _say(
        f"grid: {work / 'ti_learns.png'} (rows: object before, after; style before, after); "
        f"{result['seconds']:.0f} s in all"
    )
    _say(controls_lines(rates))
    return result


def expand_init(prompt: str, token: str, init: str, vectors: int) -> str:
    """``prompt`` as the ``before`` row reads it: the init word in each of the token's vectors."""
    return prompt.replace(token, " ".join([init] * vectors))


def describe_rows(
    rows: dict[str, dict[str, tuple[str, Path | None]]], vectors: int, norm: float
) -> list[str]:
    """Two lines that say what each row generates from (printed before the rates)."""

    def both(row: str) -> str:
        return ", ".join(f'"{rows[row][token][0]}"' for token in (OBJECT_TOKEN, STYLE_TOKEN))

    init = ", ".join(
        f'"{expand_init(prompt, token, word, vectors)}"'
        for token, word, prompt in (
            (OBJECT_TOKEN, OBJECT_INIT, OBJECT_PROMPT),
            (STYLE_TOKEN, STYLE_INIT, STYLE_PROMPT),
        )
    )
    return [
        f"rows: before = {init} (each token at its init word's embedding, in each of its {vectors} "
        f"vectors); after = {both('after')} (the learned tokens)",
        f"controls: words = {both('words')} (the world's best words, no token); random = {vectors} random "
        f"vectors of norm {norm:.2f} (the token table's mean) in the token's place; init word = "
        f"{both('init_word')} (once)",
    ]


def controls_lines(rates: dict[str, dict]) -> str:
    """The check's last three lines: ``TI object: before = 0.xx, after = 0.yy``, ``TI style: ...``
    and ``TI controls: object: words = 0.xx, random = 0.xx, init word = 0.xx; style: ...``."""
    keys = {"object": "object_held_out_rate", "style": "style_svhn_rate"}
    lines = [
        f"TI {name}: before = {rates['before'][key]:.2f}, after = {rates['after'][key]:.2f}"
        for name, key in keys.items()
    ]
    controls = "; ".join(
        f"{name}: " + ", ".join(f"{row.replace('_', ' ')} = {rates[row][key]:.2f}" for row in ROWS[2:])
        for name, key in keys.items()
    )
    return "\n".join([*lines, f"TI controls: {controls}"])


def check_image_sets(out: Path, s: Settings, image_sets: Sequence[int]) -> dict[int, dict]:
    """:func:`check` once per image set (:func:`concept_images`), the world and the graders of ``out``
    shared: one set runs in ``out`` itself (``make demo-ti``'s layout), several each in
    OUT/image_set_K. Returns ``{K: check's result}``."""
    results = {}
    for k in image_sets:
        runs = None if len(image_sets) == 1 else out / f"image_set_{k}"
        _say(f"image set {k}" + ("" if runs is None else f" -> {runs}"))
        results[k] = check(out, replace(s, image_set=k), runs=runs)
    return results
