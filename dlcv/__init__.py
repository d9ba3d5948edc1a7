"""Shared library of the DLCV homework 2 reference implementation.

Everything the three problems share lives here once: the diffusion math
(:mod:`dlcv.diffusion`), the networks (:mod:`dlcv.models`), data readers
(:mod:`dlcv.data`), the training machinery (:mod:`dlcv.training`), image I/O
(:mod:`dlcv.imageio`) and command-line helpers (:mod:`dlcv.cli`).
"""

__version__ = "0.1.0"
