"""Problem 1's model files: named configs, building the UNet, saving and finding trained weights.

A trained model is one safetensors file (EMA weights) whose metadata holds the
config it was built from (``model``, ``diffusion``, ``sample`` sections), so
inference needs nothing but the file.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from dlcv.cli import ArgumentError, UserError
from dlcv.diffusion import NoiseSchedule, Objective, eps_model
from dlcv.diffusion.driver import COURSE
from dlcv.digits.latent_mlp import DigitLatentMLP, DigitLatentMLPConfig
from dlcv.digits.sampling import SampleRequest, SampleSettings
from dlcv.digits.unet import DigitUNet, DigitUNetConfig
from dlcv.io.checkpoint import check_finite_weights, load_weights, save_weights, state_dict_mismatch
from dlcv.io.compact import compact_state_dict, expand_state_dict
from dlcv.training import TrainConfig

CONFIG_DIR = Path(__file__).parents[1] / "configs"
PRESETS = ("default", "demo", "tiny")
MODEL_FILE = "model.safetensors"
REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout (the package is installed editable)
DEFAULT_CKPT = REPO_ROOT / "checkpoints" / "pb1" / MODEL_FILE
CKPT_ENV = "PB1_CKPT"
#: The model the repository ships (bench/ship_pb1_model.py made it; MODEL_CARD.md beside it).
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "assets" / "pb1" / MODEL_FILE


#: Keys a config may hold besides the model's (checked by :func:`load_config`).
COMMAND_LINE_ONLY = {
    "out_dir",
    "seed",
    "resume",
    "device",
    "time_budget",
    "channels_last",
    "overwrite",
}
TRAIN_KEYS = {f.name for f in fields(TrainConfig)} - COMMAND_LINE_ONLY | {
    "p_uncond",
    "min_snr_gamma",
    "timestep_sampling",
    "lognormal_mean",
    "lognormal_std",
    "balanced",
}
DIFFUSION_KEYS = {"num_train_timesteps", "beta_start", "beta_end", "prediction", "sigma_data"}
SAMPLE_KEYS = {"sampler", "steps", "guidance", "eta", "guidance_interval"}


def load_config(config: str = "default", overrides: list[str] | None = None) -> DictConfig:
    """A preset (``default``, ``demo``, ``tiny``) or a YAML file, with ``key=value`` overrides.

    Unknown keys and values out of range are refused (:class:`UserError` naming them)."""
    path = CONFIG_DIR / f"pb1_{config}.yaml" if config in PRESETS else Path(config)
    if not path.is_file():
        raise ArgumentError(f"`config`: {config} is neither a preset ({', '.join(PRESETS)}) nor a file")
    for item in overrides or []:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ArgumentError(f"`overrides` {item}: expected KEY=VALUE, e.g. train.lr=1e-3")
    try:
        cfg = OmegaConf.load(path)
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        model_config(cfg)  # unknown model keys fail here
    except (OmegaConfBaseException, TypeError, ValueError) as err:
        raise UserError(f"config {path}: {str(err).splitlines()[0]}") from None
    _check_config(cfg, path)
    return cfg


def _check_config(cfg: DictConfig, path: Path) -> None:
    for section, known in (("train", TRAIN_KEYS), ("diffusion", DIFFUSION_KEYS), ("sample", SAMPLE_KEYS)):
        unknown = sorted(set(cfg.get(section) or {}) - known)
        if unknown:
            raise UserError(
                f"config {path}: unknown key {section}.{unknown[0]} (known: {', '.join(sorted(known))})"
            )
    tc = cfg.train
    train_settings(tc, f"config {path}", out_dir=Path())  # TrainConfig's fields: checked as it checks them
    number = _number_check(f"config {path}")
    number("train", "p_uncond", tc.get("p_uncond", 0.1), lambda v: 0 <= v < 1, "in [0, 1)")
    if "balanced" in tc and not isinstance(tc.balanced, bool):
        raise UserError(f"config {path}: train.balanced must be true or false, got {tc.balanced!r}")
    check_model_config(cfg, f"config {path}")


def train_settings(section: Mapping[str, Any], where: str, **given: Any) -> TrainConfig:
    """The :class:`~dlcv.training.TrainConfig` of a config's ``train`` section (the keys that name its
    fields) and ``given`` (the rest, and what overrides the section), checked once, by TrainConfig
    itself: a bad value of the section is one :class:`UserError` line naming the config's key
    (``config tiny: train.grad_accum must be >= 1, got 0``); a bad ``given`` value keeps its
    :class:`ArgumentError` (a command line shows its flag)."""
    values = {f.name: section[f.name] for f in fields(TrainConfig) if f.name in section}
    values.update(given)
    try:
        return TrainConfig(**values)
    except ArgumentError as err:
        name = re.search(r"`(\w+)`", str(err))
        if name is None or name[1] in given or name[1] not in section:
            raise
        message = re.sub(r"`(\w+)`", r"train.\1", str(err))  # its `name` is the config's train.name
        raise UserError(f"{where}: {message}") from None


def _number_check(where: str) -> Callable[[str, str, Any, Callable[[float], bool], str], None]:
    def number(section: str, key: str, value: Any, ok: Callable[[float], bool], what: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not ok(float(value)):
            raise UserError(f"{where}: {section}.{key} must be {what}, got {value!r}")

    return number


def check_model_config(cfg: DictConfig | dict[str, Any], where: str) -> None:
    """Refuse (one :class:`UserError` line starting with ``where``) a config whose ``model``,
    ``diffusion`` or ``sample`` section is missing or would not build, sample or make sense:
    a preset or YAML file (:func:`load_config`) and the config inside a model file
    (:func:`load_model`), which anyone can edit."""
    try:
        _check_sections(cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg), where)
    except OmegaConfBaseException as err:  # an interpolation such as ${nowhere}, a bad value type
        raise UserError(f"{where}: {str(err).splitlines()[0]}") from None


def _check_sections(cfg: DictConfig, where: str) -> None:
    for section in ("model", "diffusion", "sample"):
        if not isinstance(cfg.get(section), DictConfig):
            raise UserError(f"{where}: no '{section}' section (a PB1 config has model, diffusion and sample)")
    number = _number_check(where)
    integer = lambda v: math.isfinite(v) and v == int(v)  # noqa: E731
    _check_model_section(cfg.model, where)
    d, s = cfg.diffusion, cfg.sample
    number(
        "diffusion",
        "num_train_timesteps",
        d.get("num_train_timesteps"),
        lambda v: integer(v) and 1 <= v <= 100_000,
        "an integer 1-100000",
    )
    number("diffusion", "beta_start", d.get("beta_start"), lambda v: 0 < v < 1, "in (0, 1)")
    number("diffusion", "beta_end", d.get("beta_end"), lambda v: d.beta_start <= v < 1, "in [beta_start, 1)")
    try:  # the sample section: checked as a caller's settings are (SampleSettings, once)
        SampleSettings.resolve(OmegaConf.to_container(s))
    except (ArgumentError, TypeError) as err:
        message = re.sub(r"`(\w+)`", r"sample.\1", str(err))  # its `name` is the config's sample.name
        raise UserError(f"{where}: {message}") from None
    try:
        build_objective(cfg)
    except UserError as err:
        raise UserError(f"{where}: {str(err).removeprefix('config: ')}") from None


def _check_model_section(section: DictConfig, where: str) -> None:
    """The ``model`` section: a known type, and each size a positive integer (a list of them),
    each rate in [0, 1), each flag a boolean, before anything is built from it."""
    kind = section.get("type", "unet")
    if kind not in MODEL_TYPES:
        raise UserError(f"{where}: model.type must be one of {', '.join(MODEL_TYPES)}, got {kind!r}")
    for f in fields(MODEL_TYPES[kind]):
        if f.name not in section or f.name == "type":
            continue
        value = section[f.name]
        default = f.default_factory() if f.default is MISSING else f.default
        if isinstance(default, bool):
            ok, what = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            ok, what = type(value) is int and 1 <= value <= 1_000_000, "a positive integer"
        elif isinstance(default, float):
            ok = type(value) in (int, float) and math.isfinite(value) and 0 <= value < 1
            what = "in [0, 1)"
        else:  # a list of sizes or of levels
            values = list(value) if OmegaConf.is_list(value) else None
            ok = values is not None and all(type(v) is int and 0 <= v <= 1_000_000 for v in values)
            what = "a list of integers 0 or more"
        if not ok:
            raise UserError(f"{where}: model.{f.name} must be {what}, got {value!r}")
    try:
        model_config({"model": section})
    except (TypeError, ValueError) as err:
        raise UserError(f"{where}: {str(err).splitlines()[0]}") from None


MODEL_TYPES = {"unet": DigitUNetConfig, "pca_mlp": DigitLatentMLPConfig}
DigitNet = DigitUNet | DigitLatentMLP


def model_config(cfg: DictConfig | dict[str, Any]) -> DigitUNetConfig | DigitLatentMLPConfig:
    """The ``model`` section as its dataclass: ``type: unet`` (default) or ``type: pca_mlp``."""
    section = cfg["model"]
    if isinstance(section, DictConfig):
        section = OmegaConf.to_container(section)
    kind = section.get("type", "unet")
    if kind not in MODEL_TYPES:
        raise ValueError(f"model.type must be one of {', '.join(MODEL_TYPES)}, got {kind!r}")
    return MODEL_TYPES[kind](**section)


def build_model(cfg: DictConfig | dict[str, Any]) -> DigitNet:
    """A new network from the config's ``model`` section (random weights; an empty PCA basis
    for ``pca_mlp``, which :meth:`DigitLatentMLP.fit_basis` fills from the training images)."""
    config = model_config(cfg)
    return DigitUNet(config) if isinstance(config, DigitUNetConfig) else DigitLatentMLP(config)


def build_schedule(cfg: DictConfig | dict[str, Any]) -> NoiseSchedule:
    d = cfg["diffusion"]
    return NoiseSchedule.linear(int(d["num_train_timesteps"]), float(d["beta_start"]), float(d["beta_end"]))


def build_objective(cfg: DictConfig | dict[str, Any]) -> Objective:
    """The parameterisation (``diffusion`` section) and training objective (``train`` section)."""
    try:
        return Objective.from_config(cfg["diffusion"], cfg.get("train"))
    except (TypeError, ValueError) as err:
        raise UserError(f"config: {err}") from None


class NoisePredictor(nn.Module):
    """A trained digit UNet seen as a noise predictor ``eps(x_t, t, y)``: what the samplers
    and guidance expect, whatever the network was trained to predict (``epsilon``, ``v`` or
    ``edm``, see :mod:`dlcv.diffusion.objective`). Parameters are the network's."""

    def __init__(self, net: DigitNet, schedule: NoiseSchedule, objective: Objective) -> None:
        super().__init__()
        self.net = net
        self._eps = eps_model(net, schedule, objective)

    @property
    def config(self) -> DigitUNetConfig | DigitLatentMLPConfig:
        return self.net.config

    @property
    def null_class(self) -> int:
        return self.net.null_class

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.net.latent_shape

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.net.decode(latents)

    def clamp_x0(self, x0: torch.Tensor) -> torch.Tensor:
        return self.net.clamp_x0(x0)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._eps(x, t, y)


def noise_predictor(net: DigitNet, cfg: DictConfig | dict[str, Any]) -> NoisePredictor:
    """Wrap a network built from ``cfg`` for sampling."""
    return NoisePredictor(net, build_schedule(cfg), build_objective(cfg))


def export_model(model: DigitNet, out_dir: Path, cfg: DictConfig | dict[str, Any]) -> Path:
    """Write ``out_dir/model.safetensors``: the weights plus the config needed to use them."""
    plain = OmegaConf.to_container(cfg) if isinstance(cfg, DictConfig) else dict(cfg)
    keep = {k: plain[k] for k in ("model", "diffusion", "sample")}
    return save_weights(model.state_dict(), Path(out_dir) / MODEL_FILE, keep)


def export_compact_model(source: str | Path, target: str | Path) -> Path:
    """Write a trained model file (:func:`export_model`'s) again, small: its large matrices as
    int8 with per-row scales, the rest (the PCA basis included) as fp16
    (:mod:`dlcv.io.compact`); :func:`load_model` reads either."""
    tensors, cfg = load_weights(source, expected="a .safetensors model written by PB1/train.py")
    keep = ("pca_basis", "pca_mean")  # the basis decodes every image: fp16, not int8
    return save_weights(compact_state_dict(tensors, keep=keep), target, cfg)


def resolve_checkpoint(ckpt: str | Path | None) -> Path:
    """``--ckpt``, else ``$PB1_CKPT``, else the checkout's ``checkpoints/pb1/model.safetensors``,
    else the model shipped in the package (:data:`SHIPPED_MODEL`, said in one line on stderr):
    a user's own model always wins over the shipped one."""
    chosen = ckpt or os.environ.get(CKPT_ENV)
    if not chosen and not DEFAULT_CKPT.is_file() and SHIPPED_MODEL.is_file():
        print(
            f"note: no ${CKPT_ENV} and no {DEFAULT_CKPT}: using the shipped model {SHIPPED_MODEL} "
            f"(trained on real digits; see {SHIPPED_MODEL.parent / 'MODEL_CARD.md'})",
            file=sys.stderr,
            flush=True,
        )
        return SHIPPED_MODEL
    path = Path(chosen or DEFAULT_CKPT)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise ArgumentError(
            f"no PB1 model at {path}: train one with `python PB1/train.py --data hw2_data/digits "
            f"--out {path.parent}` (or pass `ckpt` / set {CKPT_ENV})"
        )
    return path


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[NoisePredictor, dict[str, Any]]:
    """Load a model written by :func:`export_model`; returns ``(noise predictor in eval mode,
    config)``. On any device the weights are kept channels_last (faster convolutions: about
    2-3x for sampling on a CPU)."""
    tensors, cfg = load_weights(path, expected="a .safetensors model written by PB1/train.py")
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise UserError(f"{path} holds no PB1 model config: was it written by PB1/train.py?")
    check_model_config(cfg, f"{path}: its config")  # the file's config may have been edited
    tensors = expand_state_dict(tensors)  # a compact (int8 + fp16) model such as the shipped one
    try:
        with torch.device("meta"):  # shapes first: a config edited to a huge width allocates nothing
            problem = state_dict_mismatch(build_model(cfg), tensors)
    except (ValueError, RuntimeError, TypeError, ZeroDivisionError) as err:
        raise UserError(f"{path}: its config does not build a network: {str(err).splitlines()[0]}") from None
    if problem:
        raise UserError(f"{path} does not fit its own config: {problem}")
    model = build_model(cfg)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise UserError(f"{path} does not fit its own config: {str(err).splitlines()[0]}") from None
    check_finite_weights(model.state_dict(), path)
    model = model.to(device, memory_format=torch.channels_last)
    return noise_predictor(model, cfg).eval(), cfg


@dataclass
class SamplingModel:
    """A Problem 1 model ready to sample: the file it came from, its noise predictor and config,
    its schedule and the settings it is sampled with (resolved once, :meth:`SampleRequest.settings`)."""

    path: Path
    model: NoisePredictor
    config: dict[str, Any]
    schedule: NoiseSchedule
    settings: SampleSettings


def load_for_sampling(
    ckpt: str | Path | None, device: torch.device | str = "cpu", request: SampleRequest | None = None
) -> SamplingModel:
    """The model :func:`resolve_checkpoint` finds for ``ckpt``, loaded on ``device``, with the
    sampler settings of ``request`` (``None`` values: the model's config). What every job that
    samples a Problem 1 model starts from, so that ``hw2_1.sh``, the report's figures, Problem 2's
    experiments on the digit model and the benches sample one model the same way."""
    path = resolve_checkpoint(ckpt)
    model, cfg = load_model(path, device)
    settings = (request or SampleRequest()).settings(cfg)
    schedule = build_schedule(cfg)
    most = COURSE.max_steps(settings.sampler, schedule.num_train_timesteps)
    if settings.steps > most:
        raise ArgumentError(
            f"`steps` must be 1-{most} for {settings.sampler} on this model's "
            f"{schedule.num_train_timesteps} timesteps, got {settings.steps}"
        )
    return SamplingModel(path, model, cfg, schedule, settings)
