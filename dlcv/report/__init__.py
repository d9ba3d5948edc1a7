"""The homework report: one page with every figure and number the assignment asks for.

    python -m dlcv.report [--run demo_out] [--out report]

collects what the project's commands wrote (run folders like ``demo_out/``, or the checkout's
default output folders) and writes ``report/index.html`` and ``report/report.md`` with the
images next to them in ``report/img/``. Whatever is missing is marked, with the command that
produces it. Modules: :mod:`~dlcv.report.sources` (where each input is looked for),
:mod:`~dlcv.report.collect` (reading them into sections), :mod:`~dlcv.report.plots` (training
curves, contact sheets), :mod:`~dlcv.report.render` (HTML and Markdown),
:mod:`~dlcv.report.build` (all of it, for a program).
"""
