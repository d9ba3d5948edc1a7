"""The import rules of ``docs/architecture.md``, read from the source with ``ast``.

* the core (``dlcv/diffusion``) imports nothing else of the project;
* ``dlcv`` never imports the entry points (``PB*``, ``evaluation``, ``bench``, ``scripts``);
* the shared layers never import a problem's package, and the problems' packages never
  import each other (Problem 3's two packages excepted: they share ``input.json``);
* the ``PB*`` folders never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import REPO

ENTRY_POINTS = ("PB1", "PB2", "PB3", "evaluation", "bench", "scripts")
#: Each problem's packages; a problem may import its own, not another's.
PROBLEMS = {
    "digits": ("dlcv.digits",),
    "faces": ("dlcv.faces",),
    "text_to_image": ("dlcv.stable_diffusion", "dlcv.clip_eval", "dlcv.clip_tokenizer"),
}
#: The layers below the problems: they import no problem (``dlcv.report`` sits above them all).
SHARED = ("dlcv.diffusion", "dlcv.models", "dlcv.data", "dlcv.training", "dlcv.io", "dlcv.figures",
          "dlcv.runtime", "dlcv.cli")  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved), at any depth."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def problem_of(name: str) -> str | None:
    return next((problem for problem, prefixes in PROBLEMS.items() if within(name, prefixes)), None)


def test_the_core_imports_nothing_else_of_the_project():
    bad = [(module_name(p), n) for p in sources("dlcv/diffusion") for n in imported(p)
           if within(n, ("dlcv", *ENTRY_POINTS)) and not within(n, "dlcv.diffusion")]  # fmt: skip
    assert not bad


def test_the_package_never_imports_an_entry_point():
    bad = [(module_name(p), n) for p in sources("dlcv") for n in imported(p) if within(n, ENTRY_POINTS)]
    assert not bad


def test_shared_layers_import_no_problem_and_problems_not_each_other():
    bad = []
    for path in sources("dlcv"):
        me = module_name(path)
        mine = problem_of(me)
        for name in imported(path):
            theirs = problem_of(name)
            if theirs is None:
                continue
            if within(me, SHARED) or (mine is not None and theirs != mine):
                bad.append((me, name))
    assert not bad


@pytest.mark.parametrize("folder", ["PB1", "PB2", "PB3"])
def test_problem_folders_never_import_each_other(folder):
    others = tuple(f for f in ("PB1", "PB2", "PB3") if f != folder)
    siblings = {p.stem for f in others for p in sources(f)} - {p.stem for p in sources(folder)}
    bad = [(module_name(p), n) for p in sources(folder) for n in imported(p)
           if within(n, others) or n.split(".")[0] in siblings]  # fmt: skip
    assert not bad


def test_the_rules_see_the_imports():  # the parser itself: a relative import and one inside a function
    names = imported(REPO / "dlcv" / "digits" / "figures.py")
    assert "dlcv.diffusion.driver.sampler_timesteps" in names and "dlcv.figures.FigureJob" in names
    assert "dlcv.digits.model.load_model" in imported(REPO / "PB2" / "experiments.py")
