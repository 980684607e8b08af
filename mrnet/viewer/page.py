"""One exam as one self-contained HTML page: three planes side by side, heatmaps, scores, probabilities.

Everything the page needs is inside it: the slices and heatmaps as PNG data URIs in a JSON
block, the JavaScript and CSS inlined from static/. It opens from the file system in any
browser, without a server, a network or a CDN.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .. import PLANES
from ..files import atomic_write
from .images import colormap_table, heat_levels, shrink, sprite

DEFAULT_OPACITY = 0.45  # the PNG overlays' alpha (cam.OVERLAY_ALPHA)
HEAT_SIZE = 64  # heatmaps are stored at most this size; 256 px maps would double a page for no visible gain
MODELS = (*PLANES, "ensemble")


@dataclass
class PlaneImages:
    """A plane's series as the models saw it, and per task its CAMs and per-slice scores."""

    plane: str
    series: np.ndarray  # uint8 (s, N, N)
    cams: dict[str, np.ndarray]  # task -> (s, N, N), any scale
    scores: dict[str, np.ndarray]  # task -> (s,): each slice's share of the plane model's logit


@dataclass
class TaskOutcome:
    """A task's probability per plane model and ensemble, the threshold each is called at, the label if known."""

    task: str
    probabilities: dict[str, float]  # axial, coronal, sagittal, ensemble
    thresholds: dict[str, float]  # the same keys
    label: int | None = None


@dataclass
class ExamView:
    """Everything one exam page shows."""

    case: str
    planes: list[PlaneImages]
    outcomes: list[TaskOutcome]
    operating_point: str  # how the thresholds were chosen, said on the page
    sources: dict[str, str] = field(default_factory=dict)  # plane -> input file or folder
    notes: list[str] = field(default_factory=list)
    subtitle: str = ""
    index_href: str | None = "index.html"


def static_text(name: str) -> str:
    """A file of static/, shipped as package data."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def page_name(case: str) -> str:
    """A file name for an exam's page: the case id with anything unusual in a file name replaced."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", case).lstrip(".") + ".html"


def page_names(cases: Sequence[str]) -> dict[str, str]:
    """A distinct page file name per case, even where two case ids differ only in replaced characters or in case.

    index.html is the exam list's, so no exam page takes it; names are compared without case,
    as a macOS or Windows file system would.
    """
    names: dict[str, str] = {}
    taken: set[str] = {"index.html"}
    for case in cases:
        name, count = page_name(case), 1
        while name.lower() in taken:
            count += 1
            name = f"{page_name(case)[: -len('.html')]}-{count}.html"
        names[case] = name
        taken.add(name.lower())
    return names


def deciding_slice(scores: np.ndarray) -> int:
    """The slice with the largest share of the logit (the first of equals)."""
    return int(np.argmax(scores))


def page_data(view: ExamView) -> dict:
    """The JSON the page's script reads: per plane an image sprite, per task a heat sprite, scores, deciding slice."""
    tasks = [o.task for o in view.outcomes]
    planes = {}
    for images in view.planes:
        slices, size, _ = images.series.shape
        planes[images.plane] = {
            "size": size,
            "slices": slices,
            "image": sprite(images.series),
            "heatSize": min(size, HEAT_SIZE),
            "heat": {t: sprite(heat_levels(shrink(images.cams[t], HEAT_SIZE))) for t in tasks},
            "scores": {t: [round(float(v), 6) for v in images.scores[t]] for t in tasks},
            "deciding": {t: deciding_slice(images.scores[t]) for t in tasks},
        }
    return {
        "case": view.case,
        "tasks": tasks,
        "task": tasks[0],
        "opacity": DEFAULT_OPACITY,
        "colormap": colormap_table(),
        "planes": planes,
        "probabilities": {o.task: o.probabilities for o in view.outcomes},
        "thresholds": {o.task: o.thresholds for o in view.outcomes},
    }


def probability_rows(view: ExamView) -> str:
    """The task table: each model's probability, marked when at or above its operating point."""
    with_labels = any(o.label is not None for o in view.outcomes)
    models = [m for m in MODELS if all(m in o.probabilities for o in view.outcomes)]  # the planes scored
    head = "".join(f"<th>{m}</th>" for m in models) + "<th>operating point (ensemble)</th>"
    head += "<th>label</th>" if with_labels else ""
    rows = []
    for outcome in view.outcomes:
        cells = []
        for model in models:
            p, threshold = outcome.probabilities[model], outcome.thresholds[model]
            called = "positive" if p >= threshold else "negative"
            classes = f"{called} ensemble" if model == "ensemble" else called
            cells.append(f'<td class="{classes}" title="{model}: {called} at {threshold:.3f}">{p:.3f}</td>')
        cells.append(f"<td>{outcome.thresholds['ensemble']:.3f}</td>")
        if with_labels:
            cells.append(f"<td>{'' if outcome.label is None else outcome.label}</td>")
        task = html.escape(outcome.task)
        rows.append(
            f'<tr data-task="{task}"><th scope="row"><label><input type="radio" name="task" value="{task}"> '
            f"{task}</label></th>{''.join(cells)}</tr>"
        )
    return (
        '<table id="probabilities"><caption class="muted">Probability per task; pick a task to show its '
        "heatmaps and slice scores. Red: at or above the operating point.</caption>"
        f"<thead><tr><th>task</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def plane_figures(view: ExamView) -> str:
    parts = []
    for images in view.planes:
        slices, size, _ = images.series.shape
        plane = html.escape(images.plane)
        source = html.escape(view.sources.get(images.plane, ""))
        parts.append(
            f'<figure class="plane" data-plane="{plane}" data-slices="{slices}">'
            f'<figcaption><b>{plane}</b> <span class="muted">{slices} slices, {size} px'
            f"{' - ' + source if source else ''}</span></figcaption>"
            f'<canvas width="{size}" height="{size}" tabindex="0" aria-label="{plane} series"></canvas>'
            f'<input class="slider" type="range" min="0" max="{slices - 1}" value="0" aria-label="{plane} slice">'
            f'<svg class="scores" role="img" aria-label="{plane} per-slice scores"></svg>'
            '<p class="readout"></p></figure>'
        )
    return "".join(parts)


def render_exam_page(view: ExamView) -> str:
    """The page's HTML (a complete document)."""
    data = json.dumps(page_data(view), separators=(",", ":")).replace("<", "\\u003c")  # no '</script>' inside
    case = html.escape(view.case)
    back = f'<nav><a href="{html.escape(view.index_href)}">all exams</a></nav>' if view.index_href else ""
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in view.notes)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MRNet exam {case}</title>
<style>{static_text("viewer.css")}</style>
</head>
<body data-ready="0">
<header><h1>Exam {case}</h1> {back}
<p class="muted">{html.escape(view.subtitle)}</p></header>
<main>
<section id="results">{probability_rows(view)}
<p class="note">Operating point: {html.escape(view.operating_point)} Per-plane and ensemble probabilities of
MRNet models; a research tool, not a diagnosis.</p></section>
<section id="controls">
<label><input type="checkbox" id="overlay" checked> heatmap</label>
<label>opacity <input type="range" id="opacity" min="0" max="1" step="0.05" value="{DEFAULT_OPACITY}"></label>
<button type="button" id="reset-window">reset window/level</button>
<span class="help">slider, mouse wheel or arrow keys: slice; drag on an image: window (left-right) and level
(up-down); double-click: reset; o: heatmap on/off. Bars: each slice's share of the plane model's logit
(orange: the deciding slice).</span>
</section>
<section id="planes">{plane_figures(view)}</section>
{f'<section id="notes"><h2>Input notes</h2><ul>{notes}</ul></section>' if notes else ""}
</main>
<script type="application/json" id="exam-data">{data}</script>
<script>{static_text("viewer.js")}</script>
</body>
</html>
"""


def write_exam_page(view: ExamView, folder: Path, name: str | None = None) -> Path:
    """Write the page as <folder>/<name> (default: from the case id) and return its path."""
    path = Path(folder) / (name or page_name(view.case))
    text = render_exam_page(view)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
