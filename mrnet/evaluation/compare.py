"""Comparing two runs on the same exams: is run B really better than run A?

Both runs score the same split of the same data, each model as its run reports it
(evaluation.scores). Per task and model (each plane and the ensemble): AUC A, AUC B, the
difference B - A with its 95 % interval and the two-sided p-value of DeLong's test for
correlated ROC curves (stats.delong). A paired bootstrap (the same resampled exams for
both runs) gives a second, assumption-light estimate of the same difference's spread; the
two should agree within sampling error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from .. import AMP_MODES, PLANES, SPLITS, TASKS, layout
from ..device import Scoring
from ..errors import MRNetError, at_least, check_options, one_of
from ..files import atomic_write, check_writable
from ..stats.auc import CI_LEVEL, DEFAULT_RESAMPLES, auc_rows, bootstrap_indices
from ..stats.delong import delong_test
from .scores import TaskScores, run_scores

MODELS = (*PLANES, "ensemble")


@dataclass
class CompareConfig:
    """Options of compare."""

    run_a: str
    run_b: str
    data_dir: str = "data/MRNet-v1.0"
    split: str = "valid"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    bootstrap: int = DEFAULT_RESAMPLES
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    eval_max_slices: int | None = None
    csv: str | None = None  # None: comparison-<split>.csv in run B's folder (never the current folder)

    def csv_path(self) -> Path:
        return Path(self.csv) if self.csv is not None else Path(self.run_b) / f"comparison-{self.split}.csv"


def validate_compare_config(cfg: CompareConfig) -> None:
    check_options(
        [
            *(one_of("--tasks", task, TASKS) for task in cfg.tasks),
            one_of("--split", cfg.split, SPLITS),
            at_least("--bootstrap", cfg.bootstrap, 0),
            one_of("--amp", cfg.amp, AMP_MODES),
            at_least("--eval-max-slices", cfg.eval_max_slices, 1),
        ]
    )


@dataclass(frozen=True)
class BootstrapDifference:
    """B - A over paired resamples: its standard error, percentile interval and a normal-theory p-value."""

    difference: float
    standard_error: float
    low: float
    high: float
    p_value: float
    used: int


def paired_bootstrap(
    labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, indices: np.ndarray, level: float = CI_LEVEL
) -> BootstrapDifference:
    """AUC B - AUC A on each resample of exams (the same exams for both), skipping one-class resamples.

    The p-value uses the bootstrap standard error in the same normal approximation as DeLong's
    test (2 x P(Z > |difference| / SE)), so the two differ only in how they estimate the spread.
    """
    labels = np.asarray(labels)
    point = auc_rows(labels, scores_b)[0] - auc_rows(labels, scores_a)[0]
    if math.isnan(point) or len(indices) == 0:
        return BootstrapDifference(point, math.nan, math.nan, math.nan, math.nan, 0)
    resampled_labels = labels[indices]
    differences = auc_rows(resampled_labels, np.asarray(scores_b)[indices]) - auc_rows(
        resampled_labels, np.asarray(scores_a)[indices]
    )
    differences = differences[~np.isnan(differences)]
    if len(differences) < 2:
        return BootstrapDifference(point, math.nan, math.nan, math.nan, math.nan, len(differences))
    se = float(np.std(differences, ddof=1))
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    if se > 0:
        p = float(2 * norm.sf(abs(point) / se))
    else:  # every resample gave the same difference: no spread to test a non-zero one against
        p = 1.0 if abs(point) < 1e-12 else math.nan
    return BootstrapDifference(float(point), se, float(low), float(high), p, len(differences))


def paired_tables(a: TaskScores, b: TaskScores) -> pd.DataFrame:
    """The two runs' probabilities side by side, merged on case; the labels must agree."""
    merged = a.table.merge(b.table, on="case", how="inner", suffixes=("_a", "_b"), validate="one_to_one")
    if len(merged) != len(a.table) or len(merged) != len(b.table):
        raise MRNetError(f"{a.task}: the two runs scored different exams; compare them on the same data")
    if not (merged["label_a"] == merged["label_b"]).all():
        raise MRNetError(f"{a.task}: the two runs' labels differ for the same exams")
    return merged.rename(columns={"label_a": "label"}).drop(columns="label_b")


def compare_task(a: TaskScores, b: TaskScores, split: str, resamples: int, seed: int) -> list[dict]:
    """One row per model of a task: both AUCs, DeLong's difference, interval and p, and the paired bootstrap's."""
    merged = paired_tables(a, b)
    labels = merged["label"].to_numpy()
    # Seeded by (seed, task) like evaluate's intervals; the same resamples serve every model of the task.
    indices = bootstrap_indices(len(labels), resamples, np.random.default_rng([seed, TASKS.index(a.task)]))
    rows = []
    for model in MODELS:
        scores_a, scores_b = merged[f"{model}_a"].to_numpy(), merged[f"{model}_b"].to_numpy()
        test = delong_test(labels, scores_a, scores_b)
        boot = paired_bootstrap(labels, scores_a, scores_b, indices)
        rows.append(
            {
                "task": a.task,
                "model": model,
                "split": split,
                "n": len(labels),
                "positives": int(labels.sum()),
                "auc_a": test.auc_a,
                "auc_b": test.auc_b,
                "difference": test.difference,
                "ci_low": test.low,
                "ci_high": test.high,
                "se_delong": test.standard_error,
                "p_delong": test.p_value,
                "se_bootstrap": boot.standard_error,
                "ci_low_bootstrap": boot.low,
                "ci_high_bootstrap": boot.high,
                "p_bootstrap": boot.p_value,
                "bootstrap_used": boot.used,
                "scored_a": a.ensemble_scored if model == "ensemble" else a.plane_scored(model, split),
                "scored_b": b.ensemble_scored if model == "ensemble" else b.plane_scored(model, split),
            }
        )
    return rows


FEW_EXAMS = 5  # below this many exams of a class, DeLong's normal approximation and the bootstrap say little


def few_exams_warnings(table: pd.DataFrame, split: str) -> list[str]:
    """A warning per task whose split holds fewer than FEW_EXAMS exams of a class."""
    notes = []
    for task, rows in table.groupby("task", sort=False):
        n, positives = int(rows["n"].iloc[0]), int(rows["positives"].iloc[0])
        smaller = min(positives, n - positives)
        if smaller < FEW_EXAMS:
            which = "positive" if positives <= n - positives else "negative"
            notes.append(
                f"{task}: the {split} split holds {smaller} {which} exam(s); with fewer than {FEW_EXAMS} "
                "of a class the intervals and p-values are unreliable (n/a below 2)"
            )
    return notes


def comparison_notes(scores: dict[str, dict[str, TaskScores]], split: str) -> list[str]:
    """Where a run's figures on this split are not held out, the comparison favours that run."""
    notes = []
    for name, run in scores.items():
        chose = sorted({f"{t}-{p}" for t, ts in run.items() for p in PLANES if ts.plane_scored(p, split) != "held-out"})
        if chose:
            notes.append(
                f"run {name}: this {split} split chose the epochs of {', '.join(chose)} (optimistic for {name})"
            )
        fitted = sorted(t for t, ts in run.items() if ts.ensemble_scored == "in-sample")
        if fitted:
            notes.append(f"run {name}: the ensembles of {', '.join(fitted)} were fitted on these exams (in-sample)")
    return notes


@dataclass
class Comparison:
    table: pd.DataFrame
    notes: list[str]
    warnings: list[str]
    csv: Path


def compare_runs(cfg: CompareConfig, log: Callable[[str], None] = print) -> Comparison:
    """Score both runs on the same split and compare every model of every task both runs have."""
    validate_compare_config(cfg)
    path = cfg.csv_path()
    check_writable(path.parent, "--out")
    ready = {}
    for name, folder in (("A", cfg.run_a), ("B", cfg.run_b)):
        ready[name], skipped = layout.ready_tasks(folder, cfg.tasks)
        for line in skipped:
            log(f"compare: run {name}: {line}")
    tasks = [t for t in cfg.tasks if t in ready["A"] and t in ready["B"]]
    if not tasks:
        raise MRNetError("the two runs have no task in common with all three plane models and an ensemble")
    scoring = Scoring.resolve(cfg.device, cfg.amp, cfg.eval_max_slices)
    scores = {
        name: run_scores(cfg.data_dir, folder, cfg.split, tasks, scoring)
        for name, folder in (("A", cfg.run_a), ("B", cfg.run_b))
    }
    rows = [
        row for t in tasks for row in compare_task(scores["A"][t], scores["B"][t], cfg.split, cfg.bootstrap, cfg.seed)
    ]
    table = pd.DataFrame(rows)
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return Comparison(table, comparison_notes(scores, cfg.split), few_exams_warnings(table, cfg.split), path)
