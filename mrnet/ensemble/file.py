"""The ensemble file: a stacker stored as plain numbers, so loading a shared models folder runs no code.

`ensemble-<task>.json` holds what scikit-learn's binary LogisticRegression needs to predict
(coefficients per plane, intercept, classes), the planes in column order, how it was fitted,
the scikit-learn version, and the sha256 of each plane checkpoint it was fitted on. The
commands load only this file, strictly (types, shapes, planes), into a `SavedEnsemble`. The
pickled `ensemble-<task>.joblib` written beside it is for scikit-learn users and is never
loaded unless asked for by name, because unpickling a file runs whatever code it holds.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import FIT_ON, PLANES, SPLITS, TASKS, layout
from ..errors import MRNetError
from ..invocation import command

FORMAT = "mrnet-ensemble"
FORMAT_VERSION = 1
# The stacker's inputs, as the file names them. LOGITS: the plane models' float64 logits themselves (this
# version). LOG_ODDS: log-odds of probabilities clipped to [1e-6, 1 - 1e-6], so every logit past +-13.8 was
# the same number; PROBABILITY: the probabilities. Stackers saved with those still load and are applied as
# they were fitted.
LOGITS, LOG_ODDS, PROBABILITY = "per-plane logit", "per-plane log-odds", "per-plane probability"
FEATURES = (LOGITS, LOG_ODDS, PROBABILITY)
THRESHOLD_FIELDS = ("threshold", "chosen_on", "scored")
THRESHOLD_SPLITS = ("tune", "valid")  # where a threshold may be chosen: never on train
# How a threshold's probabilities relate to the model: in-sample only in files of older versions; "chose the
# epoch(s)" where the split that chose the plane models' epochs supplied them too.
SCORED = (
    *("held-out", "out-of-fold", "in-sample", "chose the epoch", "chose the epochs"),
    *(f"out-of-fold; {split} chose the epoch{s}" for split in ("tune", "valid") for s in ("", "s")),
)
MODELS = (*PLANES, "ensemble")
REQUIRED = (
    *("format", "format_version", "task", "planes", "features", "fit_on", "sklearn_version", "classes"),
    *("coef", "intercept", "checkpoints"),
)
OPTIONAL = ("folds", "folds_used", "seed", "data_dir", "fit_split", "fit_cases", "thresholds", "threshold")
SHA256 = re.compile(r"[0-9a-f]{64}")
VERSION = re.compile(r"[0-9A-Za-z.+_-]{1,40}")  # a scikit-learn version string, shown in a warning


@dataclass(frozen=True)
class Threshold:
    """A model's operating threshold (Youden's J) and the probabilities it was chosen on."""

    threshold: float  # a probability; NaN (null in the file) where one class was missing and none could be chosen
    chosen_on: str  # the split: "tune" or "valid"
    scored: str  # how those probabilities relate to the model: "held-out", "out-of-fold" or "in-sample"


@dataclass(frozen=True)
class SavedEnsemble:
    """One task's stacker as ensemble-<task>.json holds it, checked: what evaluate and predict read.

    The fields after `checkpoints` record what it was fitted on; stackers saved by older
    versions lack some of them (None, or no thresholds).
    """

    task: str
    planes: tuple[str, ...]  # the order of `coef`
    features: str  # LOGITS, or LOG_ODDS / PROBABILITY for stackers saved by older versions
    fit_on: str  # one of FIT_ON
    sklearn_version: str
    classes: tuple[int, ...]
    coef: tuple[float, ...]  # one weight per plane, in `planes` order
    intercept: float
    checkpoints: Mapping[str, str]  # plane -> sha256 of the best.pt it was fitted on
    folds: int | None = None  # --folds as given: what evaluate draws the same folds with
    folds_used: Mapping[str, int] | None = None  # tune or valid -> the folds its cross-validation used (<= folds)
    seed: int | None = None
    data_dir: str | None = None  # resolved --data-dir of the fit
    fit_split: str | None = None  # the split whose exams it was fitted on
    fit_cases: tuple[str, ...] | None = None
    thresholds: Mapping[str, Threshold] = field(default_factory=dict)  # model -> its operating threshold
    threshold: float | None = None  # the ensemble's only threshold, as the earliest versions saved it

    def payload(self) -> dict[str, Any]:
        """The JSON form, keys in the order the file has always had."""
        payload: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "planes": list(self.planes),
            "features": self.features,
            "fit_on": self.fit_on,
            "sklearn_version": self.sklearn_version,
            "classes": list(self.classes),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "checkpoints": dict(self.checkpoints),
        }
        record = {
            "folds": self.folds,
            "folds_used": None if self.folds_used is None else dict(self.folds_used),
            "seed": self.seed,
            "data_dir": self.data_dir,
            "fit_split": self.fit_split,
        }
        payload.update({key: value for key, value in record.items() if value is not None})
        if self.fit_cases is not None:
            payload["fit_cases"] = list(self.fit_cases)
        if self.thresholds:
            payload["thresholds"] = {model: _nan_as_null(asdict(t)) for model, t in self.thresholds.items()}
        if self.threshold is not None:
            payload["threshold"] = None if math.isnan(self.threshold) else self.threshold
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> SavedEnsemble:
        """A payload that passed `problems`; keys the file may lack become None."""
        fit_cases = payload.get("fit_cases")
        return cls(
            task=payload["task"],
            planes=tuple(payload["planes"]),
            features=payload["features"],
            fit_on=payload["fit_on"],
            sklearn_version=payload["sklearn_version"],
            classes=tuple(payload["classes"]),
            coef=tuple(float(c) for c in payload["coef"]),
            intercept=float(payload["intercept"]),
            checkpoints=dict(payload["checkpoints"]),
            folds=payload.get("folds"),
            folds_used=None if payload.get("folds_used") is None else dict(payload["folds_used"]),
            seed=payload.get("seed"),
            data_dir=payload.get("data_dir"),
            fit_split=payload.get("fit_split"),
            fit_cases=None if fit_cases is None else tuple(fit_cases),
            thresholds={model: _threshold(values) for model, values in payload.get("thresholds", {}).items()},
            threshold=None if payload.get("threshold") is None else float(payload["threshold"]),
        )


def _nan_as_null(values: dict[str, Any]) -> dict[str, Any]:
    """A threshold as the file holds it: valid JSON, so an undefined one is null, not NaN."""
    undefined = isinstance(values["threshold"], float) and math.isnan(values["threshold"])
    return {**values, "threshold": None} if undefined else values


def _threshold(values: Mapping[str, Any]) -> Threshold:
    threshold = math.nan if values["threshold"] is None else float(values["threshold"])
    return Threshold(threshold, values["chosen_on"], values["scored"])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_hashes(models_dir: str | Path, task: str, planes: Sequence[str] = PLANES) -> dict[str, str]:
    """sha256 of each plane's best.pt: what an ensemble was fitted on, compared again before it is used."""
    return {plane: file_sha256(layout.best_checkpoint(models_dir, task, plane)) for plane in planes}


def saved_ensemble(
    model: Any,
    task: str,
    fit_on: str,
    checkpoints: Mapping[str, str],
    sklearn_version: str,
    planes: Sequence[str] = PLANES,
    **record: Any,
) -> SavedEnsemble:
    """A fitted binary LogisticRegression over the planes' logits, as the file stores it.

    `record`: what the stacker was fitted on (folds, seed, data_dir, fit_split, fit_cases) and
    the operating thresholds chosen for it.
    """
    return SavedEnsemble(
        task=task,
        planes=tuple(planes),
        features=LOGITS,
        fit_on=fit_on,
        sklearn_version=sklearn_version,
        classes=tuple(int(c) for c in model.classes_),
        coef=tuple(float(c) for c in np.asarray(model.coef_, dtype=float).reshape(-1)),
        intercept=float(np.asarray(model.intercept_, dtype=float).reshape(-1)[0]),
        checkpoints=dict(checkpoints),
        **{**record, "fit_cases": None if record.get("fit_cases") is None else tuple(record["fit_cases"])},
    )


def ensemble_text(saved: SavedEnsemble) -> str:
    return json.dumps(saved.payload(), indent=2) + "\n"


def ensemble_files(models_dir: str | Path, saved: SavedEnsemble, model: Any) -> dict[Path, Callable[[Path], object]]:
    """The task's stacker as JSON (what the commands load) and pickled with joblib (for scikit-learn users)."""
    import joblib

    text = ensemble_text(saved)
    payload = saved.payload()
    bundle = {**{k: v for k, v in payload.items() if k not in ("coef", "intercept", "classes")}, "model": model}
    return {
        layout.ensemble_file(models_dir, saved.task): lambda tmp: tmp.write_text(text),
        layout.ensemble_joblib(models_dir, saved.task): lambda tmp: joblib.dump(bundle, tmp),
    }


def load_ensemble(path: str | Path, task: str | None = None, planes: Sequence[str] | None = None) -> SavedEnsemble:
    """Read and check an ensemble JSON; warn when scikit-learn differs from the version that fitted it.

    With `planes` (a command's --planes), the stacker must combine exactly those: one over three
    planes cannot score an exam with one, and a one-plane stacker is not what a three-plane run asks for.
    """
    path = Path(path)
    if not path.is_file():
        raise MRNetError(f"ensemble {path} not found; run {command('train-meta')} first")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise MRNetError(f"{path} is not a readable ensemble file ({type(err).__name__}: {err})") from None
    found = problems(payload, task)
    if found:
        raise MRNetError(
            f"{path} is not a valid MRNet ensemble file: {'; '.join(found)}. Refit it with {command('train-meta')}"
        )
    import sklearn

    if payload["sklearn_version"] != sklearn.__version__:
        warnings.warn(
            f"{path} was saved with scikit-learn {payload['sklearn_version']} and is loaded with "
            f"{sklearn.__version__}; its numbers are plain coefficients, so predictions are unchanged, "
            f"but refit with {command('train-meta')} to be sure",
            stacklevel=2,
        )
    saved = SavedEnsemble.from_payload(payload)
    if planes is not None and set(saved.planes) != set(planes):
        fitted, asked = _ordered(saved.planes), _ordered(planes)
        raise MRNetError(
            f"{path} combines the {', '.join(fitted)} model(s), and the planes asked for are {', '.join(asked)}: "
            f"pass --planes {' '.join(fitted)}, or fit an ensemble over those planes with "
            f"{command('train-meta')} --planes {' '.join(asked)}"
        )
    return saved


def _ordered(planes: Sequence[str]) -> list[str]:
    return [p for p in PLANES if p in planes]


def problems(payload: Any, task: str | None) -> list[str]:
    """Everything wrong with a parsed ensemble file, each naming its field in a few words; empty when it is valid."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return [f"no '{FORMAT}' marker"]
    if payload.get("format_version") != FORMAT_VERSION:
        return [f"format version {_shown(payload.get('format_version'))}, this version reads {FORMAT_VERSION}"]
    found = []
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        found.append(f"missing field(s) {', '.join(missing)}")
    unknown = [key for key in payload if key not in REQUIRED + OPTIONAL]
    if unknown:
        found.append(f"unknown field(s) {', '.join(_shown(k) for k in unknown)}")
    if payload.get("task") not in TASKS or (task is not None and payload.get("task") != task):
        found.append(f"task {_shown(payload.get('task'))}, expected {task or 'one of ' + ', '.join(TASKS)}")
    planes = payload.get("planes")
    if not (
        isinstance(planes, list)
        and planes
        and all(isinstance(p, str) and p in PLANES for p in planes)
        and len(set(planes)) == len(planes)
    ):
        found.append(f"planes {_shown(planes)}, expected one to three of {', '.join(PLANES)}, each once")
        planes = list(PLANES)
    if payload.get("classes") != [0, 1]:
        found.append(f"classes {_shown(payload.get('classes'))}, expected [0, 1]")
    coef = payload.get("coef")
    if not (isinstance(coef, list) and len(coef) == len(planes) and all(_finite_number(c) for c in coef)):
        found.append(f"coef {_shown(coef)}, expected {len(planes)} finite numbers, one per plane")
    if not _finite_number(payload.get("intercept")):
        found.append(f"intercept {_shown(payload.get('intercept'))}, expected a finite number")
    if payload.get("features") not in FEATURES:
        found.append(f"features {_shown(payload.get('features'))}, expected one of {', '.join(FEATURES)}")
    found += _thresholds_problems(payload.get("thresholds", {}), planes)
    if payload.get("fit_on") not in FIT_ON:
        found.append(f"fit_on {_shown(payload.get('fit_on'))}, expected one of {', '.join(FIT_ON)}")
    version = payload.get("sklearn_version")
    if not (isinstance(version, str) and VERSION.fullmatch(version)):
        found.append(f"sklearn_version {_shown(version)}, expected a scikit-learn version such as 1.5.2")
    hashes = payload.get("checkpoints")
    if not (
        isinstance(hashes, dict)
        and sorted(hashes) == sorted(planes)
        and all(isinstance(h, str) and SHA256.fullmatch(h) for h in hashes.values())
    ):
        found.append(f"checkpoints: expected a sha256 (64 hex digits) per plane of {', '.join(planes)}")
    found += _record_problems(payload)
    return found


def _record_problems(payload: dict[str, Any]) -> list[str]:
    """What the stacker was fitted on: optional (older files lack it), but of the right type when present."""
    found = []
    for key, least in (("folds", 2), ("seed", 0)):
        value = payload.get(key)
        if value is not None and not (_whole(value) and value >= least):
            found.append(f"{key} {_shown(value)}, expected a whole number of at least {least}")
    used = payload.get("folds_used")
    if used is not None and not (
        isinstance(used, dict) and all(k in THRESHOLD_SPLITS and _whole(v) and v >= 2 for k, v in used.items())
    ):
        found.append(f"folds_used {_shown(used)}, expected a split -> folds (at least 2) per cross-validated split")
    if payload.get("data_dir") is not None and not isinstance(payload["data_dir"], str):
        found.append(f"data_dir {_shown(payload['data_dir'])}, expected a string")
    if payload.get("fit_split") is not None and payload["fit_split"] not in SPLITS:
        found.append(f"fit_split {_shown(payload['fit_split'])}, expected one of {', '.join(SPLITS)}")
    if payload.get("fit_split") is not None and not all(_whole(payload.get(k)) for k in ("folds", "seed")):
        found.append("fit_split without the folds and seed its out-of-fold figures are drawn with")
    cases = payload.get("fit_cases")
    if cases is not None and not (isinstance(cases, list) and all(isinstance(c, str) for c in cases)):
        found.append("fit_cases: expected a list of case ids")
    if payload.get("threshold") is not None and not _probability(payload["threshold"]):
        found.append(f"threshold {_shown(payload['threshold'])}, expected a probability from 0 to 1")
    return found


def _thresholds_problems(thresholds: Any, planes: Sequence[str]) -> list[str]:
    """Each saved operating threshold: a probability (null where none could be chosen) and where it was chosen."""
    if not isinstance(thresholds, dict):
        return [f"thresholds {_shown(thresholds)}, expected an object per model"]
    found = []
    for model, value in thresholds.items():
        where = f"thresholds.{_shown(model, quote=False)}"
        if model not in (*planes, "ensemble"):
            found.append(f"{where}: unknown model, expected one of {', '.join((*planes, 'ensemble'))}")
        if not (isinstance(value, dict) and sorted(value) == sorted(THRESHOLD_FIELDS)):
            found.append(f"{where} {_shown(value)}, expected an object with {', '.join(THRESHOLD_FIELDS)}")
            continue
        if value["threshold"] is not None and not _probability(value["threshold"]):
            found.append(f"{where}.threshold {_shown(value['threshold'])}, expected a probability from 0 to 1 or null")
        if value["chosen_on"] not in THRESHOLD_SPLITS:
            found.append(
                f"{where}.chosen_on {_shown(value['chosen_on'])}, expected one of {', '.join(THRESHOLD_SPLITS)}"
            )
        if value["scored"] not in SCORED:
            found.append(f"{where}.scored {_shown(value['scored'])}, expected one of {', '.join(SCORED)}")
    return found


def _shown(value: Any, quote: bool = True) -> str:
    """A value from the file as a message shows it: repr, cut short, so nothing in it reaches a terminal raw."""
    text = ascii(value) if quote else ascii(str(value)).strip("'")
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_number(value: Any) -> bool:
    return _number(value) and math.isfinite(value)


def _probability(value: Any) -> bool:
    """A usable threshold: finite, from 0 to 1 (NaN, infinity or 2.0 would call every exam negative)."""
    return _finite_number(value) and 0.0 <= value <= 1.0


def check_fitted_checkpoints(saved: SavedEnsemble, models_dir: str | Path, path: Path) -> None:
    """Refuse an ensemble whose plane checkpoints changed since it was fitted (a plane retrained since)."""
    changed = [
        str(layout.best_checkpoint(models_dir, saved.task, plane))
        for plane, digest in checkpoint_hashes(models_dir, saved.task, saved.planes).items()
        if saved.checkpoints.get(plane) != digest
    ]
    if changed:
        raise MRNetError(
            f"{path} was fitted on other plane models than the ones now in {models_dir}: "
            f"{', '.join(changed)} changed since (retrained?); refit the ensembles with {command('train-meta')}"
        )


def load_checked_ensemble(models_dir: str | Path, task: str) -> SavedEnsemble:
    """The task's ensemble, checked against the plane checkpoints it will be combined with."""
    path = layout.ensemble_file(models_dir, task)
    saved = load_ensemble(path, task)
    check_fitted_checkpoints(saved, models_dir, path)
    return saved


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
