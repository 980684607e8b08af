"""index.html: the exams of a run with each task's probability, sortable, each linking to its page."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write
from .page import static_text


@dataclass
class IndexRow:
    """One exam in the list: its page, a number per column (a task's probability), labels and why it is listed."""

    case: str
    href: str
    values: dict[str, float]
    labels: dict[str, int] = field(default_factory=dict)
    reason: str = ""


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def render_index(rows: Sequence[IndexRow], columns: Sequence[str], title: str, note: str = "") -> str:
    """The list as a complete HTML document; column headers sort the rows (a script inlined from static/)."""
    with_labels = any(r.labels for r in rows)
    with_reasons = any(r.reason for r in rows)
    head = '<th data-key="case"><button type="button">case</button></th>'
    head += "".join(
        f'<th data-key="{html.escape(c)}"><button type="button">{html.escape(c)}</button></th>' for c in columns
    )
    head += '<th class="text">labels</th>' if with_labels else ""
    head += '<th class="text">shown because</th>' if with_reasons else ""
    body = []
    for row in rows:
        data = "".join(f' data-{html.escape(c)}="{row.values.get(c, math.nan)}"' for c in columns)
        cells = "".join(f"<td>{_number(row.values.get(c, math.nan))}</td>" for c in columns)
        if with_labels:
            cells += '<td class="text">' + html.escape(", ".join(f"{t} {v}" for t, v in row.labels.items())) + "</td>"
        if with_reasons:
            cells += f'<td class="text">{html.escape(row.reason)}</td>'
        case = html.escape(row.case)
        body.append(f'<tr data-case="{case}"{data}><td><a href="{html.escape(row.href)}">{case}</a></td>{cells}</tr>')
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{static_text("viewer.css")}</style>
</head>
<body data-ready="0">
<header><h1>{html.escape(title)}</h1><p class="muted">{html.escape(note)}</p></header>
<main>
<p class="help">{len(rows)} exam(s). Click a column header to sort by it; click a case to open its viewer.</p>
<table id="exams"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
</main>
<script>{static_text("index.js")}</script>
</body>
</html>
"""


def write_index(path: Path, rows: Sequence[IndexRow], columns: Sequence[str], title: str, note: str = "") -> Path:
    text = render_index(rows, columns, title, note)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
