"""The report as one static HTML page (one small inline stylesheet, nothing fetched) and as Markdown.

Both show the same content; images are linked by their ``href`` (relative to the page).
Text between backticks is shown as code.
"""

from __future__ import annotations

import html
import re

from dlcv.report.document import Block, Code, Figure, Gap, Item, Report, Table, Text

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0;
       background: #f6f7f9; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5em 2em 4em; background: #fff; }
h1 { margin-top: 0; } h2 { border-bottom: 2px solid #ccd; padding-bottom: .2em; margin-top: 2em; }
h3 { margin: 1.6em 0 .3em; }
code { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: #eef0f3; padding: 0 .25em;
       border-radius: 3px; overflow-wrap: anywhere; }
pre { background: #eef0f3; padding: .8em 1em; overflow-x: auto; font-size: 13px; }
pre code { background: none; padding: 0; }
.meta, .prov { color: #555; font-size: 13px; }
.summary { padding: .6em 1em; border-radius: 4px; font-weight: 600; }
.summary.complete { background: #e3f4e6; } .summary.partial { background: #fff4d6; }
nav a { margin-right: 1.2em; }
.badge { font-size: 12px; padding: .1em .5em; border-radius: 3px; vertical-align: middle; }
.badge.missing { background: #f9d9d9; color: #8a1f1f; }
.badge.partial { background: #fff0c2; color: #6b5200; }
.gap { border-left: 4px solid #c0392b; background: #fcf0ef; padding: .5em .9em; margin: .6em 0; }
.warning { border-left: 4px solid #d4a017; background: #fff8e1; padding: .4em .9em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 14px; }
th, td { border: 1px solid #d5d8dd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f2f5; }
td.ok { color: #17692b; font-weight: 600; } td.bad { color: #b0261b; font-weight: 600; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: .5em 0; flex: 0 1 auto; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #e0e0e0; display: block; }
figure.half { width: 540px; }
figcaption { font-size: 13px; color: #444; max-width: 540px; }
"""

_CODE = re.compile(r"`([^`]*)`")


def inline_html(text: str) -> str:
    """Escaped text with `backtick` spans as <code>."""
    parts = _CODE.split(text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def inline_md(text: str) -> str:
    """Markdown text: angle brackets outside code escaped (``<new1>`` would be read as HTML)."""
    parts = _CODE.split(text)
    return "".join(
        f"`{p}`" if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts)
    )


def _how_html(how: str) -> str:
    return inline_html(how) if "`" in how else f"<code>{html.escape(how)}</code>"


def _how_md(how: str) -> str:
    return inline_md(how) if "`" in how else f"`{how}`"


def _cell_class(text: str) -> str:
    if text.startswith(("PASS", "pass")):
        return ' class="ok"'
    if text.startswith("FAIL"):
        return ' class="bad"'
    return ""


def _missing(item: Item) -> bool:
    """Nothing but gaps: the item was not produced at all."""
    return bool(item.gaps) and len(item.gaps) == len(item.blocks)


def _status(item: Item) -> str:
    if not item.gaps:
        return ""
    if _missing(item):
        return ' <span class="badge missing">missing</span>'
    return ' <span class="badge partial">incomplete</span>'


def _block_html(block: Block) -> str:
    if isinstance(block, Figure):
        alt = html.escape(block.caption, quote=True)
        wide = "" if block.wide else ' class="half"'
        return (
            f'<figure{wide}><img src="{html.escape(block.href, quote=True)}" alt="{alt}">'
            f"<figcaption>{inline_html(block.caption)}</figcaption></figure>"
        )
    if isinstance(block, Table):
        head = "".join(f"<th>{inline_html(h)}</th>" for h in block.header)
        body = "".join(
            "<tr>" + "".join(f"<td{_cell_class(c)}>{inline_html(c)}</td>" for c in row) + "</tr>"
            for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Text):
        return f"<p{' class=warning' if block.warning else ''}>{inline_html(block.text)}</p>"
    if isinstance(block, Code):
        return f"<pre><code>{html.escape(block.text)}</code></pre>"
    if isinstance(block, Gap):
        how = f"<br>To produce it: {_how_html(block.how)}" if block.how else ""
        return (
            f'<div class="gap"><strong>Missing:</strong> {inline_html(block.what)}: '
            f"{inline_html(block.reason)}.{how}</div>"
        )
    raise TypeError(f"unknown block {block!r}")


def _blocks_html(blocks: list[Block]) -> list[str]:
    """Blocks in order, consecutive figures side by side in one flex row."""
    out: list[str] = []
    row: list[str] = []
    for block in blocks:
        if isinstance(block, Figure):
            row.append(_block_html(block))
            continue
        if row:
            out.append(f'<div class="figures">{"".join(row)}</div>')
            row = []
        out.append(_block_html(block))
    if row:
        out.append(f'<div class="figures">{"".join(row)}</div>')
    return out


def render_html(report: Report) -> str:
    """The whole page."""
    missing = report.missing()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{html.escape(report.title)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body><main>",
        f"<h1>{html.escape(report.title)}</h1>",
        f'<p class="meta">Built {html.escape(report.generated)} by <code>python -m dlcv.report</code> '
        "from:</p>",
        '<ul class="meta">' + "".join(f"<li>{inline_html(s)}</li>" for s in report.sources) + "</ul>",
        f'<p class="summary {"partial" if missing else "complete"}">{inline_html(report.summary())}</p>',
        "<nav>"
        + "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in report.sections)
        + "</nav>",
    ]
    for section in report.sections:
        parts.append(f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>')
        parts.append(f"<p>{inline_html(section.intro)}</p>")
        for item in section.items:
            parts.append(f"<article><h3>{html.escape(item.title)}{_status(item)}</h3>")
            prov = []  # a missing item shows only its gap, which names the command
            if item.made_by and not _missing(item):
                prov.append(f"<b>Made by</b> {inline_html(item.made_by)}")
            if item.checkpoint and not _missing(item):
                prov.append(f"<b>Checkpoint</b> {inline_html(item.checkpoint)}")
            if prov:
                parts.append(f'<p class="prov">{"<br>".join(prov)}</p>')
            parts += _blocks_html(item.blocks)
            parts.append("</article>")
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _md_cell(text: str) -> str:
    return inline_md(text).replace("|", "\\|").replace("\n", " ")


def _block_md(block: Block) -> str:
    if isinstance(block, Figure):
        alt = block.caption.replace("[", "(").replace("]", ")").replace("`", "")
        return f"![{inline_md(alt)}]({block.href})\n\n*{inline_md(block.caption)}*"
    if isinstance(block, Table):
        lines = [
            "| " + " | ".join(_md_cell(h) for h in block.header) + " |",
            "|" + "---|" * len(block.header),
        ]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Text):
        return ("> **Note:** " if block.warning else "") + inline_md(block.text)
    if isinstance(block, Code):
        return f"```yaml\n{block.text}\n```"
    if isinstance(block, Gap):
        how = f"  \n> To produce it: {_how_md(block.how)}" if block.how else ""
        return f"> **Missing:** {inline_md(block.what)}: {inline_md(block.reason)}.{how}"
    raise TypeError(f"unknown block {block!r}")


def render_markdown(report: Report) -> str:
    """The same content as :func:`render_html`, as Markdown with the images linked."""
    parts = [
        f"# {report.title}",
        f"Built {report.generated} by `python -m dlcv.report` from:",
        "\n".join(f"- {inline_md(s)}" for s in report.sources),
        f"**{inline_md(report.summary())}**",
    ]
    for section in report.sections:
        parts += [f"## {section.title}", inline_md(section.intro)]
        for item in section.items:
            badge = (" *(missing)*" if _missing(item) else " *(incomplete)*") if item.gaps else ""
            parts.append(f"### {item.title}{badge}")
            prov = []
            if item.made_by and not _missing(item):
                prov.append(f"**Made by** {inline_md(item.made_by)}")
            if item.checkpoint and not _missing(item):
                prov.append(f"**Checkpoint** {inline_md(item.checkpoint)}")
            if prov:
                parts.append("  \n".join(prov))
            parts += [_block_md(b) for b in item.blocks]
    return "\n\n".join(parts) + "\n"
