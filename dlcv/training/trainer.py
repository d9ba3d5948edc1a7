"""One training loop for every problem: AdamW, warm-up + cosine, clipping, EMA, mixed precision, DDP.

Read top to bottom, :func:`train` is the whole story: set up (device, DDP,
optimiser, schedule, EMA), maybe resume, then for each step draw a batch,
compute the loss under autocast, step, update the EMA, and now and then log,
checkpoint (atomically) and write sample figures. The autocast format follows the
project's one precision rule (:func:`dlcv.runtime.resolve_precision`: bf16 on compute
capability >= 8.0, fp16 below, fp32 on the CPU); with fp16 the loss is scaled by a
``GradScaler`` (:func:`dlcv.runtime.grad_scaler`), whose state is checkpointed. What is being learnt stays
with the caller: a ``loss_fn`` and a ``next_batch`` function.

A run owns its output folder while it trains (a lock; another run's outputs are refused
unless ``overwrite``: :mod:`dlcv.training.run_dir`), stops cleanly on SIGTERM, SIGINT and
SIGUSR1 with a checkpoint of the step it reached (:mod:`dlcv.training.preemption`), and
resumes exactly: the checkpoint holds every random state a step draws from
(:mod:`dlcv.training.rng`) and ``metrics.jsonl`` drops the records after it.
"""

from __future__ import annotations

import contextlib
import gc
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from dlcv.cli import MAX_BATCH_SIZE, PRECISIONS, ArgumentError, Interrupted, UserError, prepare_out_dir
from dlcv.io.checkpoint import load_checkpoint, remove_stale_temporaries, save_checkpoint
from dlcv.runtime import autocast, cuda_backends, grad_scaler, resolve_dtype
from dlcv.training import distributed, rng
from dlcv.training.ema import EMA
from dlcv.training.preemption import StopSignals, signal_name
from dlcv.training.run_dir import MetricsLog, RunLock, other_run_outputs, refuse_run_links, trim_metrics

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings (the model's own settings live with the caller)."""

    out_dir: Path
    steps: int | None  # None: only with time_budget, which then decides the length alone
    batch_size: int  # per process and micro-step
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear warm-up, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    grad_accum: int = 1
    ema_decay: float | None = 0.999  # None: no EMA
    log_every: int = 50
    sample_every: int = 0  # 0: only at the end
    ckpt_every: int = 1000  # 0: only at the end
    seed: int = 0
    precision: str = "auto"  # autocast format (dlcv.runtime.resolve_precision): auto = the card's half type
    resume: bool = False
    overwrite: bool = False  # start over another run: its checkpoint and metrics go (not with resume)
    device: str = "auto"
    channels_last: bool | None = None  # None: on CUDA only; True: on every device
    time_budget: float | None = None  # seconds: the budget decides the length (steps, if given, caps it)

    def __post_init__(self) -> None:
        """Refuse settings that cannot train, before any work: one :class:`ArgumentError` line
        naming the field in backticks (a command line shows its flag, e.g. ``--time-budget``)."""
        if self.steps is None and self.time_budget is None:
            raise ArgumentError("`steps`: give a number of steps, a time budget, or both")
        counts = {"steps": self.steps, "grad_accum": self.grad_accum, "log_every": self.log_every}
        for name, value in counts.items():
            if value is not None and not (_is_int(value) and value >= 1):
                raise ArgumentError(f"`{name}` must be >= 1, got {value}")
        for name in ("warmup_steps", "sample_every", "ckpt_every"):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 0):
                raise ArgumentError(f"`{name}` must be >= 0, got {value}")
        if not (_is_int(self.batch_size) and 1 <= self.batch_size <= MAX_BATCH_SIZE):
            raise ArgumentError(f"`batch_size` must be 1-{MAX_BATCH_SIZE:,}, got {self.batch_size}")
        if not (_is_number(self.lr) and self.lr > 0):
            raise ArgumentError(f"`lr` must be a positive number, got {self.lr}")
        if not (_is_number(self.weight_decay) and self.weight_decay >= 0):
            raise ArgumentError(f"`weight_decay` must be 0 or more, got {self.weight_decay}")
        if not (_is_number(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1):
            raise ArgumentError(f"`min_lr_ratio` must be in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip is not None and not (_is_number(self.grad_clip) and self.grad_clip >= 0):
            raise ArgumentError(f"`grad_clip` must be 0 or more (0, None: no clipping), got {self.grad_clip}")
        if self.ema_decay is not None and not (_is_number(self.ema_decay) and 0 <= self.ema_decay < 1):
            raise ArgumentError(f"`ema_decay` must be in [0, 1) (0, None: no EMA), got {self.ema_decay}")
        budget = self.time_budget
        if budget is not None and not (_is_number(budget) and budget > 0):
            raise ArgumentError(f"`time_budget` must be a positive number of seconds, got {budget}")
        if self.precision not in PRECISIONS:
            raise ArgumentError(f"`precision` must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def autocast_dtype(self, device: torch.device) -> torch.dtype:
        """The dtype the forward passes autocast to on ``device`` (fp32: no autocast)."""
        return resolve_dtype(self.precision, device)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate: linear warm-up over ``warmup`` steps, then cosine."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors (also inside tuples, lists and dicts) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


class Pace:
    """The measured speed of a run, for planning: steps per second over the last
    ``window`` seconds (the whole run until then), so a slow start or a busy minute
    weighs only while it lasts."""

    def __init__(self, start_step: int, window: float = 60.0) -> None:
        self.window, self.start_step = window, start_step
        self.began = time.perf_counter()
        self.marks: list[tuple[float, int]] = [(self.began, start_step)]

    def record(self, step: int) -> None:
        now = time.perf_counter()
        self.marks.append((now, step))
        while len(self.marks) > 2 and now - self.marks[1][0] >= self.window:
            self.marks.pop(0)

    @property
    def elapsed(self) -> float:
        return self.marks[-1][0] - self.began

    def steps_per_second(self) -> float:
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        return (s1 - s0) / max(t1 - t0, 1e-9)


def plan_to_budget(
    pace: Pace, budget: float, done: int, ceiling: int | None = None, warmup_steps: int = 10
) -> int | None:
    """The run's new last step for a time budget of ``budget`` seconds, re-planned at every
    step from the recent speed (``None`` until ``warmup_steps`` steps are timed): as many steps
    as fit in the time left, at least one more, at most ``ceiling`` (no cap when ``None``);
    ``done`` once past the budget."""
    if pace.elapsed >= budget:
        return done
    if done - pace.start_step < warmup_steps:
        return None
    planned = max(done + 1, done + int((budget - pace.elapsed) * pace.steps_per_second()))
    return planned if ceiling is None else min(ceiling, planned)


def _rank_generator(seed: int, rank: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed + 1_000_003 * rank + 7_919 * step)


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any, torch.Generator], torch.Tensor],
    next_batch: Callable[[torch.Generator], Any],
    cfg: TrainConfig,
    *,
    params: Iterable[nn.Parameter] | None = None,
    on_sample: Callable[[nn.Module, int], None] | None = None,
    after_step: Callable[[], None] | None = None,
    export: Callable[[nn.Module, Path, int], None] | None = None,
    config: dict[str, Any] | None = None,
) -> nn.Module:
    """Train ``model`` for ``cfg.steps`` optimiser steps, or as many as fit in
    ``cfg.time_budget`` seconds (capped by ``cfg.steps`` when both are given); return the EMA
    model (or the model).

    ``loss_fn(net, batch, generator)`` gets the (possibly DDP-wrapped) network, a
    batch already on the device and this process's CPU generator for any
    randomness; ``next_batch(generator)`` draws a batch. ``export(model, out_dir, step)``
    writes the inference artefact from the EMA weights at each checkpoint.
    ``config`` (plain data) is stored in the checkpoint for the caller.

    The output folder holds one run at a time (:class:`~dlcv.training.run_dir.RunLock`); a
    fresh run refuses a folder with another run's outputs unless ``cfg.overwrite``
    (:func:`~dlcv.training.run_dir.other_run_outputs`), and starts by removing the temporary
    files of writes that crashed. On SIGTERM, SIGINT or SIGUSR1 the run finishes its step, saves
    its checkpoint (and export) and raises :class:`~dlcv.cli.Interrupted`; every random state a
    step draws from is in the checkpoint (:mod:`dlcv.training.rng`), so a resumed run on the CPU
    ends bit for bit where the uninterrupted one would have.
    """
    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    if cfg.resume and not ckpt_path.is_file():
        raise ArgumentError(f"`resume`: no checkpoint at {ckpt_path}")
    info = distributed.setup(cfg.device)
    device = info.device
    dtype = cfg.autocast_dtype(device)
    scaler = grad_scaler(device, dtype)  # on for fp16 only

    # ---- set-up -------------------------------------------------------------------
    model.to(device)
    if cfg.channels_last or (cfg.channels_last is None and device.type == "cuda"):
        model.to(memory_format=torch.channels_last)
    trainable = [p for p in (model.parameters() if params is None else params) if p.requires_grad]
    if not trainable:
        raise ValueError("nothing to train: no parameter requires grad")
    optimizer = torch.optim.AdamW(
        trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda"
    )
    # A time budget re-plans the total as it goes (within cfg.steps if given); the cosine follows.
    ceiling = cfg.steps if cfg.steps is not None else sys.maxsize
    plan = {"total": ceiling}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, plan["total"], cfg.min_lr_ratio)
    )
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None
    net: nn.Module = model
    if info.enabled:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    prepare_out_dir(out_dir)
    refuse_run_links(out_dir)  # nothing is written through a link planted in the folder
    with contextlib.ExitStack() as held:
        held.enter_context(cuda_backends(device))  # TF32 and cuDNN autotuning while this run trains
        if info.is_main:  # one run at a time in the folder (a second one gets one line)
            held.enter_context(RunLock(out_dir))
        _claim_out_dir(out_dir, cfg, info)

        # ---- resume ---------------------------------------------------------------------
        start = 0
        generator = _rank_generator(cfg.seed, info.rank, 0)
        if cfg.resume:
            state = load_checkpoint(ckpt_path)
            _resume_from(state, ckpt_path, model, optimizer, scheduler, ema, scaler, config)
            start = int(state["step"])
            same_world = info.world_size == int(state.get("world_size", 1))
            ranks = state.get("rng") or []
            if same_world and len(ranks) == info.world_size:  # every random state, as at the save
                generator.set_state(ranks[info.rank]["generator"])
                rng.restore(ranks[info.rank], device)
            elif info.is_main and same_world:  # a checkpoint of before: rank 0's generator only
                generator.set_state(state["generator"])
            else:
                generator = _rank_generator(cfg.seed, info.rank, start)
        if start >= ceiling:
            raise ArgumentError(f"`resume`: the checkpoint is at step {start}, not below `steps` {cfg.steps}")
        if cfg.resume and info.is_main:
            trim_metrics(out_dir / METRICS_NAME, start)  # the steps after the checkpoint are done again

        def save(step: int) -> None:
            # every rank's random states (a collective: every rank saves at the same steps)
            ranks = distributed.all_gather_object(
                {"generator": generator.get_state(), **rng.capture(device)}, info
            )
            if not info.is_main:
                return
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "scheduler": scheduler.state_dict(),
                    "step": step,
                    "generator": generator.get_state(),
                    "rng": ranks,
                    "world_size": info.world_size,
                    "train_config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                    "config": config or {},
                },
                ckpt_path,
            )
            if export is not None:
                with rng.preserved(device):  # whatever it draws, the training's draws stay the same
                    export(ema.model if ema is not None else model, out_dir, step)

        def sample(step: int) -> None:
            if on_sample is None or not info.is_main:
                return
            target = ema.model if ema is not None else model
            was_training = target.training
            target.eval()
            with torch.no_grad(), autocast(device, dtype), rng.preserved(device):
                on_sample(target, step)
            target.train(was_training)

        # ---- loop -------------------------------------------------------------------
        metrics = MetricsLog(out_dir / METRICS_NAME) if info.is_main else None
        model.train()
        running, count = torch.zeros((), device=device), 0
        tick, images_since = time.perf_counter(), 0
        bar = tqdm(total=cfg.steps, initial=start, desc="train", disable=not info.is_main, dynamic_ncols=True)
        pace, announced = Pace(start), False
        step = start
        stop = held.enter_context(StopSignals())  # SIGTERM, SIGINT, SIGUSR1: stop after this step
        try:
            while step < plan["total"]:
                for micro in range(cfg.grad_accum):
                    batch = to_device(next_batch(generator), device)
                    last = micro == cfg.grad_accum - 1
                    sync = contextlib.nullcontext() if (last or not info.enabled) else net.no_sync()
                    with sync:
                        with autocast(device, dtype):
                            loss = loss_fn(net, batch, generator)
                        scaler.scale(loss / cfg.grad_accum).backward()
                    running += loss.detach().float()
                    count += 1
                if cfg.grad_clip:
                    scaler.unscale_(optimizer)  # clip the true gradients (a no-op without fp16)
                    torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
                scaler.step(optimizer)  # skipped when fp16 gradients overflowed
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                with warnings.catch_warnings():  # a step the scaler skipped still moves the schedule
                    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step\\(\\)`")
                    scheduler.step()
                if after_step is not None:
                    after_step()
                if ema is not None:
                    ema.update(model)
                done = step = step + 1
                pace.record(done)
                if cfg.time_budget is not None:
                    planned = plan_to_budget(pace, cfg.time_budget, done, cfg.steps)
                    if planned is not None:
                        plan["total"] = distributed.broadcast_int(planned, info)  # all ranks agree
                        bar.total = plan["total"]
                if not announced and pace.elapsed >= 60 and info.is_main:
                    announced, rate = True, pace.steps_per_second()
                    left = (plan["total"] - done) / max(rate, 1e-9)
                    bar.write(
                        f"measured {rate:.2f} steps/s over the first minute: {plan['total'] - done} "
                        f"steps left, about {left / 60:.1f} min more"
                    )
                images_since += cfg.batch_size * cfg.grad_accum * info.world_size
                bar.update(1)

                final = done == plan["total"]
                if done % cfg.log_every == 0 or final:
                    elapsed = time.perf_counter() - tick
                    record = {
                        "step": done,
                        "loss": running.item() / count,
                        "lr": scheduler.get_last_lr()[0],
                        "images_per_s": images_since / max(elapsed, 1e-9),
                        "elapsed_s": round(pace.elapsed, 3),  # seconds since this process began training
                    }
                    if scaler.is_enabled():
                        record["loss_scale"] = scaler.get_scale()
                    bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['images_per_s']:.0f}")
                    if metrics is not None:
                        metrics.write(record)
                    running.zero_()
                    count, tick, images_since = 0, time.perf_counter(), 0
                saved = final or bool(cfg.ckpt_every and done % cfg.ckpt_every == 0)
                if saved:
                    save(done)
                if not final:
                    signum = distributed.max_int(stop.received or 0, info)  # every rank stops at one step
                    if signum:
                        if not saved:
                            save(done)
                        distributed.barrier(info)  # rank 0 has written the checkpoint
                        raise Interrupted(_stopped_message(signum, done, cfg.steps, ckpt_path), 128 + signum)
                if final or (cfg.sample_every and done % cfg.sample_every == 0):
                    sample(done)
            distributed.barrier(info)
        finally:
            bar.close()
            if metrics is not None:
                metrics.close()
            if net is not model:  # DDP's reducer holds the process group (in a reference cycle): free it
                net = model  # now, so gloo's threads are joined while Python is alive, not at exit
                gc.collect()  # ("terminate called without an active exception", SIGABRT, at exit)
            distributed.cleanup(info)
    return ema.model if ema is not None else model


#: What a training checkpoint holds (the rest is optional).
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "step")


def _resume_from(
    state: dict[str, Any],
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    ema: EMA | None,
    scaler: torch.amp.GradScaler,
    config: dict[str, Any] | None,
) -> None:
    """Load a checkpoint's states into the run's objects, or one :class:`UserError` line when it
    is not a checkpoint of this model: another problem's, another width or configuration."""
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise ArgumentError(
            f"`resume` from {path}: not a training checkpoint of this project (it has no "
            f"{', '.join(repr(k) for k in missing)})"
        )
    mine, theirs = config or {}, state.get("config") or {}
    changed = sorted(k for k in set(mine) & set(theirs) if k != "train" and mine[k] != theirs[k])
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        if scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        int(state["step"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        why = (
            f"its {', '.join(changed)} settings differ from this run's"
            if changed
            else f"it does not fit this model ({first[:200]})"
        )
        raise ArgumentError(
            f"`resume` from {path}: it was written by another model or another problem's "
            f"training ({why}); resume with the settings it was trained with, or start "
            "again with `overwrite` or in another output folder"
        ) from None


def _claim_out_dir(out_dir: Path, cfg: TrainConfig, info: distributed.DistInfo) -> None:
    """Refuse a fresh run in a folder that holds another run's outputs (unless ``cfg.overwrite``);
    then, on rank 0, remove the temporary files of crashed writes and, for ``cfg.overwrite``,
    the earlier run's checkpoint and metrics (its other files are replaced as the run writes them)."""
    if not cfg.resume and not cfg.overwrite:
        found = other_run_outputs(out_dir)
        if found:
            raise ArgumentError(
                f"{out_dir} already holds a training run ({', '.join(found)}): pass `resume` "
                "to continue it, `overwrite` to start again over it, or choose another "
                "output folder"
            )
    distributed.barrier(info)  # every rank has looked before rank 0 changes anything
    if not info.is_main:
        return
    remove_stale_temporaries(out_dir)
    if cfg.overwrite and not cfg.resume:
        for name in (CHECKPOINT_NAME, METRICS_NAME):
            path = out_dir / name
            if path.is_dir() and not path.is_symlink():
                raise UserError(f"{path} is a folder, not a file: remove it, or choose another output folder")
            path.unlink(missing_ok=True)


def _stopped_message(signum: int, step: int, steps: int | None, ckpt_path: Path) -> str:
    """The one line of a run stopped by signal ``signum`` after ``step`` (its checkpoint)."""
    of = f" of {steps}" if steps is not None else ""
    return (
        f"{signal_name(signum)} at step {step}{of}: checkpoint saved to {ckpt_path}; run the same "
        "command again with `resume` to continue"
    )
