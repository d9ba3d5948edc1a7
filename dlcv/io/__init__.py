"""Files: images (:mod:`~dlcv.io.images`) and weights and checkpoints (:mod:`~dlcv.io.checkpoint`),
used by the models, the training loop and the problems alike."""
