"""Stable Diffusion v1 offline: loading, Textual Inversion embeddings, generation (Problem 3).

Modules (import them directly; this package imports nothing heavy by itself):

* :mod:`~dlcv.stable_diffusion.config`: the SD v1 architecture shipped as code (``SDConfig``,
  ``sd_v1_config``, ``tiny_config``, ``load_config`` for ``--model-config`` JSON files);
* :mod:`~dlcv.stable_diffusion.safe_load`: reading ``.ckpt`` / ``.pt`` files without running their code;
* :mod:`~dlcv.stable_diffusion.loading`: ``load_stable_diffusion(path, config, device, dtype)`` for a
  CompVis ``.ckpt`` / ``.safetensors`` or a diffusers folder -> ``StableDiffusion``;
* :mod:`~dlcv.stable_diffusion.export`: diffusers -> CompVis layout (``save_ldm_checkpoint``);
* :mod:`~dlcv.stable_diffusion.embeddings`: every Textual Inversion file format, adding tokens,
  finding learned embeddings on disk;
* :mod:`~dlcv.stable_diffusion.generation`: guided text-to-image sampling (DPM-Solver++ or DDIM,
  through the core's batched driver) and the course's output layout;
* :mod:`~dlcv.stable_diffusion.course_input`: the one reader of the course's input.json;
* :mod:`~dlcv.stable_diffusion.ti_data` / :mod:`~dlcv.stable_diffusion.textual_inversion`: Textual
  Inversion's views and captions, and its training (``LEARNED_EMBEDS`` is defined in ``embeddings``);
* :mod:`~dlcv.stable_diffusion.course`: the jobs of the course's scripts: ``hw2_3`` (``PB3/inference.py``)
  and the plan of the concepts to learn from input.json (``ConceptPlan``);
* :mod:`~dlcv.stable_diffusion.ti_job`: ``PB3/train.py``'s job (``LearnJob``, ``learn_concepts``);
* :mod:`~dlcv.stable_diffusion.tiny`: random tiny models for tests and benchmarks.
"""
