"""What a report is made of: sections of items; an item holds blocks (figures, tables, text) and gaps.

A :class:`Gap` is something the report asks for but did not find, with where it looked and
the command that produces it; the page shows it in place of the missing piece.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TITLE = "DLCV homework 2: report"


@dataclass
class Figure:
    """An image shown on the page: a file a run wrote, or a plot the report drew.

    ``href`` (relative to the page) is set when the file has been placed next to the page.
    """

    source: Path
    caption: str
    wide: bool = False  # a strip or a plot: shown at full width rather than two side by side
    href: str = ""


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Text:
    """A paragraph; text between backticks is shown as code."""

    text: str
    warning: bool = False


@dataclass
class Code:
    """Preformatted text (a recipe, a command)."""

    text: str


@dataclass
class Gap:
    """Something missing: ``what`` is missing, ``reason`` says where the report looked (or what
    was wrong with what it found), ``how`` is the command that produces it."""

    what: str
    reason: str
    how: str = ""


Block = Figure | Table | Text | Code | Gap


@dataclass
class Item:
    """One thing the homework's report asks for, with the command and checkpoint it came from."""

    title: str
    made_by: str = ""
    checkpoint: str = ""
    blocks: list[Block] = field(default_factory=list)

    @property
    def gaps(self) -> list[Gap]:
        return [b for b in self.blocks if isinstance(b, Gap)]

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


@dataclass
class Section:
    key: str  # the HTML anchor: pb1, pb2, pb3
    title: str
    intro: str
    items: list[Item]


@dataclass
class Report:
    title: str
    generated: str  # when the report was built, as text
    sources: list[str]  # one line per run folder read
    sections: list[Section]

    @property
    def items(self) -> list[Item]:
        return [item for section in self.sections for item in section.items]

    def missing(self) -> list[str]:
        """One short phrase per gap: ``"PB2: MSE against GT"``."""
        return [
            f"{s.key.upper()}: {gap.what}" for s in self.sections for item in s.items for gap in item.gaps
        ]

    def summary(self) -> str:
        """One line: how many items are complete and what is missing."""
        items = self.items
        complete = sum(1 for item in items if not item.gaps)
        missing = self.missing()
        head = f"{complete} of {len(items)} items complete"
        return f"{head}; missing: {'; '.join(missing)}" if missing else f"{head}; nothing missing"
