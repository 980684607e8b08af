"""The stacked ensemble: per task, a logistic regression over the three planes' probabilities.

Per-plane predictions are merged on case id with pandas, never by position, so a missing
or reordered exam cannot silently pair one exam's sagittal score with another's axial.
Every task is fitted before anything is written; then the ensembles, the AUC table and the
config replace the earlier ones together, so a failure leaves the folder as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from . import AMP_MODES, FIT_ON, PLANES, TASKS, layout
from .checkpoint import load_checkpoint
from .data.dataset import check_and_load
from .data.fingerprint import describe_changes, fingerprint_of
from .device import Scoring
from .ensemble_format import checkpoint_hashes, ensemble_payload, ensemble_text
from .errors import MRNetError, at_least, check_options, one_of, seed_rule
from .evaluation.metrics import auc_or_nan, has_both_classes
from .files import atomic_write_many, check_writable, json_text
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


def ensemble_files(
    models_dir: str | Path, model: LogisticRegression, task: str, fit_on: str, checkpoints: dict[str, str]
) -> dict[Path, Callable[[Path], None]]:
    """The task's stacker as JSON (what the commands load) and pickled with joblib (for scikit-learn users)."""
    payload = ensemble_payload(model, task, fit_on, checkpoints, sklearn.__version__)
    text = ensemble_text(payload)
    bundle = {**{k: v for k, v in payload.items() if k not in ("coef", "intercept", "classes")}, "model": model}
    return {
        layout.ensemble_file(models_dir, task): lambda tmp: tmp.write_text(text),
        layout.ensemble_joblib(models_dir, task): lambda tmp: joblib.dump(bundle, tmp),
    }


# ----------------------------------------------------------------------------- the command


def validate_meta_config(cfg: MetaConfig) -> None:
    check_options(
        [
            *(one_of("--tasks", task, TASKS) for task in cfg.tasks),
            one_of("--fit-on", cfg.fit_on, FIT_ON),
            at_least("--folds", cfg.folds, 2),
            seed_rule(cfg.seed),
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
    check_writable(Path(cfg.models_dir))
    splits = ("train", "valid") if cfg.fit_on == "train" else ("valid",)
    hashes = check_checkpoints(cfg, ready, splits)
    scoring = Scoring.resolve(cfg.device, cfg.amp, cfg.eval_max_slices)
    probs = plane_probabilities(cfg.data_dir, cfg.models_dir, ready, splits, scoring)
    rows, valid_out, writes = [], [], {}
    for task in ready:
        valid = probs[(task, "valid")]
        train = probs.get((task, "train"))
        try:
            model, ens = fit_stacker(train, valid, cfg.fit_on, cfg.folds, cfg.seed)
        except MRNetError as err:
            raise MRNetError(f"{task}: {err}; no ensemble, table or config was changed") from None
        writes.update(ensemble_files(cfg.models_dir, model, task, cfg.fit_on, hashes[task]))
        labels = valid["label"].to_numpy()
        rows.append(
            {"task": task, **{p: auc_or_nan(labels, valid[p]) for p in PLANES}, "ensemble": auc_or_nan(labels, ens)}
        )
        valid_out.append(valid.assign(ensemble=ens, task=task)[["task", "case", "label", *PLANES, "ensemble"]])

    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    predictions = pd.concat(valid_out, ignore_index=True)
    out = Path(cfg.models_dir)
    config_text, environment_text = json_text(plain(cfg)), json_text(environment())
    writes[out / layout.AUC_TABLE] = lambda tmp: table.to_csv(tmp, index=False, float_format="%.4f")
    writes[out / layout.ENSEMBLE_PREDICTIONS] = lambda tmp: predictions.to_csv(tmp, index=False, float_format="%.6f")
    writes[out / layout.META_CONFIG] = lambda tmp: tmp.write_text(config_text)
    writes[out / layout.META_ENVIRONMENT] = lambda tmp: tmp.write_text(environment_text)
    atomic_write_many(writes)
    return table


def check_checkpoints(cfg: MetaConfig, tasks: list[str], splits: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Every plane checkpoint readable, of the right model, trained on the data given; their hashes per task.

    Run before any long computation. A checkpoint trained on other cases or labels than
    --data-dir holds would give a stacker fitted on a mixture, so it is refused with what changed.
    """
    headers = check_and_load(cfg.data_dir, tasks, PLANES, splits, load=False)
    problems = []
    for task in tasks:
        for plane in PLANES:
            path = layout.best_checkpoint(cfg.models_dir, task, plane)
            saved = load_checkpoint(path, task, plane).get("data")
            current = fingerprint_of({s: headers[(s, plane)] for s in splits}, task)
            changes = describe_changes(saved, current)
            if changes:
                problems.append(f"{path} was trained on other data: {'; '.join(changes)}")
    if problems:
        raise MRNetError(
            f"the models in {cfg.models_dir} do not match the data in {cfg.data_dir}:\n  "
            + "\n  ".join(problems)
            + "\nretrain them (scripts/train_all.py --overwrite) or set --data-dir to the data they were trained on"
        )
    return {task: checkpoint_hashes(cfg.models_dir, task) for task in tasks}
