"""Problem 2: DDIM on the course's pretrained face UNet.

* :mod:`~dlcv.faces.unet`: the network (``docs/face_unet.md``);
* :mod:`~dlcv.faces.ddim`: noise files to PNGs, the whole of ``hw2_2.sh``;
* :mod:`~dlcv.faces.figures`: the report's eta grid and interpolation strips;
* :mod:`~dlcv.faces.mse`: the grading measure (per-image MSE against the ground truth).
"""
