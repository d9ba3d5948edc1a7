"""Library of the DLCV homework 2 reference implementation (layers: ``docs/architecture.md``).

* shared: the diffusion math (:mod:`dlcv.diffusion`), network blocks (:mod:`dlcv.models`), data
  readers (:mod:`dlcv.data`), the training loop (:mod:`dlcv.training`), image and weight files
  (:mod:`dlcv.io`), figures (:mod:`dlcv.figures`), devices and precision (:mod:`dlcv.runtime`) and
  command-line helpers (:mod:`dlcv.cli`);
* one package per problem: :mod:`dlcv.digits` (Problem 1), :mod:`dlcv.faces` (Problem 2),
  :mod:`dlcv.stable_diffusion` and :mod:`dlcv.clip_eval` (Problem 3);
* :mod:`dlcv.report`: the homework report from what the commands wrote.
"""

__version__ = "0.1.0"
