"""The stacker of one task: a logistic regression over its planes' logits, its thresholds, its probabilities.

train_meta fits it (ensemble.fit); evaluate and predict score a saved one (ensemble.file). Kept
apart from the command so that scoring a saved stacker does not pull in the fitting command.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from .. import LOGIT, PLANES
from ..errors import MRNetError
from ..stats.thresholds import fold_count, youden_threshold
from .file import LOGITS, PROBABILITY, SavedEnsemble, Threshold

LOG_ODDS_CLIP = 1e-6  # how stackers saved as LOG_ODDS clipped probabilities before the log-odds: at most +-13.8


def features(table: pd.DataFrame, kind: str = LOGITS, planes: Sequence[str] = PLANES) -> np.ndarray:
    """(n, planes) stacker inputs from a score table: the planes' logits (`<plane>_logit`), or what older stackers took.

    Logits, because the stacker's L2 penalty (C = 1) shrinks the large weights that
    probabilities in [0, 1] need, and its output is then under-confident, not calibrated
    (measured on simulated held-out plane probabilities, 300 fitting exams: expected
    calibration error 0.11 with probabilities, 0.016 with log-odds). The float64 logits
    themselves, not the log-odds of rounded probabilities: clipping those at 1e-6 made every
    logit past 13.8 the same number, so a plane that separates with confident logits looked
    uninformative. Stackers saved with clipped log-odds or probabilities still load and are
    applied as they were fitted.
    """
    if kind == LOGITS:
        columns = [f"{plane}{LOGIT}" for plane in planes]
        missing = [c for c in columns if c not in table]
        if missing:
            raise MRNetError(f"the stacker needs the planes' logits; the score table lacks {', '.join(missing)}")
        return table[columns].to_numpy(dtype=np.float64)
    probs = table[list(planes)].to_numpy(dtype=np.float64)
    if kind == PROBABILITY:
        return probs
    clipped = np.clip(probs, LOG_ODDS_CLIP, 1 - LOG_ODDS_CLIP)
    return np.log(clipped / (1 - clipped))


def ensemble_probabilities(saved: SavedEnsemble, table: pd.DataFrame) -> np.ndarray:
    """P(positive) = sigmoid(x . coef + intercept), what scikit-learn's predict_proba gives for a binary model.

    x holds the planes' inputs in the saved plane order, as the stacker was fitted (logits, or older kinds).
    """
    x = features(table, saved.features, saved.planes)
    return expit(x @ np.asarray(saved.coef, dtype=np.float64) + saved.intercept)


def new_stacker(seed: int) -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)


def out_of_fold(table: pd.DataFrame, folds: int, seed: int, planes: Sequence[str] = PLANES) -> np.ndarray:
    """Each exam's ensemble probability from a stacker fitted on the other folds (stratified, seeded).

    Deterministic in (the table's cases and labels, folds, seed): train_meta and evaluate
    compute the same numbers.
    """
    labels = table["label"].to_numpy()
    n_folds = fold_count(labels, folds)
    if n_folds == 0:
        counts = np.bincount(labels, minlength=2).tolist()
        raise MRNetError(f"cross-validation needs at least 2 exams of each class, found {counts} (negative, positive)")
    x, probs = features(table, planes=planes), np.zeros(len(table))
    for fit_idx, score_idx in StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(x, labels):
        probs[score_idx] = new_stacker(seed).fit(x[fit_idx], labels[fit_idx]).predict_proba(x[score_idx])[:, 1]
    return probs


def fit_stacker(
    fitted_on: pd.DataFrame | None,
    valid: pd.DataFrame,
    fit_on: str,
    folds: int,
    seed: int,
    planes: Sequence[str] = PLANES,
) -> tuple[LogisticRegression, np.ndarray]:
    """Fit the stacker; return it and its valid-split probabilities used for the reported AUC.

    fit_on "tune" or "train": fitted on `fitted_on` (the CNNs' probabilities on those exams),
    then applied to valid. fit_on "valid-cv": out-of-fold probabilities on the valid split (each
    exam scored by a stacker that never saw it), then a final fit on the whole valid split.
    """
    if fit_on == "valid-cv":
        model = new_stacker(seed).fit(features(valid, planes=planes), valid["label"].to_numpy())
        return model, out_of_fold(valid, folds, seed, planes)
    assert fitted_on is not None  # tune or train: fit_ensembles passes those exams
    labels = fitted_on["label"].to_numpy()
    if len(np.unique(labels)) < 2:
        raise MRNetError(f"the {fit_on} exams hold one class only; the stacker cannot be fitted on them")
    model = new_stacker(seed).fit(features(fitted_on, planes=planes), labels)
    return model, model.predict_proba(features(valid, planes=planes))[:, 1]


# ----------------------------------------------------------------------------- operating thresholds


def choose_thresholds(
    tables: dict[str, pd.DataFrame],
    ensemble: dict[str, np.ndarray],
    scored: dict[str, str],
    plane_split: str,
    planes: Sequence[str] = PLANES,
) -> dict[str, Threshold]:
    """Per model, Youden's threshold on probabilities that model was not fitted on; never on train.

    `tables` holds the plane probabilities per split and `plane_split` the split the planes'
    thresholds are chosen on. `ensemble` holds the ensemble's probabilities on the splits
    where they are held-out or out-of-fold (never its own fitted ones), `scored` how each was
    obtained: its threshold is chosen on tune when there, else on valid. A threshold chosen on
    valid is fine for prediction, but evaluate then chooses one per fold so no valid exam is
    called with a threshold it helped choose.
    """
    if any(relation == "in-sample" for relation in scored.values()):
        raise ValueError("a threshold is never chosen on the stacker's own fitted probabilities")
    labels = tables[plane_split]["label"].to_numpy()
    chosen = {
        p: Threshold(youden_threshold(labels, tables[plane_split][p].to_numpy()), plane_split, "held-out")
        for p in planes
    }
    split = "tune" if "tune" in ensemble else "valid"
    labels = tables[split]["label"].to_numpy()
    chosen["ensemble"] = Threshold(youden_threshold(labels, ensemble[split]), split, scored[split])
    return chosen


# ----------------------------------------------------------------------------- saved stackers


def fitted_on_these_exams(saved: SavedEnsemble, data_dir: str | Path, split: str, cases: list[str]) -> str:
    """How a stacker's probabilities on these exams relate to its fit: held-out, out-of-fold or in-sample.

    Out-of-fold when it was cross-validated on exactly these exams (valid-cv on this split:
    the figures then come from the fold stackers); in-sample when it was fitted on some of them.
    """
    if saved.fit_split is None:  # saved before stackers recorded their exams: judge by the split's name
        fitted_split = "valid" if saved.fit_on == "valid-cv" else "train"
        return "in-sample" if split == fitted_split else "held-out"
    same_data = saved.data_dir == str(Path(data_dir).resolve()) and saved.fit_split == split
    fitted = set(saved.fit_cases or ())
    if not (same_data and fitted & set(cases)):
        return "held-out"
    return "out-of-fold" if saved.fit_on == "valid-cv" and fitted == set(cases) else "in-sample"


def scored_ensemble(
    saved: SavedEnsemble, table: pd.DataFrame, data_dir: str | Path, split: str
) -> tuple[np.ndarray, str]:
    """The ensemble's probabilities on `table`'s exams, out-of-fold where it was cross-validated on them."""
    relation = fitted_on_these_exams(saved, data_dir, split, list(table["case"]))
    if relation != "out-of-fold":
        return ensemble_probabilities(saved, table), relation
    assert saved.folds is not None and saved.seed is not None  # the file check requires them with fit_split
    ordered = table.sort_values("case").reset_index(drop=True)  # the order train_meta's folds were drawn in
    probs = pd.Series(out_of_fold(ordered, saved.folds, saved.seed, saved.planes), index=ordered["case"])
    return probs.loc[list(table["case"])].to_numpy(), relation
