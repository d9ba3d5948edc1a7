"""The import rules of ``docs/architecture.md``, read from the source with ``ast``.

* every module and folder of ``dlcv/`` is placed in a layer (:data:`LAYERS`): a new one fails
  here until it is placed;
* a layer imports only its own and lower layers: the core (``dlcv/diffusion``) nothing else of
  the project and, beyond the standard library, only torch and tqdm (diffusers for its
  reference scheduler); the shared layers no problem; a problem not another problem
  (Problem 3's packages share ``input.json``); the report anything of ``dlcv``;
* ``dlcv`` never imports ``dlcv_bench`` (the benches' library) or an entry point, and
  ``dlcv_bench`` never imports an entry point;
* no file of the product or of the entry points edits ``sys.path`` or loads a file through
  ``importlib``/``runpy`` (such a load is an import this test could not see): ``bench/`` and
  ``scripts/`` share code through ``dlcv_bench``, never through each other's files, and the
  ``PB*`` folders never import each other.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from .conftest import REPO

ENTRY_POINTS = ("PB1", "PB2", "PB3", "evaluation", "bench", "scripts")
#: The layers from the bottom up; a module imports only from its own layer and those below.
ORDER = ("core", "shared", "problem", "report")
#: Every module and package directly under ``dlcv/``: its layer and, for a problem, which one.
LAYERS: dict[str, tuple[str, str | None]] = {
    "dlcv": ("shared", None),  # the package's __init__: a docstring and the version
    "dlcv.diffusion": ("core", None),
    "dlcv.models": ("shared", None),
    "dlcv.data": ("shared", None),
    "dlcv.training": ("shared", None),
    "dlcv.io": ("shared", None),
    "dlcv.figures": ("shared", None),
    "dlcv.runtime": ("shared", None),
    "dlcv.cli": ("shared", None),
    "dlcv.digits": ("problem", "digits"),
    "dlcv.faces": ("problem", "faces"),
    "dlcv.stable_diffusion": ("problem", "text_to_image"),
    "dlcv.clip_eval": ("problem", "text_to_image"),
    "dlcv.clip_tokenizer": ("problem", "text_to_image"),
    "dlcv.report": ("report", None),
}
#: Folders of ``dlcv/`` that hold data, not code (shipped with the package: pyproject's package-data).
DATA_FOLDERS = ("dlcv/configs", "dlcv/assets")
#: The core's third-party imports beyond torch and tqdm, and the one module allowed each.
CORE_EXTRAS = {"diffusers": "dlcv.diffusion.reference"}
#: Calls that load code this test cannot follow, or that change where imports come from.
LOADERS = (
    "importlib.import_module",
    "importlib.util.spec_from_file_location",
    "importlib.util.module_from_spec",
    "importlib.machinery.SourceFileLoader",
    "runpy.run_path",
    "runpy.run_module",
    "__import__",
    "sys.path.insert",
    "sys.path.append",
    "sys.path.extend",
)


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


def dotted(node: ast.AST) -> str:
    """``a.b.c`` for an attribute chain on a name, else ``""``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def loads(path: Path) -> list[str]:
    """The :data:`LOADERS` that ``path`` calls (through their full or their imported name), and
    any assignment to ``sys.path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    aliases = {}  # "spec_from_file_location" -> "importlib.util.spec_from_file_location"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
        elif isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname})
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            head, _, rest = name.partition(".")
            full = aliases.get(head, head) + (f".{rest}" if rest else "")
            if full in LOADERS:
                found.append(f"{full}() at line {node.lineno}")
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"sys.path = at line {node.lineno}" for t in targets if dotted(t) == "sys.path"]
    return sorted(found, key=lambda what: int(what.rsplit(" ", 1)[1]))


def within(name: str, prefixes: tuple[str, ...] | str) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def layer_of(name: str) -> tuple[str, str | None] | None:
    """The layer of a ``dlcv`` module (the longest placed prefix), ``None`` outside ``dlcv``."""
    placed = [p for p in LAYERS if within(name, p)]
    return LAYERS[max(placed, key=len)] if placed else None


def test_every_module_and_folder_of_the_package_is_placed():
    unplaced = []
    for entry in sorted((REPO / "dlcv").iterdir()):
        rel = entry.relative_to(REPO).as_posix()
        if entry.name in ("__init__.py", "__pycache__") or rel in DATA_FOLDERS:
            continue
        if entry.suffix == ".py" or (entry.is_dir() and (entry / "__init__.py").exists()):
            if module_name(entry if entry.is_dir() else entry) not in LAYERS:
                unplaced.append(rel)
        else:
            unplaced.append(rel)  # neither code nor a declared data folder
    assert not unplaced, f"place these in LAYERS or DATA_FOLDERS (and docs/architecture.md): {unplaced}"


def test_layers_import_only_their_own_and_lower_layers_and_problems_not_each_other():
    bad = []
    for path in sources("dlcv"):
        me = module_name(path)
        my_layer, my_problem = layer_of(me)
        for name in imported(path):
            theirs = layer_of(name)
            if theirs is None:
                continue
            layer, problem = theirs
            if ORDER.index(layer) > ORDER.index(my_layer):
                bad.append((me, name, f"{my_layer} imports {layer}"))
            elif layer == "problem" and my_layer == "problem" and problem != my_problem:
                bad.append((me, name, f"problem {my_problem} imports problem {problem}"))
    assert not bad


def test_the_core_imports_only_the_standard_library_torch_and_tqdm():
    bad = []
    for path in sources("dlcv/diffusion"):
        me = module_name(path)
        for name in imported(path):
            top = name.split(".")[0]
            if top == "dlcv":
                if not within(name, "dlcv.diffusion"):
                    bad.append((me, name))
            elif top in sys.stdlib_module_names or top in ("torch", "tqdm", "__future__"):
                continue
            elif CORE_EXTRAS.get(top) != me:
                bad.append((me, name))
    assert not bad


@pytest.mark.parametrize("package", ["dlcv", "dlcv_bench"])
def test_libraries_never_import_an_entry_point_and_dlcv_never_the_bench_library(package):
    banned = ENTRY_POINTS + (("dlcv_bench",) if package == "dlcv" else ())
    bad = [(module_name(p), n) for p in sources(package) for n in imported(p) if within(n, banned)]
    assert not bad


@pytest.mark.parametrize("folder", ["dlcv", "dlcv_bench", *ENTRY_POINTS])
def test_no_path_edits_or_file_loads(folder):
    bad = [(p.relative_to(REPO).as_posix(), what) for p in sources(folder) for what in loads(p)]
    assert not bad


@pytest.mark.parametrize("folder", ENTRY_POINTS)
def test_entry_points_never_import_each_others_files(folder):
    """A script is run as ``python FOLDER/x.py``, which puts FOLDER on ``sys.path``: an
    ``import y`` of a neighbour ``FOLDER/y.py`` or of another folder's file is such a reach."""
    scripts = {p.stem for f in ENTRY_POINTS for p in sources(f)}
    bad = [
        (module_name(p), n)
        for p in sources(folder)
        for n in imported(p)
        if within(n, ENTRY_POINTS) or n.split(".")[0] in scripts
    ]
    assert not bad


def test_the_rules_see_the_imports_and_the_loads(tmp_path):
    """The readers themselves: a relative import, one inside a function, and the loads."""
    names = imported(REPO / "dlcv" / "digits" / "figures.py")
    assert "dlcv.diffusion.driver.sampler_timesteps" in names and "dlcv.figures.FigureJob" in names
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import sys\nimport importlib.util as iu\nfrom importlib.util import spec_from_file_location as sf\n"
        "def f():\n    sys.path.insert(0, 'x')\n    iu.spec_from_file_location('m', 'm.py')\n"
        "    sf('m', 'm.py')\n    sys.path = []\n    importlib.util.find_spec('clip')\n"
    )
    assert loads(sample) == [
        "sys.path.insert() at line 5",
        "importlib.util.spec_from_file_location() at line 6",
        "importlib.util.spec_from_file_location() at line 7",
        "sys.path = at line 8",
    ]
    assert layer_of("dlcv.digits.model") == ("problem", "digits") and layer_of("torch") is None
    assert layer_of("dlcv.new_module") == ("shared", None)  # the package root's; placing it: the test above
    assert "dlcv.new_module" not in LAYERS


@pytest.mark.parametrize("folder", ["PB1", "PB2", "PB3"])
def test_problem_scripts_are_flags_settings_and_one_call(folder):
    """A problem's script parses flags, builds its job's settings and makes one library call: at most 150
    lines, and it defines no class (a settings object or a job of its own would be the library's)."""
    for path in sorted((REPO / folder).glob("*.py")):
        lines = len(path.read_text().splitlines())
        assert lines <= 150, f"{path.relative_to(REPO)}: {lines} lines"
        classes = [n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)]
        assert not classes, f"{path.relative_to(REPO)} defines {classes}"
