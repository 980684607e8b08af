"""report.html: the evaluation report as one web page, beside report.md and its images.

The same content as report.md (tables, ROC curves, intervals, heatmaps) plus links to the
viewer pages of the exams a reader looks at first. Images are linked relative to the page,
so the report folder opens from the file system and can be moved whole. A few lines of
script mark every image that loaded (data-loaded) and name any that did not, so a report
copied without its images says so instead of showing empty frames.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

import pandas as pd

from ..files import atomic_write
from .report import (
    HEATMAP_TEXT,
    VIEWER_TEXT,
    ReportContent,
    auc_with_ci,
    fmt,
    plain_text,
    reading_notes,
    score_relation,
)

RATES = ("sensitivity", "specificity", "accuracy")
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 16px 24px; color: #1d1d1d; max-width: 1300px; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
tr.ensemble td { font-weight: 600; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; }
figure img { max-width: 420px; border: 1px solid #ddd; }
figcaption { font-size: 12px; color: #555; max-width: 420px; }
.missing { color: #b00020; font-weight: 600; }
.score { font-size: 16px; font-weight: 600; }
"""
IMAGE_CHECK = """
for (const image of document.images) {
  const mark = () => {
    image.dataset.loaded = image.naturalWidth > 0 ? "1" : "0";
    if (image.naturalWidth === 0) {
      const note = document.createElement("p");
      note.className = "missing";
      note.textContent = "image missing: " + image.getAttribute("src");
      image.after(note);
    }
    const loaded = Array.from(document.images).filter((i) => i.dataset.loaded === "1").length;
    document.body.dataset.imagesLoaded = String(loaded);
  };
  if (image.complete) mark();
  else {
    image.addEventListener("load", mark);
    image.addEventListener("error", mark);
  }
}
document.body.dataset.images = String(document.images.length);
"""


def _link(path: Path, folder: Path) -> str:
    return html.escape(Path(os.path.relpath(path, folder)).as_posix())


def metrics_table(metrics: pd.DataFrame) -> str:
    head = (
        "<tr><th>task</th><th>model</th><th>probabilities here</th><th>AUC (95 % CI)</th><th>Brier</th>"
        "<th>threshold (Youden)</th><th>chosen on</th>"
        + "".join(f"<th>{r}</th>" for r in RATES)
        + "".join(f"<th>{r} @ 0.5</th>" for r in RATES)
        + "</tr>"
    )
    rows = []
    for row in metrics[metrics["task"] != "mean"].to_dict("records"):
        rates = [row[f"{m}_{at}"] for at in ("youden", "at_0.5") for m in RATES]
        threshold = "per fold" if math.isnan(row["threshold_youden"]) else fmt(row["threshold_youden"])
        cells = [
            row["task"],
            row["model"],
            row["probabilities"],
            auc_with_ci(row),
            fmt(row["brier"]),
            threshold,
            row["threshold_chosen_on"],
        ] + [fmt(r) for r in rates]
        css = ' class="ensemble"' if row["model"] == "ensemble" else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(plain_text(c))}</td>" for c in cells) + "</tr>")
    return f'<table id="metrics"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def mean_table(metrics: pd.DataFrame) -> str:
    means = metrics[metrics["task"] == "mean"]
    head = "".join(f"<th>{html.escape(m)}</th>" for m in means["model"])
    cells = "".join(f"<td>{fmt(v, 4)}</td>" for v in means["auc"])
    return f'<table id="mean-auc"><thead><tr>{head}</tr></thead><tbody><tr>{cells}</tr></tbody></table>'


def figures(items: list[tuple[str, Path]], folder: Path) -> str:
    parts = [
        f'<figure><img src="{_link(path, folder)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, path in items
    ]
    return f'<div class="figures">{"".join(parts)}</div>'


def viewer_section(content: ReportContent, folder: Path) -> str:
    if not any(content.viewer_pages.values()):
        return ""
    items = []
    for task, pages in content.viewer_pages.items():
        links = ", ".join(f'<a href="{_link(path, folder)}">{html.escape(caption)}</a>' for caption, path in pages)
        items.append(f"<li><b>{html.escape(task)}</b>: {links or 'none'}</li>")
    index = ""
    if content.viewer_index:
        href = _link(content.viewer_index, folder)
        index = f'<p>All of them in one sortable list: <a href="{href}">viewer index</a>.</p>'
    return (
        f'<h2 id="viewer">Exams to look at first</h2><p>{html.escape(VIEWER_TEXT)}</p><ul>{"".join(items)}</ul>{index}'
    )


def render_html(metrics: pd.DataFrame, content: ReportContent, folder: Path) -> str:
    """report.html's text (a complete document); links are relative to `folder`."""
    positives = ", ".join(f"{t} {content.positives[t]}" for t in content.tasks)
    made = "".join(f"<li>{html.escape(plain_text(n))}</li>" for n in content.notes)
    notes = "".join(f"<li>{html.escape(plain_text(n))}</li>" for n in reading_notes(content))
    roc = figures([(f"ROC {task}", path) for task, path in content.roc_figures.items()], folder)
    reliability = figures([(f"reliability {t}", path) for t, path in content.reliability_figures.items()], folder)
    reliability_section = f"<h2>Reliability diagrams</h2>\n{reliability}" if content.reliability_figures else ""
    heatmaps = "".join(
        f"<h3>{html.escape(task)}</h3>{figures(items, folder)}" for task, items in content.heatmaps.items() if items
    )
    heatmap_section = f"<h2>Example heatmaps</h2><p>{html.escape(HEATMAP_TEXT)}</p>{heatmaps}" if heatmaps else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MRNet evaluation report ({html.escape(content.split)})</title>
<style>{STYLE}</style>
</head>
<body>
<h1>MRNet evaluation report</h1>
<p>Split <b>{html.escape(content.split)}</b>: {content.n_exams} exams (positives: {html.escape(positives)}).
Models from <code>{html.escape(content.models_dir)}</code>, data from <code>{html.escape(content.data_dir)}</code>.</p>
<p class="score">Competition score (mean ensemble AUC over {len(content.tasks)} tasks; ensemble probabilities
here: {html.escape(score_relation(metrics))}): {fmt(content.competition_score, 4)}</p>
<h2>How these numbers were made</h2>
<ul>{made}</ul>
<h2>Metrics</h2>
{metrics_table(metrics)}
<p>Mean AUC over tasks:</p>
{mean_table(metrics)}
<h2>How to read it</h2>
<ul>{notes}</ul>
<h2>ROC curves</h2>
{roc}
{reliability_section}
{heatmap_section}
{viewer_section(content, folder)}
<h2>Files</h2>
<p><code>report.md</code> (this report in Markdown), <code>metrics.csv</code>, <code>predictions.csv</code>
(the competition format), <code>predictions_with_ids.csv</code>, <code>roc-&lt;task&gt;.png</code>,
<code>heatmaps/</code>, <code>viewer/</code>.</p>
<script>{IMAGE_CHECK}</script>
</body>
</html>
"""


def write_html_report(path: Path, metrics: pd.DataFrame, content: ReportContent) -> Path:
    text = render_html(metrics, content, path.parent)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
