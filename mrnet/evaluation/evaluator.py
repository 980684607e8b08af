"""Evaluating trained models on a split: metrics with intervals, ROC curves, heatmaps, report.md and report.html.

Probabilities come from the very path train_meta uses (inference.plane_probabilities:
check_and_load, the shared preprocessing, batched predict_logits; then the saved
stacker's predict_proba), so the AUCs here equal those in auc_table.csv for the same
models and split. Nothing is refitted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import AMP_MODES, PLANES, SPLITS, TASKS, layout
from ..cam import class_activation_maps, save_cam_overlays
from ..data.dataset import series_path
from ..data.series import load_series
from ..device import Scoring
from ..ensemble_format import ensemble_probabilities, load_checked_ensemble
from ..errors import at_least, check_options, one_of, seed_rule
from ..files import check_writable, write_json
from ..inference import fit_to_size, load_plane_model, plane_probabilities, slice_attention
from ..runinfo import environment, plain
from .metrics import DEFAULT_RESAMPLES, bootstrap_auc, bootstrap_indices, operating_point, youden_threshold
from .report import ReportContent, plot_roc, save_csv, write_report
from .report_html import write_html_report
from .showcase import VIEWER_FOLDER, write_showcase

MODELS = (*PLANES, "ensemble")
# The plane on which each finding shows best (sagittal for the ACL, coronal for the menisci);
# for `abnormal`, sagittal, the view that covers most structures of the knee.
HEATMAP_PLANE = {"abnormal": "sagittal", "acl": "sagittal", "meniscus": "coronal"}
HEATMAP_SLICES = 2
FIXED_THRESHOLD = 0.5


@dataclass
class EvalConfig:
    """Options of evaluate (saved as evaluate_config.json in the report folder)."""

    data_dir: str = "data/MRNet-v1.0"
    models_dir: str = "models"
    split: str = "valid"
    out: str | None = None  # default <models_dir>/report
    bootstrap: int = DEFAULT_RESAMPLES
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    eval_max_slices: int | None = None  # None: the device's default (64 on the CPU, 512 on CUDA)
    heatmap_exams: int = 2  # positive exams per task shown with class activation maps
    viewer_exams: int = 2  # per task: true positives, false positives and false negatives with a viewer page each

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else layout.report_dir(self.models_dir)


def validate_eval_config(cfg: EvalConfig) -> None:
    check_options(
        [
            *(one_of("--tasks", task, TASKS) for task in cfg.tasks),
            one_of("--split", cfg.split, SPLITS),
            at_least("--bootstrap", cfg.bootstrap, 0),
            seed_rule(cfg.seed),
            at_least("--heatmap-exams", cfg.heatmap_exams, 0),
            at_least("--viewer-exams", cfg.viewer_exams, 0),
            one_of("--amp", cfg.amp, AMP_MODES),
            at_least("--eval-max-slices", cfg.eval_max_slices, 1),
        ]
    )


# ----------------------------------------------------------------------------- probabilities


def model_probabilities(
    cfg: EvalConfig, tasks: Sequence[str], scoring: Scoring, ensembles: dict[str, dict[str, Any]]
) -> dict[tuple[str, str], pd.DataFrame]:
    """(task, split) -> case, label, axial, coronal, sagittal, ensemble for the evaluated split and train.

    Train is needed for the thresholds, which are chosen there and applied unchanged.
    """
    splits = ["train"] if cfg.split == "train" else ["train", cfg.split]
    tables = plane_probabilities(cfg.data_dir, cfg.models_dir, tasks, splits, scoring)
    for task in tasks:
        bundle = ensembles[task]
        for split in splits:
            table = tables[(task, split)]
            tables[(task, split)] = table.assign(ensemble=ensemble_probabilities(bundle, table))
    return tables


# ----------------------------------------------------------------------------- metrics


def task_metrics(
    task: str, evaluated: pd.DataFrame, train: pd.DataFrame, split: str, resamples: int, seed: int
) -> list[dict[str, Any]]:
    """One row per model of a task: AUC with interval, and operating points at Youden's train threshold and 0.5."""
    labels = evaluated["label"].to_numpy()
    # Seeded by (seed, task) so a task's intervals do not depend on which other tasks are evaluated.
    rng = np.random.default_rng([seed, TASKS.index(task)])
    indices = bootstrap_indices(len(labels), resamples, rng)
    rows = []
    for model in MODELS:
        probs = evaluated[model].to_numpy()
        interval = bootstrap_auc(labels, probs, indices)
        threshold = youden_threshold(train["label"].to_numpy(), train[model].to_numpy())
        at_youden = operating_point(labels, probs, threshold)
        at_fixed = operating_point(labels, probs, FIXED_THRESHOLD)
        rows.append(
            {
                "task": task,
                "model": model,
                "split": split,
                "n": len(labels),
                "positives": int(labels.sum()),
                "auc": interval.auc,
                "auc_ci_low": interval.low,
                "auc_ci_high": interval.high,
                "bootstrap_used": interval.used,
                "threshold_youden": threshold,
                "sensitivity_youden": at_youden.sensitivity,
                "specificity_youden": at_youden.specificity,
                "accuracy_youden": at_youden.accuracy,
                "sensitivity_at_0.5": at_fixed.sensitivity,
                "specificity_at_0.5": at_fixed.specificity,
                "accuracy_at_0.5": at_fixed.accuracy,
            }
        )
    return rows


def with_mean_rows(rows: list[dict[str, Any]], split: str) -> pd.DataFrame:
    """The per-task rows plus, per model, the mean AUC over tasks (for the ensemble: the competition score)."""
    table = pd.DataFrame(rows)
    # NaN when a task's AUC is undefined: a mean over the remaining tasks would not be the competition's score.
    means = table.groupby("model", sort=False)["auc"].agg(lambda aucs: aucs.mean(skipna=False))
    extra = pd.DataFrame([{"task": "mean", "model": m, "split": split, "auc": means[m]} for m in MODELS])
    merged = pd.concat([table, extra], ignore_index=True).reindex(columns=table.columns)
    return merged.astype({"n": "Int64", "positives": "Int64", "bootstrap_used": "Int64"})


# ----------------------------------------------------------------------------- outputs


def predictions_by_case(tables: dict[tuple[str, str], pd.DataFrame], split: str, tasks: Sequence[str]) -> pd.DataFrame:
    """case, then per task the ensemble probability and the label, merged on case id, in case order."""
    merged = None
    for task in tasks:
        part = tables[(task, split)][["case", "ensemble", "label"]].rename(
            columns={"ensemble": task, "label": f"{task}_label"}
        )
        merged = part if merged is None else merged.merge(part, on="case", how="inner", validate="one_to_one")
    return merged.sort_values("case").reset_index(drop=True)


def write_heatmaps(
    cfg: EvalConfig, task: str, evaluated: pd.DataFrame, folder: Path, device: torch.device
) -> list[tuple[str, Path]]:
    """CAM overlays for the positives with the highest ensemble probability, on the task's heatmap plane."""
    if cfg.heatmap_exams == 0:
        return []
    positives = evaluated[evaluated["label"] == 1].sort_values("ensemble", ascending=False, kind="stable")
    if positives.empty:
        return []
    plane = HEATMAP_PLANE[task]
    model, size = load_plane_model(cfg.models_dir, task, plane, device)
    items, warned = [], set()
    for row in positives.head(cfg.heatmap_exams).itertuples(index=False):
        path = series_path(cfg.data_dir, cfg.split, plane, row.case)
        series = fit_to_size(load_series(path), size, path, warned)  # as scored, so the heatmap shows what was seen
        cams, scores = class_activation_maps(model, series, device)
        weights = slice_attention(model, series, device)
        prefix = f"{task}-{row.case}-{plane}"
        for path in save_cam_overlays(series, cams, scores, folder, prefix, HEATMAP_SLICES, slice_weights=weights):
            items.append((f"{task} {row.case} {plane} (ensemble p = {row.ensemble:.2f})", path))
    return items


def ensemble_notes(cfg: EvalConfig, tasks: Sequence[str], ensembles: dict[str, dict[str, Any]]) -> list[str]:
    """Warnings a reader needs: in-sample numbers are optimistic."""
    notes = []
    if cfg.split == "train":
        notes.append("Evaluated on the train split, which the models were fitted on: all numbers are optimistic.")
    for task in tasks:
        fit_on = ensembles[task].get("fit_on", "train")
        if fit_on == "valid-cv" and cfg.split == "valid":
            notes.append(
                f"The {task} ensemble was fitted on this valid split (--fit-on valid-cv): its AUC here is "
                "in-sample and higher than the out-of-fold figure in auc_table.csv."
            )
    return notes


@dataclass
class Evaluation:
    """What an evaluation produced: the metrics table, the competition score, notes, and the report's path."""

    metrics: pd.DataFrame
    split: str
    n_exams: int
    bootstrap: int
    score: float
    notes: list[str]
    report: Path


def run_evaluate(cfg: EvalConfig, log: Callable[[str], None] = print) -> Evaluation:
    validate_eval_config(cfg)
    tasks, skipped = layout.ready_tasks(cfg.models_dir, cfg.tasks)
    for line in skipped:
        log(f"evaluate: {line}")
    out = cfg.out_dir()
    check_writable(out, "--out")
    ensembles = {task: load_checked_ensemble(cfg.models_dir, task) for task in tasks}
    scoring = Scoring.resolve(cfg.device, cfg.amp, cfg.eval_max_slices)
    tables = model_probabilities(cfg, tasks, scoring, ensembles)

    rows, roc_figures, heatmaps = [], {}, {}
    for task in tasks:
        evaluated, train = tables[(task, cfg.split)], tables[(task, "train")]
        rows += task_metrics(task, evaluated, train, cfg.split, cfg.bootstrap, cfg.seed)
        labels = evaluated["label"].to_numpy()
        aucs = {r["model"]: r["auc"] for r in rows if r["task"] == task}
        roc_figures[task] = plot_roc(
            task, labels, {m: evaluated[m].to_numpy() for m in MODELS}, aucs, out / f"roc-{task}.png"
        )
        heatmaps[task] = write_heatmaps(cfg, task, evaluated, out / "heatmaps", scoring.device)
    metrics = with_mean_rows(rows, cfg.split)
    save_csv(out / "metrics.csv", metrics)

    by_case = predictions_by_case(tables, cfg.split, tasks)
    save_csv(out / "predictions_with_ids.csv", by_case)
    labels = {t: by_case[f"{t}_label"].to_numpy() for t in tasks}
    score = float(metrics.loc[(metrics["task"] == "mean") & (metrics["model"] == "ensemble"), "auc"].iloc[0])
    notes = ensemble_notes(cfg, tasks, ensembles)
    if set(tasks) == set(TASKS):
        save_csv(out / "predictions.csv", by_case[list(TASKS)], header=False)
    else:
        notes.append("predictions.csv (competition format) needs all three tasks and was not written.")

    shown = write_showcase(
        cfg.data_dir, cfg.models_dir, cfg.split, tables, metrics, tasks, cfg.viewer_exams, out, scoring
    )
    content = ReportContent(
        split=cfg.split,
        n_exams=len(by_case),
        positives={t: int(labels[t].sum()) for t in tasks},
        tasks=list(tasks),
        bootstrap=cfg.bootstrap,
        seed=cfg.seed,
        models_dir=cfg.models_dir,
        data_dir=cfg.data_dir,
        competition_score=score,
        roc_figures=roc_figures,
        heatmaps=heatmaps,
        notes=notes,
        viewer_pages={
            task: [(f"{s.kind} {s.case} (p = {s.probability:.2f})", s.page) for s in items]
            for task, items in shown.items()
        },
        viewer_index=out / VIEWER_FOLDER / "index.html" if any(shown.values()) else None,
    )
    report = write_report(out / "report.md", metrics, content)
    write_html_report(out / "report.html", metrics, content)
    write_json(out / "evaluate_config.json", plain(cfg))
    write_json(out / "evaluate_environment.json", environment())
    return Evaluation(metrics, cfg.split, len(by_case), cfg.bootstrap, score, notes, report)
