"""The stacker of one task: a logistic regression over the three planes' log-odds, its thresholds, its probabilities.

train_meta fits it (mrnet.ensemble); evaluate and predict read a saved one. Kept apart from the
command so that reading a saved stacker does not pull in the fitting command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from . import PLANES
from .ensemble_format import ensemble_probabilities, features
from .errors import MRNetError
from .stats.thresholds import fold_count, youden_threshold


def new_stacker(seed: int) -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)


def out_of_fold(table: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Each exam's ensemble probability from a stacker fitted on the other folds (stratified, seeded).

    Deterministic in (the table's cases and labels, folds, seed): train_meta and evaluate
    compute the same numbers.
    """
    labels = table["label"].to_numpy()
    n_folds = fold_count(labels, folds)
    if n_folds == 0:
        counts = np.bincount(labels, minlength=2).tolist()
        raise MRNetError(f"cross-validation needs at least 2 exams of each class, found {counts} (negative, positive)")
    x, probs = features(table), np.zeros(len(table))
    for fit_idx, score_idx in StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x, labels):
        probs[score_idx] = new_stacker(seed).fit(x[fit_idx], labels[fit_idx]).predict_proba(x[score_idx])[:, 1]
    return probs


def fit_stacker(
    fitted_on: pd.DataFrame | None, valid: pd.DataFrame, fit_on: str, folds: int, seed: int
) -> tuple[LogisticRegression, np.ndarray]:
    """Fit the stacker; return it and its valid-split probabilities used for the reported AUC.

    fit_on "tune" or "train": fitted on `fitted_on` (the CNNs' probabilities on those exams),
    then applied to valid. fit_on "valid-cv": out-of-fold probabilities on the valid split (each
    exam scored by a stacker that never saw it), then a final fit on the whole valid split.
    """
    if fit_on == "valid-cv":
        return new_stacker(seed).fit(features(valid), valid["label"].to_numpy()), out_of_fold(valid, folds, seed)
    labels = fitted_on["label"].to_numpy()
    if len(np.unique(labels)) < 2:
        raise MRNetError(f"the {fit_on} exams hold one class only; the stacker cannot be fitted on them")
    model = new_stacker(seed).fit(features(fitted_on), labels)
    return model, model.predict_proba(features(valid))[:, 1]


# ----------------------------------------------------------------------------- operating thresholds


@dataclass(frozen=True)
class Threshold:
    """A model's operating threshold (Youden's J) and the probabilities it was chosen on."""

    threshold: float
    chosen_on: str  # the split: "tune" or "valid"
    scored: str  # how those probabilities relate to the model: "held-out", "out-of-fold" or "in-sample"


def choose_thresholds(
    tables: dict[str, pd.DataFrame], ensemble: dict[str, np.ndarray], scored: dict[str, str]
) -> dict[str, Threshold]:
    """Per model, Youden's threshold on the tuning split when there is one, else on valid; never on train.

    `tables` holds the plane probabilities per split, `ensemble` the ensemble's probabilities on
    the same splits and `scored` how each was obtained. A threshold chosen on valid is fine for
    prediction, but evaluate then chooses one per fold so no valid exam is called with a
    threshold it helped choose.
    """
    split = "tune" if "tune" in ensemble else "valid"
    labels = tables[split]["label"].to_numpy()
    chosen = {p: Threshold(youden_threshold(labels, tables[split][p].to_numpy()), split, "held-out") for p in PLANES}
    chosen["ensemble"] = Threshold(youden_threshold(labels, ensemble[split]), split, scored[split])
    return chosen


# ----------------------------------------------------------------------------- saved stackers


def saved_thresholds(bundle: dict[str, Any]) -> dict[str, Threshold]:
    """The thresholds train_meta chose, or none for stackers saved before it chose them."""
    return {model: Threshold(**values) for model, values in bundle.get("thresholds", {}).items()}


def fitted_on_these_exams(bundle: dict[str, Any], data_dir: str | Path, split: str, cases: list[str]) -> str:
    """How a stacker's probabilities on these exams relate to its fit: held-out, out-of-fold or in-sample.

    Out-of-fold when it was cross-validated on exactly these exams (valid-cv on this split:
    the figures then come from the fold stackers); in-sample when it was fitted on some of them.
    """
    if "fit_split" not in bundle:  # saved before stackers recorded their exams: judge by the split's name
        fitted_split = "valid" if bundle["fit_on"] == "valid-cv" else "train"
        return "in-sample" if split == fitted_split else "held-out"
    same_data = bundle.get("data_dir") == str(Path(data_dir).resolve()) and bundle["fit_split"] == split
    fitted = set(bundle["fit_cases"])
    if not (same_data and fitted & set(cases)):
        return "held-out"
    return "out-of-fold" if bundle["fit_on"] == "valid-cv" and fitted == set(cases) else "in-sample"


def scored_ensemble(
    bundle: dict[str, Any], table: pd.DataFrame, data_dir: str | Path, split: str
) -> tuple[np.ndarray, str]:
    """The ensemble's probabilities on `table`'s exams, out-of-fold where it was cross-validated on them."""
    relation = fitted_on_these_exams(bundle, data_dir, split, list(table["case"]))
    if relation != "out-of-fold":
        return ensemble_probabilities(bundle, table), relation
    ordered = table.sort_values("case").reset_index(drop=True)  # the order train_meta's folds were drawn in
    probs = pd.Series(out_of_fold(ordered, bundle["folds"], bundle["seed"]), index=ordered["case"])
    return probs.loc[list(table["case"])].to_numpy(), relation
