"""The ensemble file: a stacker stored as plain numbers, so loading a shared models folder runs no code.

`ensemble-<task>.json` holds what scikit-learn's binary LogisticRegression needs to predict
(coefficients per plane, intercept, classes), the planes in column order, how it was fitted,
the scikit-learn version, and the sha256 of each plane checkpoint it was fitted on. The
commands load only this file, strictly (types, shapes, planes). The pickled
`ensemble-<task>.joblib` written beside it is for scikit-learn users and is never loaded
unless asked for by name, because unpickling a file runs whatever code it holds.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from . import FIT_ON, PLANES, TASKS, layout
from .errors import MRNetError
from .invocation import command

FORMAT = "mrnet-ensemble"
FORMAT_VERSION = 1
LOG_ODDS, PROBABILITY = "per-plane log-odds", "per-plane probability"  # the stacker's inputs, as bundles name them
FEATURES = (LOG_ODDS, PROBABILITY)
LOG_ODDS_CLIP = 1e-6  # probabilities are clipped to [1e-6, 1 - 1e-6] before the log-odds: at most +-13.8


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_hashes(models_dir: str | Path, task: str) -> dict[str, str]:
    """sha256 of each plane's best.pt: what an ensemble was fitted on, compared again before it is used."""
    return {plane: file_sha256(layout.best_checkpoint(models_dir, task, plane)) for plane in PLANES}


def ensemble_payload(
    model: Any, task: str, fit_on: str, checkpoints: dict[str, str], sklearn_version: str, **record: Any
) -> dict[str, Any]:
    """The JSON form of a fitted binary LogisticRegression over the planes' log-odds.

    `record`: what the stacker was fitted on (folds, seed, data_dir, fit_split, fit_cases) and
    the operating thresholds chosen for it, as plain values.
    """
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": task,
        "planes": list(PLANES),
        "features": LOG_ODDS,
        "fit_on": fit_on,
        "sklearn_version": sklearn_version,
        "classes": [int(c) for c in model.classes_],
        "coef": [float(c) for c in np.asarray(model.coef_, dtype=float).reshape(-1)],
        "intercept": float(np.asarray(model.intercept_, dtype=float).reshape(-1)[0]),
        "checkpoints": dict(checkpoints),
        **record,
    }


def ensemble_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2) + "\n"


def load_ensemble(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Read and check an ensemble JSON; warn when scikit-learn differs from the version that fitted it."""
    path = Path(path)
    if not path.is_file():
        raise MRNetError(f"ensemble {path} not found; run {command('train-meta')} first")
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise MRNetError(f"{path} is not a readable ensemble file ({type(err).__name__}: {err})") from None
    problems = _problems(bundle, task)
    if problems:
        raise MRNetError(f"{path} is not a valid MRNet ensemble file: {'; '.join(problems)}")
    import sklearn

    if bundle["sklearn_version"] != sklearn.__version__:
        warnings.warn(
            f"{path} was saved with scikit-learn {bundle['sklearn_version']} and is loaded with "
            f"{sklearn.__version__}; its numbers are plain coefficients, so predictions are unchanged, "
            f"but refit with {command('train-meta')} to be sure",
            stacklevel=2,
        )
    bundle["coef"] = np.asarray(bundle["coef"], dtype=np.float64)
    return bundle


def _problems(bundle: Any, task: str | None) -> list[str]:
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        return [f"no '{FORMAT}' marker"]
    if bundle.get("format_version") != FORMAT_VERSION:
        return [f"format version {bundle.get('format_version')!r}, this version reads {FORMAT_VERSION}"]
    problems = []
    if bundle.get("task") not in TASKS or (task is not None and bundle.get("task") != task):
        problems.append(f"task {bundle.get('task')!r}, expected {task or 'one of ' + ', '.join(TASKS)}")
    planes = bundle.get("planes")
    if not isinstance(planes, list) or sorted(planes) != sorted(PLANES):
        problems.append(f"planes {planes!r}, expected each of {', '.join(PLANES)} once")
    if bundle.get("classes") != [0, 1]:
        problems.append(f"classes {bundle.get('classes')!r}, expected [0, 1]")
    coef = bundle.get("coef")
    if not (isinstance(coef, list) and len(coef) == len(PLANES) and all(_finite_number(c) for c in coef)):
        problems.append(f"coef {coef!r}, expected {len(PLANES)} finite numbers")
    if not _finite_number(bundle.get("intercept")):
        problems.append(f"intercept {bundle.get('intercept')!r}, expected a finite number")
    if bundle.get("features") not in FEATURES:
        problems.append(f"features {bundle.get('features')!r}, expected one of {', '.join(FEATURES)}")
    if not isinstance(bundle.get("thresholds", {}), dict):
        problems.append("thresholds: expected an object per model")
    if bundle.get("fit_on") not in FIT_ON:
        problems.append(f"fit_on {bundle.get('fit_on')!r}, expected one of {', '.join(FIT_ON)}")
    if not isinstance(bundle.get("sklearn_version"), str):
        problems.append("no scikit-learn version")
    hashes = bundle.get("checkpoints")
    if not (
        isinstance(hashes, dict)
        and sorted(hashes) == sorted(PLANES)
        and all(isinstance(h, str) and len(h) == 64 for h in hashes.values())
    ):
        problems.append("checkpoints: expected a sha256 per plane")
    return problems


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def features(table: pd.DataFrame, kind: str = LOG_ODDS) -> np.ndarray:
    """(n, 3) stacker inputs from the planes' probabilities: their log-odds, or the probabilities themselves.

    Log-odds, because the stacker's L2 penalty (C = 1) shrinks the large weights that
    probabilities in [0, 1] need, and its output is then under-confident, not calibrated
    (measured on simulated held-out plane probabilities, 300 fitting exams: expected
    calibration error 0.11 with probabilities, 0.016 with log-odds). A monotone change of
    each input: the stacker is still a logistic regression over the three planes' outputs.
    Stackers saved with probabilities still load and are applied as they were fitted.
    """
    return as_features(table[list(PLANES)].to_numpy(dtype=np.float64), kind)


def as_features(probs: np.ndarray, kind: str) -> np.ndarray:
    if kind == PROBABILITY:
        return probs
    clipped = np.clip(probs, LOG_ODDS_CLIP, 1 - LOG_ODDS_CLIP)
    return np.log(clipped / (1 - clipped))


def ensemble_probabilities(bundle: dict[str, Any], table: pd.DataFrame) -> np.ndarray:
    """P(positive) = sigmoid(x . coef + intercept), what scikit-learn's predict_proba gives for a binary model.

    x holds the planes' inputs in the bundle's plane order, as log-odds or probabilities as it was fitted.
    """
    x = as_features(table[bundle["planes"]].to_numpy(dtype=np.float64), bundle.get("features", PROBABILITY))
    return expit(x @ np.asarray(bundle["coef"], dtype=np.float64) + bundle["intercept"])


def check_fitted_checkpoints(bundle: dict[str, Any], models_dir: str | Path, path: Path) -> None:
    """Refuse an ensemble whose plane checkpoints changed since it was fitted (a plane retrained since)."""
    task = bundle["task"]
    changed = [
        str(layout.best_checkpoint(models_dir, task, plane))
        for plane, digest in checkpoint_hashes(models_dir, task).items()
        if bundle["checkpoints"].get(plane) != digest
    ]
    if changed:
        raise MRNetError(
            f"{path} was fitted on other plane models than the ones now in {models_dir}: "
            f"{', '.join(changed)} changed since (retrained?); refit the ensembles with {command('train-meta')}"
        )


def load_checked_ensemble(models_dir: str | Path, task: str) -> dict[str, Any]:
    """The task's ensemble, checked against the plane checkpoints it will be combined with."""
    path = layout.ensemble_file(models_dir, task)
    bundle = load_ensemble(path, task)
    check_fitted_checkpoints(bundle, models_dir, path)
    return bundle


def load_ensemble_joblib(path: str | Path) -> dict[str, Any]:
    """The pickled scikit-learn stacker, for those who want the estimator object itself.

    Unpickling runs code stored in the file: load only files you made or trust. No command
    calls this; it exists so the joblib copy stays usable from Python.
    """
    import joblib

    warnings.warn(
        f"loading {path} with joblib runs code stored in the file; do this only for files you trust "
        "(the commands read ensemble-<task>.json instead)",
        stacklevel=2,
    )
    return joblib.load(path)
