"""Problem 1: class-conditional diffusion on the digits (MNIST-M and SVHN).

* :mod:`~dlcv.digits.model`: named configs, building, saving and finding the trained model;
* :mod:`~dlcv.digits.unet` / :mod:`~dlcv.digits.latent_mlp`: the two model families;
* :mod:`~dlcv.digits.sampling`: guided sampling of chosen classes and the course's output files;
* :mod:`~dlcv.digits.figures`: the report's grids, reverse processes and DDIM experiments;
* :mod:`~dlcv.digits.classifiers`, :mod:`~dlcv.digits.grading`,
  :mod:`~dlcv.digits.grader_training`: the digit classifiers that grade the outputs.
"""
