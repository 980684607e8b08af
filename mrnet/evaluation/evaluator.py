"""Evaluating trained models on a split: metrics with intervals, calibration, ROC curves, heatmaps, report.md
and report.html.

Probabilities come from the very path train_meta uses (evaluation.scores: the shared
preprocessing and batched inference, then the saved stacker), so every AUC here equals the
one in auc_table.csv for the same models and split, the ensemble's included: for a stacker
cross-validated on this split (--fit-on valid-cv) both are its out-of-fold figures, never
those of the stacker refitted on the whole split. Nothing is refitted.

Operating thresholds (Youden's J) are never chosen on training probabilities: the ones
train_meta chose on the tuning split are applied unchanged; where they were chosen on the
evaluated split itself (no tuning split), each exam is called with a threshold chosen on the
other folds (metrics.cross_validated_operating_point).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import AMP_MODES, PLANES, SPLITS, TASKS, layout, plane_order
from ..cam import class_activation_maps, save_cam_overlays
from ..data.dataset import series_path
from ..data.series import load_series
from ..device import Scoring
from ..errors import at_least, check_options, one_of, seed_rule
from ..files import check_writable, write_json
from ..inference import PlaneModels, fit_to_size, slice_attention
from ..outputs import MANIFEST, OutputFolders
from ..runinfo import environment, plain
from ..stats.auc import DEFAULT_RESAMPLES, bootstrap_auc, bootstrap_indices
from ..stats.calibration import calibration
from ..stats.thresholds import cross_validated_operating_point, operating_point
from .report import ReportContent, plot_reliability, plot_roc, relations_of, save_csv, write_report
from .report_html import write_html_report
from .scores import PLANES_CHOSE_HERE, TaskScores, load_fitted_ensembles, run_scores
from .showcase import VIEWER_FOLDER, write_showcase

# The plane on which each finding shows best (sagittal for the ACL, coronal for the menisci);
# for `abnormal`, sagittal, the view that covers most structures of the knee.
HEATMAP_PLANE = {"abnormal": "sagittal", "acl": "sagittal", "meniscus": "coronal"}
HEATMAP_SLICES = 2
FIXED_THRESHOLD = 0.5
THRESHOLD_FOLDS = 5  # folds of the out-of-fold thresholds when no tuning split chose them


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
    planes: list[str] = field(default_factory=lambda: list(PLANES))  # the plane models and the stackers over them
    eval_max_slices: int | None = None  # None: the device's default (64 on the CPU, 512 on CUDA)
    heatmap_exams: int = 2  # positive exams per task shown with class activation maps
    viewer_exams: int = 2  # per task: true positives, false positives and false negatives with a viewer page each

    def out_dir(self) -> Path:
        return Path(self.out) if self.out else layout.report_dir(self.models_dir)


def validate_eval_config(cfg: EvalConfig) -> None:
    check_options(
        [
            *(one_of("--tasks", task, TASKS) for task in cfg.tasks),
            *(one_of("--planes", plane, PLANES) for plane in cfg.planes),
            one_of("--split", cfg.split, SPLITS),
            at_least("--bootstrap", cfg.bootstrap, 0),
            seed_rule(cfg.seed),
            at_least("--heatmap-exams", cfg.heatmap_exams, 0),
            at_least("--viewer-exams", cfg.viewer_exams, 0),
            one_of("--amp", cfg.amp, AMP_MODES),
            at_least("--eval-max-slices", cfg.eval_max_slices, 1),
        ]
    )


# ----------------------------------------------------------------------------- metrics


def model_operating_point(scores: TaskScores, model: str, split: str, seed: int) -> tuple[Any, str]:
    """The operating point at the model's saved threshold, or out-of-fold where that was chosen on this split."""
    table = scores.table
    labels, probs = table["label"].to_numpy(), table[model].to_numpy()
    saved = scores.saved.thresholds.get(model)
    if saved is None or (saved.chosen_on == split and scores.same_data):
        folds = scores.saved.folds if scores.saved.folds is not None else THRESHOLD_FOLDS
        return cross_validated_operating_point(labels, probs, folds, seed), f"{split}, out-of-fold"
    if not scores.same_data and scores.saved.data_dir:  # another cohort's split: say whose
        return operating_point(
            labels, probs, saved.threshold
        ), f"{saved.chosen_on} of {Path(scores.saved.data_dir).name}"
    return operating_point(labels, probs, saved.threshold), saved.chosen_on


def task_metrics(scores: TaskScores, split: str, resamples: int, seed: int) -> list[dict[str, Any]]:
    """One row per model of a task: AUC with interval, calibration, operating points (Youden's and 0.5)."""
    evaluated = scores.table
    labels = evaluated["label"].to_numpy()
    # Seeded by (seed, task) so a task's intervals do not depend on which other tasks are evaluated.
    rng = np.random.default_rng([seed, TASKS.index(scores.task)])
    indices = bootstrap_indices(len(labels), resamples, rng)
    rows = []
    for model in scores.models:
        probs = evaluated[model].to_numpy()
        interval = bootstrap_auc(labels, probs, indices)
        at_youden, chosen_on = model_operating_point(scores, model, split, seed)
        at_fixed = operating_point(labels, probs, FIXED_THRESHOLD)
        calibrated = calibration(labels, probs)
        rows.append(
            {
                "task": scores.task,
                "model": model,
                "split": split,
                "probabilities": scores.ensemble_relation(split)
                if model == "ensemble"
                else scores.plane_scored(model, split),
                "n": len(labels),
                "positives": int(labels.sum()),
                "auc": interval.auc,
                "auc_ci_low": interval.low,
                "auc_ci_high": interval.high,
                "bootstrap_used": interval.used,
                "brier": calibrated.brier,
                "ece": calibrated.ece,
                "mean_probability": calibrated.mean_probability,
                "prevalence": calibrated.prevalence,
                "threshold_youden": at_youden.threshold,
                "threshold_chosen_on": chosen_on,
                "sensitivity_youden": at_youden.sensitivity,
                "specificity_youden": at_youden.specificity,
                "accuracy_youden": at_youden.accuracy,
                "sensitivity_at_0.5": at_fixed.sensitivity,
                "specificity_at_0.5": at_fixed.specificity,
                "accuracy_at_0.5": at_fixed.accuracy,
            }
        )
    return rows


def relation(scores: TaskScores, model: str, split: str) -> str:
    """How a model's probabilities on the split relate to what chose it (the 'probabilities here' column)."""
    return scores.ensemble_relation(split) if model == "ensemble" else scores.plane_scored(model, split)


def with_mean_rows(rows: list[dict[str, Any]], split: str) -> pd.DataFrame:
    """The per-task rows plus, per model, the mean AUC over tasks (for the ensemble: the competition score)."""
    table = pd.DataFrame(rows)
    # NaN when a task's AUC is undefined: a mean over the remaining tasks would not be the competition's score.
    means = table.groupby("model", sort=False)["auc"].agg(lambda aucs: aucs.mean(skipna=False))
    extra = pd.DataFrame([{"task": "mean", "model": m, "split": split, "auc": means[m]} for m in means.index])
    merged = pd.concat([table, extra], ignore_index=True).reindex(columns=table.columns)
    return merged.astype({"n": "Int64", "positives": "Int64", "bootstrap_used": "Int64"})


# ----------------------------------------------------------------------------- outputs


def predictions_by_case(scores: dict[str, TaskScores], tasks: Sequence[str]) -> pd.DataFrame:
    """case, then per task the ensemble probability and the label, merged on case id, in case order."""
    merged: pd.DataFrame | None = None
    for task in tasks:
        part = (
            scores[task]
            .table[["case", "ensemble", "label"]]
            .rename(columns={"ensemble": task, "label": f"{task}_label"})
        )
        merged = part if merged is None else merged.merge(part, on="case", how="inner", validate="one_to_one")
    if merged is None:
        raise ValueError("predictions_by_case needs at least one task")
    return merged.sort_values("case").reset_index(drop=True)


def write_heatmaps(
    cfg: EvalConfig, task: str, evaluated: pd.DataFrame, folder: Path, models: PlaneModels
) -> list[tuple[str, Path]]:
    """CAM overlays for the positives with the highest ensemble probability, on the task's heatmap plane."""
    if cfg.heatmap_exams == 0:
        return []
    positives = evaluated[evaluated["label"] == 1].sort_values("ensemble", ascending=False, kind="stable")
    if positives.empty:
        return []
    planes = [p for p in PLANES if p in evaluated]
    plane = HEATMAP_PLANE[task] if HEATMAP_PLANE[task] in planes else planes[-1]  # sagittal, where there is one
    loaded = models.get(task, plane)  # the model that scored the exams, not best.pt read again
    model, size, device = loaded.model, loaded.image_size, models.device
    items: list[tuple[str, Path]] = []
    warned: set[tuple[Path, int]] = set()
    for row in positives.head(cfg.heatmap_exams).itertuples(index=False):
        path = series_path(cfg.data_dir, cfg.split, plane, row.case)
        series = fit_to_size(load_series(path), size, path, warned)  # as scored, so the heatmap shows what was seen
        cams, scores = class_activation_maps(model, series, device)
        weights = slice_attention(model, series, device)
        prefix = f"{task}-{row.case}-{plane}"
        for path in save_cam_overlays(series, cams, scores, folder, prefix, HEATMAP_SLICES, slice_weights=weights):
            items.append((f"{task} {row.case} {plane} (ensemble p = {row.ensemble:.2f})", path))
    return items


def provenance(cfg: EvalConfig, scores: dict[str, TaskScores], metrics: pd.DataFrame) -> list[str]:
    """How each number was made: which split chose the epochs, fitted the stackers, chose the thresholds.

    So that no one mistakes a figure from a split that chose something for a test figure.
    """
    split, lines = cfg.split, []
    fitted = sorted({ts.saved.data_dir for ts in scores.values() if not ts.same_data and ts.saved.data_dir})
    if fitted:
        lines.append(
            f"Scored on {Path(cfg.data_dir).name} ({cfg.data_dir}, its {split} split), another cohort than the one the "
            f"ensembles were fitted on ({', '.join(Path(d).name for d in fitted)}): external validation. Nothing was "
            "chosen on it: no epoch, stacker or threshold, so its figures are test figures."
        )
    if split == "train":
        lines.append(
            "Evaluated on the train split, which the plane models were trained on: all numbers are optimistic."
        )
    selectors = sorted({s for ts in scores.values() for s in ts.selected_on.values()})
    same_data = all(ts.same_data for ts in scores.values())
    text = " and ".join(
        f"the {s} split" + (" (train exams held out of training)" if s == "tune" else "") for s in selectors
    )
    if split in selectors and same_data:
        lines.append(
            f"The plane models' best epochs were chosen on {text}: this {split} split chose them, so the plane "
            "AUCs here are selection-biased (optimistic), not test figures."
        )
    else:
        lines.append(f"The plane models' best epochs were chosen on {text}; this {split} split chose nothing for them.")
    for task, ts in scores.items():
        line = f"The {task} ensemble was fitted on {ts.fit_on}"
        if ts.ensemble_scored == "out-of-fold":
            line += (
                " (cross-validated): its figures here are out-of-fold, each exam scored by a stacker fitted on the "
                "other folds of this split; predict.py uses the stacker refitted on the whole split."
            )
        elif ts.ensemble_scored == "in-sample":
            line += ", which includes these exams: its figures here are in-sample (optimistic)."
        elif ts.ensemble_relation(split) == PLANES_CHOSE_HERE:
            line += (
                ": these exams did not fit it, but they chose the epochs of the plane models it combines, so its "
                "figures here are selection-biased (optimistic), not test figures. Only a split that chose nothing "
                "gives test figures."
            )
        else:
            line += ": these exams are held out from it."
        lines.append(line)
        if ts.same_tuning_split():
            lines.append(
                f"The {task} plane models' epochs and its stacker were chosen on the same tuning split: the stacker "
                "learned from tuning probabilities made optimistic by the epoch choice (each epoch was picked where "
                "it scored best there), so it may weigh the planes more than new exams warrant."
            )
    sources = sorted(set(metrics.loc[metrics["task"] != "mean", "threshold_chosen_on"]))
    line = f"Operating thresholds (Youden's J) were chosen on {' / '.join(sources)}, never on training probabilities."
    if any("out-of-fold" in source for source in sources):
        line += (
            " Where no tuning split could (none, or one with under 2 exams of a class for the ensemble's) the "
            "evaluated split must supply them: 'out-of-fold' means each exam was called "
            "with a threshold chosen on the other folds, so no exam helped choose its own."
        )
    lines.append(line)
    return lines


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
    planes = plane_order(cfg.planes)
    tasks, skipped = layout.ready_tasks(cfg.models_dir, cfg.tasks, planes)
    for line in skipped:
        log(f"evaluate: {line}")
    out = cfg.out_dir()
    check_writable(out, "--out")
    scoring = Scoring.resolve(cfg.device, cfg.amp, cfg.eval_max_slices)
    models = PlaneModels(cfg.models_dir, scoring.device)  # each best.pt read once, for scores, heatmaps and pages
    ensembles = load_fitted_ensembles(models, tasks, planes)
    scores = run_scores(cfg.data_dir, cfg.models_dir, cfg.split, tasks, scoring, ensembles, models, planes)

    rows, roc_figures, reliability, heatmaps = [], {}, {}, {}
    for task in tasks:
        evaluated = scores[task].table
        rows += task_metrics(scores[task], cfg.split, cfg.bootstrap, cfg.seed)
        labels = evaluated["label"].to_numpy()
        probs = {m: evaluated[m].to_numpy() for m in scores[task].models}
        aucs = {r["model"]: r["auc"] for r in rows if r["task"] == task}
        roc_figures[task] = plot_roc(task, labels, probs, aucs, out / f"roc-{task}.png")
        reliability[task] = plot_reliability(task, labels, probs, out / f"calibration-{task}.png")
        heatmaps[task] = write_heatmaps(cfg, task, evaluated, out / "heatmaps", models)
    metrics = with_mean_rows(rows, cfg.split)
    save_csv(out / "metrics.csv", metrics)

    by_case = predictions_by_case(scores, tasks)
    save_csv(out / "predictions_with_ids.csv", by_case)
    labels = {t: by_case[f"{t}_label"].to_numpy() for t in tasks}
    score = float(metrics.loc[(metrics["task"] == "mean") & (metrics["model"] == "ensemble"), "auc"].iloc[0])
    notes = provenance(cfg, scores, metrics)
    full = set(tasks) == set(TASKS)
    if full:
        save_csv(out / "predictions.csv", by_case[list(TASKS)], header=False)
    else:
        notes.append("predictions.csv (competition format) needs all three tasks and was not written.")

    tables = {(task, cfg.split): scores[task].table for task in tasks}
    shown = write_showcase(cfg.data_dir, models, cfg.split, tables, metrics, tasks, cfg.viewer_exams, out, scoring)
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
        reliability_figures=reliability,
        heatmaps=heatmaps,
        notes=notes,
        viewer_pages={
            task: [(f"{s.kind} {s.case} (p = {s.probability:.2f})", s.page) for s in items]
            for task, items in shown.items()
        },
        viewer_index=out / VIEWER_FOLDER / "index.html" if any(shown.values()) else None,
        relations=relations_of(metrics),
    )
    report = write_report(out / "report.md", metrics, content)
    write_html_report(out / "report.html", metrics, content)
    write_json(out / "evaluate_config.json", plain(cfg))
    write_json(out / "evaluate_environment.json", environment())
    outputs = OutputFolders("evaluate", out)
    outputs.add([*roc_figures.values(), *reliability.values(), *(p for items in heatmaps.values() for _, p in items)])
    outputs.add([out / "metrics.csv", out / "predictions_with_ids.csv", *([out / "predictions.csv"] if full else [])])
    outputs.add([page for items in content.viewer_pages.values() for _, page in items])
    outputs.add([content.viewer_index] if content.viewer_index else [])
    outputs.add([report, out / "report.html", out / "evaluate_config.json", out / "evaluate_environment.json"])
    removed = outputs.finish()
    if removed:
        notes.append(
            f"{len(removed)} file(s) an earlier evaluate run wrote in {out} and this one did not were removed "
            f"(listed in {MANIFEST}): {', '.join(p.name for p in removed[:5])}" + (" ..." if len(removed) > 5 else "")
        )
    return Evaluation(metrics, cfg.split, len(by_case), cfg.bootstrap, score, notes, report)
