"""Render report sections as Markdown and as one self-contained HTML page."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import polars as pl

MAX_ROWS = 80


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    figure: str | None = None  # path relative to the report directory
    # (caption, table shown inline or None for a link only, CSV path relative to the report)
    tables: list[tuple[str, pl.DataFrame | None, str]] = field(default_factory=list)
    html: str = ""  # raw HTML after the paragraphs (interactive figures); not in the Markdown


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _informative(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop rows whose every float cell is null or NaN (a correlation of a constant column, a
    measure the run lacks): they say nothing and bury the rows that do."""
    floats = [c for c, t in frame.schema.items() if t.is_float()]
    if not floats:
        return frame
    return frame.filter(pl.any_horizontal([pl.col(c).is_finite() for c in floats]).fill_null(False))


def _rows(frame: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    shown = _informative(frame).head(MAX_ROWS)
    return shown.columns, [[_cell(v) for v in row] for row in shown.iter_rows()]


def markdown(title: str, intro: list[str], sections: list[Section]) -> str:
    out = [f"# {title}", "", *[p + "\n" for p in intro]]
    for section in sections:
        out += [f"## {section.title}", ""]
        out += [p + "\n" for p in section.paragraphs]
        if section.html:
            out += ["(Interactive figures: open index.html.)", ""]
        if section.figure:
            out += [f"![{section.title}]({section.figure})", ""]
        for caption, frame, csv in section.tables:
            out += [f"**{caption}** ([{csv}]({csv}))", ""]
            if frame is None:
                continue
            header, rows = _rows(frame)
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out += ["| " + " | ".join(r) + " |" for r in rows]
            if _informative(frame).height > MAX_ROWS:
                out.append(f"\n({_informative(frame).height - MAX_ROWS} more rows in {csv})")
            out.append("")
    return "\n".join(out)


_STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; }
img { max-width: 100%; border: 1px solid #eee; }
.scroll { max-width: 100%; overflow-x: auto; }
"""


def html_page(title: str, intro: list[str], sections: list[Section], head: str = "",
              lead: str = "", style: str = "") -> str:
    """`head`: raw HTML for <head> (e.g. one inline script); `lead`: raw HTML placed right after
    the title, before the intro and the sections (the findings)."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_STYLE}{style}</style>{head}</head><body>",
        f"<h1>{esc(title)}</h1>",
        lead,
        *[f"<p>{esc(p)}</p>" for p in intro],
    ]
    for section in sections:
        out.append(f"<h2>{esc(section.title)}</h2>")
        out += [f"<p>{esc(p)}</p>" for p in section.paragraphs]
        out.append(section.html)
        if section.figure:
            out.append(f'<img src="{esc(section.figure)}" alt="{esc(section.title)}">')
        for caption, frame, csv in section.tables:
            out.append(f'<p><b>{esc(caption)}</b> (<a href="{esc(csv)}">{esc(csv)}</a>)</p>')
            if frame is None:
                continue
            header, rows = _rows(frame)
            out.append('<div class="scroll"><table><tr>'
                       + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</table></div>")
            if _informative(frame).height > MAX_ROWS:
                more = _informative(frame).height - MAX_ROWS
                out.append(f"<p>({more} more rows in {esc(csv)})</p>")
    out.append("</body></html>")
    return "\n".join(out)
