"""The stacked ensemble: per task, a logistic regression over the three planes' probabilities.

Per-plane predictions are merged on case id with pandas, never by position, so a missing
or reordered exam cannot silently pair one exam's sagittal score with another's axial.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from . import AMP_MODES, FIT_ON, PLANES, TASKS, layout
from .checkpoint import load_checkpoint
from .device import Scoring
from .errors import MRNetError, at_least, check_options, one_of
from .evaluation.metrics import auc_or_nan, has_both_classes
from .files import atomic_write, write_json
from .inference import plane_probabilities
from .runinfo import environment, plain

TABLE_COLUMNS = ["task", *PLANES, "ensemble"]


@dataclass
class MetaConfig:
    """Options of train_meta (saved as meta_config.json next to the ensembles)."""

    data_dir: str = "data/MRNet-v1.0"
    models_dir: str = "models"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    fit_on: str = "train"  # the paper's protocol; "valid-cv" avoids in-sample optimism
    folds: int = 5
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    eval_max_slices: int | None = None  # None: the device's default (64 on the CPU, 512 on CUDA)


# ----------------------------------------------------------------------------- the stacker


def new_stacker(seed: int) -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)


def fit_stacker(
    train: pd.DataFrame, valid: pd.DataFrame, fit_on: str, folds: int, seed: int
) -> tuple[LogisticRegression, np.ndarray]:
    """Fit the stacker; return it and its valid-split probabilities used for the reported AUC.

    fit_on="train": the paper's protocol, fitted on the CNNs' training-set probabilities.
    fit_on="valid-cv": out-of-fold probabilities on the valid split (each exam scored by a
    stacker that never saw it), then a final fit on the whole valid split.
    """
    features = list(PLANES)
    if fit_on == "train":
        if not has_both_classes(train["label"].to_numpy()):
            raise MRNetError("the train split has one class only; the stacker cannot be fitted on it")
        model = new_stacker(seed).fit(train[features].to_numpy(), train["label"].to_numpy())
        return model, model.predict_proba(valid[features].to_numpy())[:, 1]
    labels = valid["label"].to_numpy()
    counts = np.bincount(labels, minlength=2)
    if counts.min() < 2:
        raise MRNetError(f"--fit-on valid-cv needs at least 2 exams of each class in valid, found {counts.tolist()}")
    n_folds = int(min(folds, counts.min()))
    out_of_fold = np.zeros(len(valid))
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    x = valid[features].to_numpy()
    for fit_idx, score_idx in splitter.split(x, labels):
        fold_model = new_stacker(seed).fit(x[fit_idx], labels[fit_idx])
        out_of_fold[score_idx] = fold_model.predict_proba(x[score_idx])[:, 1]
    return new_stacker(seed).fit(x, labels), out_of_fold


def save_ensemble(path: Path, model: LogisticRegression, task: str, fit_on: str) -> None:
    bundle = {
        "model": model,
        "task": task,
        "planes": list(PLANES),
        "features": "per-plane probability",
        "fit_on": fit_on,
        "sklearn_version": sklearn.__version__,
    }
    atomic_write(path, lambda tmp: joblib.dump(bundle, tmp))


def load_ensemble(path: str | Path) -> dict[str, Any]:
    """Load a stacker; warn when scikit-learn differs from the version that saved it."""
    path = Path(path)
    if not path.is_file():
        raise MRNetError(f"ensemble {path} not found; run scripts/train_meta.py first")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's own pickle warning; ours below is clearer
            bundle = joblib.load(path)
    except Exception as err:
        raise MRNetError(f"{path} is not a readable ensemble file ({type(err).__name__}: {err})") from None
    if not isinstance(bundle, dict) or "model" not in bundle or "sklearn_version" not in bundle:
        raise MRNetError(f"{path} is not an MRNet ensemble file")
    if bundle["sklearn_version"] != sklearn.__version__:
        warnings.warn(
            f"{path} was saved with scikit-learn {bundle['sklearn_version']} and is loaded with "
            f"{sklearn.__version__}; predictions may differ slightly - refit with scripts/train_meta.py",
            stacklevel=2,
        )
    return bundle


def ensemble_probabilities(bundle: dict[str, Any], table: pd.DataFrame) -> np.ndarray:
    return bundle["model"].predict_proba(table[bundle["planes"]].to_numpy())[:, 1]


# ----------------------------------------------------------------------------- the command


def validate_meta_config(cfg: MetaConfig) -> None:
    check_options(
        [
            *(one_of("--tasks", task, TASKS) for task in cfg.tasks),
            one_of("--fit-on", cfg.fit_on, FIT_ON),
            at_least("--folds", cfg.folds, 2),
            one_of("--amp", cfg.amp, AMP_MODES),
            at_least("--eval-max-slices", cfg.eval_max_slices, 1),
        ]
    )


def fit_ensembles(cfg: MetaConfig, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Fit one stacker per task with all three planes trained; write the ensembles and the AUC table."""
    validate_meta_config(cfg)
    ready, missing = layout.complete_tasks(cfg.models_dir, cfg.tasks, with_ensemble=False)
    lines = [f"{task}: no checkpoint {path}" for task, paths in missing.items() for path in paths]
    for line in lines:
        log(f"ensemble: skipped {line}")
    if not ready:
        raise MRNetError(
            "no task has all three plane checkpoints in "
            + str(cfg.models_dir)
            + ":\n  "
            + "\n  ".join(lines)
            + "\ntrain them with scripts/train_plane.py or scripts/train_all.py"
        )
    for task in ready:  # a wrong or corrupt checkpoint is reported before any long computation
        for plane in PLANES:
            load_checkpoint(layout.best_checkpoint(cfg.models_dir, task, plane), task, plane)

    splits = ("train", "valid") if cfg.fit_on == "train" else ("valid",)
    scoring = Scoring.resolve(cfg.device, cfg.amp, cfg.eval_max_slices)
    probs = plane_probabilities(cfg.data_dir, cfg.models_dir, ready, splits, scoring)
    rows, valid_out = [], []
    for task in ready:
        valid = probs[(task, "valid")]
        train = probs.get((task, "train"))
        model, ens = fit_stacker(train, valid, cfg.fit_on, cfg.folds, cfg.seed)
        save_ensemble(layout.ensemble_file(cfg.models_dir, task), model, task, cfg.fit_on)
        labels = valid["label"].to_numpy()
        rows.append(
            {"task": task, **{p: auc_or_nan(labels, valid[p]) for p in PLANES}, "ensemble": auc_or_nan(labels, ens)}
        )
        valid_out.append(valid.assign(ensemble=ens, task=task)[["task", "case", "label", *PLANES, "ensemble"]])

    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    out = Path(cfg.models_dir)
    atomic_write(out / layout.AUC_TABLE, lambda tmp: table.to_csv(tmp, index=False, float_format="%.4f"))
    predictions = pd.concat(valid_out, ignore_index=True)
    atomic_write(
        out / layout.ENSEMBLE_PREDICTIONS, lambda tmp: predictions.to_csv(tmp, index=False, float_format="%.6f")
    )
    write_json(out / "meta_config.json", plain(cfg))
    write_json(out / "meta_environment.json", environment())
    return table
