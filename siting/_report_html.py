"""Rendering of the gap report: one document model, written as Markdown, HTML and CSV.

The report is built once as :class:`Doc` (sections of paragraphs, bullet lists, tables and
images) and rendered three ways, so the Markdown, the HTML and the CSV tables always hold
the same numbers. Output is deterministic: no timestamps, fixed number formats, sorted rows.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Fmt = Callable[[Any], str]


def round_count(value: float) -> int:
    """The one rounding of a count (elderly are fractional on the grid): half up, done once.

    Sums are taken over the unrounded cell values and rounded here, never re-rounded, so the
    same quantity prints the same in every table, sentence, CSV and summary.json.
    """
    return math.floor(float(value) + 0.5)


def round_parts(parts: Sequence[float], whole: int | None = None) -> list[int]:
    """Round the parts of one whole together so they add up to it (largest remainder).

    ``whole`` is the already rounded total (default: ``round_count`` of the parts' sum); each
    part is floored, and the units left go to the largest remainders (ties: the earlier part).
    A part never exceeds the whole, and the printed parts always add up to the printed total.
    """
    raw = [max(0.0, float(p)) for p in parts]
    out = [math.floor(p) for p in raw]
    left = (round_count(math.fsum(raw)) if whole is None else int(whole)) - sum(out)
    by_remainder = sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))  # largest first
    step = 1 if left > 0 else -1
    for i in by_remainder if left > 0 else reversed(by_remainder):
        if left == 0:
            break
        if out[i] + step >= 0:
            out[i] += step
            left -= step
    return out


def f_int(v: Any) -> str:
    """Counts: thousands separators, no decimals (rounded by :func:`round_count`); empty for missing."""
    return "" if v is None or v != v else f"{round_count(v):,}"


def f_pct(v: Any) -> str:
    return "" if v is None or v != v else f"{float(v):.1f} %"


def f_str(v: Any) -> str:
    return "" if v is None or v != v else str(v)


def f_m(v: Any) -> str:
    return "—" if v is None or v != v else f"{float(v):,.0f} m"


@dataclass(frozen=True)
class Col:
    """A table column: CSV key, bilingual header (the rule id in it where a rule produced it)."""

    key: str
    zh: str
    en: str
    fmt: Fmt = f_str

    @property
    def header(self) -> str:
        return f"{self.zh} {self.en}".strip()


@dataclass(frozen=True)
class Table:
    """Rows of raw values; ``csv`` names the CSV file written from it (``""``: none)."""

    cols: tuple[Col, ...]
    rows: tuple[dict[str, Any], ...]
    csv: str = ""
    total: dict[str, Any] | None = None
    caption: str = ""


@dataclass(frozen=True)
class Section:
    zh: str
    en: str
    paragraphs: tuple[str, ...] = ()
    bullets: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    images: tuple[Path, ...] = ()
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Doc:
    title: str
    lead: tuple[str, ...]
    sections: tuple[Section, ...] = field(default_factory=tuple)


# ---------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> list[str]:
    out = [f"*{t.caption}*", ""] if t.caption else []
    out.append("| " + " | ".join(_md_cell(c.header) for c in t.cols) + " |")
    out.append("|" + "|".join("---" for _ in t.cols) + "|")
    rows = list(t.rows) + ([t.total] if t.total else [])
    for row in rows:
        out.append("| " + " | ".join(_md_cell(c.fmt(row.get(c.key))) for c in t.cols) + " |")
    if not t.rows:
        out.append("| " + " | ".join(["—"] * len(t.cols)) + " |")
    return [*out, ""]


def render_md(doc: Doc, out_dir: Path) -> str:
    """The report as GitHub-flavoured Markdown (images linked relative to ``out_dir``)."""
    lines = [f"# {doc.title}", "", *[f"{p}\n" for p in doc.lead]]
    for i, s in enumerate(doc.sections, 1):
        lines += [f"## {i}. {s.zh} · {s.en}", ""]
        lines += [f"{p}\n" for p in s.paragraphs]
        lines += [f"- {b}" for b in s.bullets] + ([""] if s.bullets else [])
        for t in s.tables:
            lines += _md_table(t)
        for img in s.images:
            rel = Path(os.path.relpath(img, out_dir)).as_posix()
            lines += [f"![{img.stem}]({rel})", ""]
        lines += [f"{p}\n" for p in s.after]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- html

_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",system-ui,sans-serif;
 max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.5}
h1{font-size:1.6em;border-bottom:2px solid #446;padding-bottom:.3em}
h2{font-size:1.25em;margin-top:1.8em;color:#335}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #bbc;padding:.25em .5em;vertical-align:top}
th{background:#eef;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total td{font-weight:bold;background:#f6f6fa}
.met{color:#161}.met_assumed{color:#8a6400}.not_met{color:#a11;font-weight:bold}.not_applicable{color:#666}
.lead{background:#fff8e0;border-left:4px solid #e0b000;padding:.4em .8em}
caption{caption-side:top;text-align:left;font-style:italic;padding:.2em 0}
img{max-width:100%;border:1px solid #ccd;margin:.5em 0}
""".strip()

_NUMERIC = (f_int, f_pct, f_m)


def _html_table(t: Table) -> str:
    parts = ["<table>"]
    if t.caption:
        parts.append(f"<caption>{html.escape(t.caption)}</caption>")
    parts.append("<thead><tr>" + "".join(
        f"<th>{html.escape(c.zh)}<br>{html.escape(c.en)}</th>" for c in t.cols) + "</tr></thead><tbody>")
    for row, cls in [(r, "") for r in t.rows] + ([(t.total, "total")] if t.total else []):
        cells = []
        for c in t.cols:
            text = html.escape(c.fmt(row.get(c.key)))
            klass = "n" if c.fmt in _NUMERIC else (str(row.get(c.key)) if c.key == "status" else "")
            cells.append(f'<td class="{klass}">{text}</td>' if klass else f"<td>{text}</td>")
        parts.append((f'<tr class="{cls}">' if cls else "<tr>") + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _img_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(path.stem)
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'


def render_html(doc: Doc) -> str:
    """The report as one self-contained HTML page (inline CSS, images as base64)."""
    esc = html.escape
    body = [f"<h1>{esc(doc.title)}</h1>"]
    body += [f'<p class="lead">{esc(p)}</p>' for p in doc.lead]
    for i, s in enumerate(doc.sections, 1):
        body.append(f"<h2>{i}. {esc(s.zh)} · {esc(s.en)}</h2>")
        body += [f"<p>{esc(p)}</p>" for p in s.paragraphs]
        if s.bullets:
            body.append("<ul>" + "".join(f"<li>{esc(b)}</li>" for b in s.bullets) + "</ul>")
        body += [_html_table(t) for t in s.tables]
        body += [_img_tag(p) for p in s.images]
        body += [f"<p>{esc(p)}</p>" for p in s.after]
    return ("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(doc.title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


# ---------------------------------------------------------------- csv


def _csv_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(round(v, 6)) if v != int(v) else str(int(v))
    return v


def render_csv(t: Table) -> str:
    """A table as CSV text (raw values, English keys as header, stable column order)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([c.key for c in t.cols])
    for row in t.rows:
        w.writerow([_csv_value(row.get(c.key)) for c in t.cols])
    return buf.getvalue()
