"""The training machinery shared by PB1, PB2 and PB3: one loop, EMA, DDP (its checkpoint files:
:mod:`dlcv.io.checkpoint`)."""

from dlcv.training.trainer import TrainConfig, train

__all__ = ["TrainConfig", "train"]
