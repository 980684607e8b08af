"""A run's probabilities on a split, each model's as the run reports it, with where each came from.

Plane probabilities come from the path train_meta uses (inference.plane_probabilities); the
ensemble's from the saved stacker, or, where the stacker was cross-validated on these very
exams (--fit-on valid-cv), from the fold stackers that did not see each exam. Every table
says how its numbers relate to the models: which split chose the plane models' epochs, and
whether the ensemble's probabilities are held-out, out-of-fold or in-sample here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import LEGACY_RECIPE, PLANES, layout, plane_order
from ..device import Scoring
from ..ensemble.file import SavedEnsemble, load_ensemble
from ..ensemble.stacker import scored_ensemble
from ..inference import PlaneModels, plane_probabilities

PLANES_CHOSE_HERE = "planes' epochs chosen here"  # the ensemble's label on a split that chose its planes' epochs


@dataclass
class TaskScores:
    """One task's probabilities on one split, and their provenance."""

    task: str
    table: pd.DataFrame  # case, label, the planes (axial, coronal, sagittal or fewer), ensemble
    saved: SavedEnsemble  # the saved stacker and what it was fitted on
    ensemble_scored: str  # "held-out", "out-of-fold" or "in-sample"
    selected_on: dict[str, str]  # plane -> the split that chose its best epoch
    same_data: bool  # whether the split is the one train_meta worked on (not another dataset's)

    @property
    def models(self) -> tuple[str, ...]:
        """The models scored, in the order tables show them: the planes, then the ensemble."""
        return (*self.selected_on, "ensemble")

    @property
    def fit_on(self) -> str:
        return self.saved.fit_on

    def ensemble_relation(self, split: str) -> str:
        """How the ensemble's probabilities here relate to what chose it: never held-out on a split that chose
        a plane model's epoch, since the stacker combines exactly those selection-biased planes."""
        if self.ensemble_scored == "held-out" and self.same_data and split in self.selected_on.values():
            return PLANES_CHOSE_HERE
        return self.ensemble_scored

    def same_tuning_split(self) -> bool:
        """Whether the planes' epochs and the stacker were both chosen on the tuning split (--select-on tune,
        --fit-on tune): the stacker then learned from probabilities the epoch choice made optimistic."""
        return self.fit_on == "tune" and "tune" in self.selected_on.values()

    def plane_scored(self, plane: str, split: str) -> str:
        """held-out; in-sample on train; 'chose the epoch' on the split that picked the plane model's epoch."""
        if split == "train":
            return "in-sample"
        if self.same_data and self.selected_on[plane] == split:
            return "chose the epoch"
        return "held-out"


def selected_on(models: PlaneModels, task: str, planes: Sequence[str] = PLANES) -> dict[str, str]:
    """Per plane, the split that chose the best epoch (valid for runs saved before the tuning split)."""
    return {plane: models.get(task, plane).config.get("select_on", LEGACY_RECIPE["select_on"]) for plane in planes}


def load_fitted_ensembles(
    models: PlaneModels, tasks: Sequence[str], planes: Sequence[str] = PLANES
) -> dict[str, SavedEnsemble]:
    """Each task's stacker over `planes`, checked against the plane models loaded (the bytes hashed are the bytes
    used)."""
    ensembles = {}
    for task in tasks:
        path = layout.ensemble_file(models.models_dir, task)
        saved = load_ensemble(path, task, planes)
        models.check_fitted(task, saved.checkpoints, path)
        ensembles[task] = saved
    return ensembles


def run_scores(
    data_dir: str | Path,
    models_dir: str | Path,
    split: str,
    tasks: Sequence[str],
    scoring: Scoring,
    ensembles: dict[str, SavedEnsemble] | None = None,
    models: PlaneModels | None = None,
    planes: Sequence[str] = PLANES,
) -> dict[str, TaskScores]:
    """task -> its planes' and ensemble's probabilities on `split` of `data_dir`.

    `models`: the command's loaded plane models, reused for its heatmaps and pages; loaded here
    otherwise. `ensembles`: the tasks' stackers already checked against `models`; loaded and
    checked here otherwise.
    """
    models = models if models is not None else PlaneModels(models_dir, scoring.device)
    planes = plane_order(planes)
    if ensembles is None:
        ensembles = load_fitted_ensembles(models, tasks, planes)
    tables = plane_probabilities(data_dir, models_dir, tasks, [split], scoring, models=models, planes=planes)
    scores = {}
    for task in tasks:
        saved = ensembles[task]
        table = tables[(task, split)]
        ensemble, relation = scored_ensemble(saved, table, data_dir, split)
        fitted_data = saved.data_dir
        scores[task] = TaskScores(
            task=task,
            table=table.assign(ensemble=ensemble),
            saved=saved,
            ensemble_scored=relation,
            selected_on=selected_on(models, task, planes),
            same_data=fitted_data is None or fitted_data == str(Path(data_dir).resolve()),
        )
    return scores
