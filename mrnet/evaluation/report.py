"""The evaluation report: ROC and reliability figures, the metrics table in text and Markdown, and report.md.

Only presentation: every number arrives computed (see evaluation.py and evaluate.py).
Figures use matplotlib's object API with the Agg canvas, so no display is needed and
pyplot's global state is left alone.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from ..files import atomic_write, save_figure
from ..stats.calibration import RELIABILITY_BINS, brier_score, reliability_table

# The 'probabilities here' labels: how a model's probabilities on the evaluated split relate to what chose it.
RELATIONS = {
    "held-out": "the split chose nothing for that model",
    "chose the epoch": "this split picked the plane model's best epoch: optimistic",
    "planes' epochs chosen here": "an ensemble whose plane models' epochs this split picked: optimistic",
    "out-of-fold": "a cross-validated stacker: each exam scored by a stacker fitted without it",
    "in-sample": "fitted on these exams: optimistic",
}

MODEL_STYLES = {"axial": ":", "coronal": "--", "sagittal": "-.", "ensemble": "-"}

# Bien et al. 2018, hidden test set (n = 120): context for the reader, not a like-for-like comparison.
PAPER_TEST_AUC = {"abnormal": "0.937 (0.895-0.980)", "acl": "0.965 (0.938-0.993)", "meniscus": "0.847 (0.780-0.914)"}


def plot_roc(
    task: str, labels: np.ndarray, scores: Mapping[str, np.ndarray], aucs: Mapping[str, float], path: Path
) -> Path:
    """One figure per task: a ROC curve per plane model and the ensemble."""
    figure = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot([0, 1], [0, 1], color="0.75", linewidth=1, label="chance")
    for name, probs in scores.items():
        if len(np.unique(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, probs)
        width = 2.2 if name == "ensemble" else 1.4
        axes.plot(fpr, tpr, MODEL_STYLES.get(name, "-"), linewidth=width, label=f"{name} (AUC {fmt(aucs[name])})")
    axes.set_xlabel("1 - specificity (false positive rate)")
    axes.set_ylabel("sensitivity (true positive rate)")
    axes.set_title(f"{task}: ROC, n = {len(labels)} ({int(np.sum(labels))} positive)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.set_aspect("equal")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_reliability(task: str, labels: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """One figure per task: each model's fraction of positives against its mean probability, per bin."""
    figure = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot([0, 1], [0, 1], color="0.75", linewidth=1, label="perfectly calibrated")
    markers = {"axial": "v", "coronal": "s", "sagittal": "^", "ensemble": "o"}
    for name, probs in scores.items():
        table = reliability_table(labels, probs)
        filled = table[table["n"] > 0]
        width = 2.2 if name == "ensemble" else 1.0
        axes.plot(
            filled["mean_probability"],
            filled["fraction_positive"],
            marker=markers.get(name, "o"),
            linewidth=width,
            label=f"{name} (Brier {brier_score(labels, probs):.3f})",
        )
    axes.set_xlabel(f"mean predicted probability ({RELIABILITY_BINS} equal-width bins)")
    axes.set_ylabel("fraction of positive exams")
    axes.set_title(f"{task}: reliability, n = {len(labels)} ({int(np.sum(labels))} positive)")
    axes.set_xlim(0, 1)
    axes.set_ylim(-0.02, 1.02)
    axes.set_aspect("equal")
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]#|!~])")


def plain_text(text: object) -> str:
    """Text read from a file (a threshold's 'chosen on', a case id) with control characters shown as '?':
    raw, they could clear a terminal or hide text."""
    return CONTROL_CHARACTERS.sub("?", str(text))


def md(text: object) -> str:
    """Text read from a file as literal Markdown: HTML and Markdown syntax escaped, one line."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(plain_text(text), quote=False))


def relation_legend(relations: set[str]) -> str:
    """The 'probabilities here' labels that appear (all of them when not told), each explained."""
    return ", ".join(f"{label} ({RELATIONS[label]})" for label in RELATIONS if label in relations or not relations)


def relations_of(metrics: pd.DataFrame, model: str | None = None) -> set[str]:
    rows = metrics[metrics["task"] != "mean"]
    if model is not None:
        rows = rows[rows["model"] == model]
    return {str(r) for r in rows["probabilities"]}


def score_relation(metrics: pd.DataFrame) -> str:
    """What the competition score's ensemble probabilities are here, e.g. 'held-out' or 'planes' epochs chosen here'."""
    return " / ".join(sorted(relations_of(metrics, "ensemble")))


def fmt(value: float, digits: int = 3) -> str:
    """A number for a table, or n/a where it is undefined."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def auc_with_ci(row: Mapping) -> str:
    if math.isnan(row["auc_ci_low"]):
        return fmt(row["auc"])
    return f"{fmt(row['auc'])} ({fmt(row['auc_ci_low'])}-{fmt(row['auc_ci_high'])})"


def text_table(metrics: pd.DataFrame) -> str:
    """The metrics as aligned console text: one line per task and model, then the means."""
    head = (
        f"{'task':<10}{'model':<10}{'AUC (95% CI)':<24}{'Brier':>7}{'thr':>7}{'sens':>7}{'spec':>7}{'acc':>7}"
        f"  |{'sens.5':>7}{'spec.5':>7}{'acc.5':>7}  probabilities here"
    )
    lines = [head, "-" * len(head)]
    for row in metrics[metrics["task"] != "mean"].to_dict("records"):
        youden = "".join(f"{fmt(row[f'{m}_youden']):>7}" for m in ("sensitivity", "specificity", "accuracy"))
        fixed = "".join(f"{fmt(row[f'{m}_at_0.5']):>7}" for m in ("sensitivity", "specificity", "accuracy"))
        lines.append(
            f"{row['task']:<10}{row['model']:<10}{auc_with_ci(row):<24}{fmt(row['brier']):>7}"
            f"{fmt(row['threshold_youden']):>7}{youden}  |{fixed}  {plain_text(row['probabilities'])}"
        )
    means = metrics[metrics["task"] == "mean"]
    if len(means):
        lines.append("-" * len(head))
        lines.append(
            f"{'mean AUC':<10}" + "  ".join(f"{r['model']} {fmt(r['auc'], 4)}" for r in means.to_dict("records"))
        )
    return "\n".join(lines)


def markdown_table(metrics: pd.DataFrame) -> str:
    rows = metrics[metrics["task"] != "mean"].to_dict("records")
    lines = [
        "| task | model | probabilities here | AUC (95 % CI) | Brier | ECE | threshold (Youden) | chosen on "
        "| sensitivity | specificity | accuracy | sensitivity @ 0.5 | specificity @ 0.5 | accuracy @ 0.5 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = f"**{row['model']}**" if row["model"] == "ensemble" else row["model"]
        rates = [row[f"{m}_{at}"] for at in ("youden", "at_0.5") for m in ("sensitivity", "specificity", "accuracy")]
        threshold = "per fold" if math.isnan(row["threshold_youden"]) else fmt(row["threshold_youden"])
        lines.append(
            f"| {row['task']} | {name} | {md(row['probabilities'])} | {auc_with_ci(row)} | {fmt(row['brier'])} | "
            f"{fmt(row['ece'])} | {threshold} | {md(row['threshold_chosen_on'])} | "
            + " | ".join(fmt(r) for r in rates)
            + " |"
        )
    return "\n".join(lines)


def mean_auc_table(metrics: pd.DataFrame) -> str:
    means = metrics[metrics["task"] == "mean"]
    models = list(means["model"])
    lines = [
        "| " + " | ".join(models) + " |",
        "|" + "---|" * len(models),
        "| " + " | ".join(fmt(v, 4) for v in means["auc"]) + " |",
    ]
    return "\n".join(lines)


@dataclass
class ReportContent:
    """What report.md shows besides the metrics; paths are files inside the report folder."""

    split: str
    n_exams: int
    positives: dict[str, int]
    tasks: list[str]
    bootstrap: int
    seed: int
    models_dir: str
    data_dir: str
    competition_score: float
    roc_figures: dict[str, Path] = field(default_factory=dict)
    reliability_figures: dict[str, Path] = field(default_factory=dict)
    heatmaps: dict[str, list[tuple[str, Path]]] = field(default_factory=dict)  # task -> (caption, png)
    notes: list[str] = field(default_factory=list)  # how the numbers were made, and warnings
    viewer_pages: dict[str, list[tuple[str, Path]]] = field(default_factory=dict)  # task -> (caption, html)
    viewer_index: Path | None = None
    relations: set[str] = field(default_factory=set)  # the 'probabilities here' labels of the metrics table


def reading_notes(content: ReportContent) -> list[str]:
    """How to read the tables, as plain sentences (shared by report.md and report.html)."""
    return [
        f"AUC intervals: percentile bootstrap over exams ({content.bootstrap} resamples drawn with replacement, "
        f"seed {content.seed}; resamples holding one class are skipped). The same resampled exam sets serve every "
        "model of a task, so intervals of planes and ensemble are comparable.",
        f"'probabilities here': {relation_legend(content.relations)}.",
        "Calibration: the Brier score is the mean squared gap between probability and label (lower is better; "
        "always predicting the prevalence p scores p(1-p)); ECE is the exam-weighted mean gap between mean "
        "probability and fraction positive over 10 equal-width bins. The reliability diagrams below plot those bins.",
        "The threshold maximises Youden's J (sensitivity + specificity - 1) on the split named in 'chosen on' and "
        "is applied here (positive if probability >= threshold). The 0.5 columns use a fixed threshold: it only "
        "means 'more likely than not' for a calibrated model.",
        "For context, the paper's test-set AUCs (a different, hidden split): "
        + ", ".join(f"{t} {PAPER_TEST_AUC[t]}" for t in content.tasks if t in PAPER_TEST_AUC)
        + ".",
    ]


HEATMAP_TEXT = (
    "Class activation maps of correctly ranked positive exams (the positives with the highest ensemble "
    "probability), on the plane that shows each finding best. Each image is one of the slices that "
    "contribute most to the plane model's logit; brighter colour = more evidence for the finding."
)
VIEWER_TEXT = (
    "Per task, the most confident true positives and the worst false positives and false negatives of the "
    "ensemble at its operating point (the Youden threshold of the metrics table; 0.5 where it is chosen per fold). "
    "Each link opens the exam in the viewer: its planes with heatmaps, per-slice scores and every task's "
    "probabilities."
)


def render_markdown(metrics: pd.DataFrame, content: ReportContent, folder: Path) -> str:
    """report.md's text; images are linked relative to `folder` so the report can be moved whole."""
    positives = ", ".join(f"{t} {content.positives[t]}" for t in content.tasks)
    parts = [
        "# MRNet evaluation report",
        "",
        f"Split **{content.split}**: {content.n_exams} exams (positives: {positives}). "
        f"Models from {md(content.models_dir)}, data from {md(content.data_dir)}.",
        "",
        f"**Competition score (mean ensemble AUC over {len(content.tasks)} tasks; ensemble probabilities here: "
        f"{md(score_relation(metrics))}): {fmt(content.competition_score, 4)}**",
        "",
        "## How these numbers were made",
        "",
        *[f"- {md(note)}" for note in content.notes],
        "",
        "## Metrics",
        "",
        markdown_table(metrics),
        "",
        "Mean AUC over tasks:",
        "",
        mean_auc_table(metrics),
        "",
        "How to read it:",
    ]
    parts += [f"- {md(note)}" for note in reading_notes(content)]
    if content.roc_figures:
        parts += ["", "## ROC curves", ""]
        parts += [f"![ROC {task}]({_relative(path, folder)})" for task, path in content.roc_figures.items()]
    if content.reliability_figures:
        parts += ["", "## Reliability diagrams", ""]
        parts += [f"![reliability {t}]({_relative(path, folder)})" for t, path in content.reliability_figures.items()]
    if any(content.heatmaps.values()):
        parts += ["", "## Example heatmaps", "", HEATMAP_TEXT, ""]
        for task, items in content.heatmaps.items():
            if not items:
                continue
            parts += [f"### {task}", ""]
            parts += [f"![{md(caption)}]({_relative(path, folder)})" for caption, path in items]
            parts.append("")
    if any(content.viewer_pages.values()):
        parts += ["", "## Exams to look at first", "", VIEWER_TEXT, ""]
        for task, items in content.viewer_pages.items():
            parts += [f"- **{task}**: " + ", ".join(f"[{md(c)}]({_relative(p, folder)})" for c, p in items)]
        if content.viewer_index:
            parts += [
                "",
                f"All of them in one list: [{_relative(content.viewer_index, folder)}]"
                f"({_relative(content.viewer_index, folder)}).",
            ]
    parts += [
        "",
        "## Files",
        "",
        "- `report.html`: this report as a web page, with links to the exam viewer pages in `viewer/`.",
        "- `metrics.csv`: every number above, one row per task and model (plus the means).",
        "- `roc-<task>.png`, `calibration-<task>.png`: the ROC curves and reliability diagrams.",
        "- `predictions.csv`: the competition format: no header, one row per exam in case order, columns "
        "abnormal, acl, meniscus (ensemble probabilities).",
        "- `predictions_with_ids.csv`: the same with a header, the case ids and the labels.",
        "",
    ]
    return "\n".join(parts)


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


def write_report(path: Path, metrics: pd.DataFrame, content: ReportContent) -> Path:
    text = render_markdown(metrics, content, path.parent)
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def save_csv(path: Path, table: pd.DataFrame, header: bool = True) -> Path:
    """Full float precision: rounding could tie nearly equal probabilities and change an AUC scored from the file."""
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, header=header))
    return path
