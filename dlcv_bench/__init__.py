"""What the benchmarks and studies of ``bench/`` (and ``scripts/``) share, outside the product package.

``bench/*.py`` are command lines (flags in, one call, figures out); the code more than one of them
uses lives here, imported like the library (``from dlcv_bench.pb1 import grade_model``), never by
path:

* :mod:`dlcv_bench.pb1`: the fixed speed reference of the Problem 1 benches, the generator/grader
  split, the digit graders and grading a model snapshot, the accuracy-against-time plot, provenance;
* :mod:`dlcv_bench.faces`: the Problem 2 sampler loops compared by the benches and a random face UNet;
* :mod:`dlcv_bench.clip`: synthetic zero-shot data and the CLIP sizes of the benches;
* :mod:`dlcv_bench.digit_world`: the small text-to-image world in which Textual Inversion is
  watched learning on a CPU (``make demo-ti``), and the check run in it.

Nothing in ``dlcv`` imports this package.
"""
