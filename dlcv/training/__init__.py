"""The training machinery shared by PB1, PB2 and PB3: one loop, EMA, checkpoints, DDP."""

from dlcv.training.trainer import TrainConfig, train

__all__ = ["TrainConfig", "train"]
