"""Where the report looks for each input: run folders, the checkout's default folders, flags.

Two layouts are known. A *run folder* is what ``scripts/demo.py --out RUN`` writes
(``demo_out/``); the *checkout* layout is where the project's commands write by default
(``checkpoints/pb1``, ``outputs/clip_zeroshot``, ...) or where the README puts their output.
Each input ("slot") is looked for in every source in turn; a flag naming it wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dlcv.cli import UserError

#: slot -> (what it is, its relative path in a run folder, in the checkout)
SLOTS: dict[str, tuple[str, str, str]] = {
    "pb1_model": ("PB1 training folder (model.safetensors, metrics.jsonl)", "pb1", "checkpoints/pb1"),
    "pb1_figures": ("PB1 figures (PB1/report.py)", "figures/pb1", "figures/pb1"),
    "pb1_outputs": ("PB1 generated digits (hw2_1.sh)", "pb1_outputs", "outputs/hw2_1"),
    "pb2_figures": ("PB2 figures on the face UNet", "figures/pb2_face", "figures/pb2"),
    "pb2_digit_figures": ("PB2 figures on the PB1 digit model", "figures/pb2", "figures/pb2_digits"),
    "pb2_outputs": ("PB2 generated faces (hw2_2.sh)", "pb2_outputs", "outputs/hw2_2"),
    "pb3_embeddings": ("PB3 Textual Inversion folder (PB3/train.py)", "pb3", "checkpoints/pb3"),
    "pb3_outputs": ("PB3 generated images (hw2_3.sh)", "pb3_outputs", "outputs/hw2_3"),
    "zeroshot": ("CLIP zero-shot results (PB3/zeroshot.py)", "clip_zeroshot", "outputs/clip_zeroshot"),
}
LAYOUTS = ("run", "checkout")
DEFAULT_RUN = "demo_out"
DEFAULT_FACE_GT = "hw2_data/face/GT"
DEFAULT_TI_INPUT = "hw2_data/textual_inversion/input.json"
#: The grade files the report reads inside the output folders (the graders' --json / --save_json).
GRADES_NAME = "grades.json"


def show(path: str | Path) -> str:
    """``path`` as a user would type it here: relative to the current folder when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


@dataclass
class Source:
    """A folder the report reads, in one of the :data:`LAYOUTS`."""

    root: Path
    layout: str

    def path(self, slot: str) -> Path:
        _, run, checkout = SLOTS[slot]
        return self.root / (run if self.layout == "run" else checkout)

    def describe(self) -> str:
        if self.layout == "run":
            where = show(self.root)
            return f"{where}/ (a run folder, as `python scripts/demo.py --out {where}` writes)"
        return f"{show(self.root)}/ (the checkout's default output folders)"


def matches(root: Path, layout: str) -> list[str]:
    """The slots of ``layout`` present in ``root``."""
    return [slot for slot in SLOTS if Source(root, layout).path(slot).exists()]


def run_source(path: str | Path) -> Source:
    """A folder passed with ``--run``, in the layout it matches best; UserError if it matches none."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"--run: folder not found: {root}")
    found = {layout: matches(root, layout) for layout in LAYOUTS}
    layout = max(LAYOUTS, key=lambda name: len(found[name]))  # a tie goes to "run"
    if not found[layout]:
        hint = ""
        if (root / "model.safetensors").is_file():
            hint = "; it looks like a PB1 training folder: pass it as --pb1-model"
        expected = ", ".join(s[1] + "/" for s in SLOTS.values())
        raise UserError(
            f"{root} is not a run folder: none of {expected} is in it (`python scripts/demo.py --out DIR` "
            f"writes one; a checkout has checkpoints/pb1/, figures/pb1/, outputs/...){hint}"
        )
    return Source(root, layout)


@dataclass
class Inputs:
    """The resolved inputs: for each slot the folder found (if any) and where it was looked for."""

    sources: list[Source]
    found: dict[str, Path] = field(default_factory=dict)
    looked: dict[str, list[Path]] = field(default_factory=dict)
    given: set[str] = field(default_factory=set)  # the slots given by a flag
    face_gt: Path | None = None
    ti_input: Path | None = None

    def get(self, slot: str) -> Path | None:
        return self.found.get(slot)

    def expected(self, slot: str) -> Path:
        """Where the slot is, or else where a command should write it (the first source's place)."""
        if slot in self.found:
            return self.found[slot]
        return self.looked[slot][0] if self.looked.get(slot) else Source(Path("."), "checkout").path(slot)

    def sibling(self, slot: str, other: str) -> Path:
        """Where ``other`` belongs in the source ``slot`` was found in (the PB1 model the figures of
        a run folder were made from), even if it is not there; else wherever ``other`` is."""
        path = self.found.get(slot)
        for source in self.sources:
            if path is not None and slot not in self.given and source.path(slot) == path:
                return source.path(other)
        return self.expected(other)

    def where_looked(self, slot: str) -> str:
        places = self.looked.get(slot) or [self.expected(slot)]
        return "not found in " + ", ".join(show(p) for p in places)

    def missing(self, slot: str, otherwise: str) -> str:
        """Why ``slot`` gives nothing: where it was looked for if it was not found, else ``otherwise``."""
        return self.where_looked(slot) if slot not in self.found else otherwise


def resolve_inputs(
    runs: list[str] | None,
    overrides: dict[str, str | None],
    face_gt: str | None = None,
    ti_input: str | None = None,
    root: str | Path = ".",
) -> Inputs:
    """Find every slot.

    ``runs``: folders given with ``--run`` (each must be a run folder); without any, the
    checkout ``root`` and ``root/demo_out`` are read where they exist. ``overrides``: slot ->
    a path given by a flag (which must exist). ``face_gt`` / ``ti_input``: the ground-truth faces
    and input.json; ``None`` looks in the default places and tolerates their absence.
    """
    root = Path(root)
    if runs:
        sources = [run_source(r) for r in runs]
    else:
        sources = [Source(root, "checkout")]
        if (root / DEFAULT_RUN).is_dir():
            sources.append(Source(root / DEFAULT_RUN, "run"))
    inputs = Inputs(sources)
    for slot in SLOTS:
        given = overrides.get(slot)
        if given:
            path = Path(given)
            if not path.exists():
                raise UserError(f"--{slot.replace('_', '-')}: not found: {path}")
            if slot == "pb1_model" and path.is_file():  # the model file itself: its folder
                path = path.parent
            inputs.found[slot] = path
            inputs.given.add(slot)
            continue
        inputs.looked[slot] = [s.path(slot) for s in sources]
        for candidate in inputs.looked[slot]:
            if candidate.exists():
                inputs.found[slot] = candidate
                break
    inputs.face_gt = _optional(face_gt, root / DEFAULT_FACE_GT, "--face-gt", want_dir=True)
    inputs.ti_input = _optional(ti_input, root / DEFAULT_TI_INPUT, "--ti-input", want_dir=False)
    return inputs


def _optional(given: str | None, default: Path, flag: str, want_dir: bool) -> Path | None:
    """A path given by ``flag`` (it must exist), else ``default`` if it exists, else None."""
    if given:
        path = Path(given)
        if not (path.is_dir() if want_dir else path.is_file()):
            raise UserError(f"{flag}: {'folder' if want_dir else 'file'} not found: {path}")
        return path
    ok = default.is_dir() if want_dir else default.is_file()
    return default if ok else None
