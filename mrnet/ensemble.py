"""The stacked ensemble: per task, a logistic regression over the three planes' probabilities.

Per-plane predictions are merged on case id with pandas, never by position, so a missing
or reordered exam cannot silently pair one exam's sagittal score with another's axial.
"""

from __future__ import annotations

import argparse
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from . import PLANES, TASKS
from .checkpoint import atomic_write, load_checkpoint
from .data import check_and_load
from .device import AMP_MODES, describe, resolve_amp, resolve_device
from .engine import predict_logits, sigmoid
from .errors import MRNetError
from .metrics import auc_or_nan, has_both_classes
from .model import MRNet, model_for_inference
from .runinfo import environment, plain, write_json

FIT_ON = ("train", "valid-cv")
TABLE_COLUMNS = ["task", *PLANES, "ensemble"]


@dataclass
class MetaConfig:
    """Options of train_meta (saved as meta_config.json next to the ensembles)."""

    data_dir: str = "data/MRNet-v1.0"
    output_dir: str = "models"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    fit_on: str = "train"  # the paper's protocol; "valid-cv" avoids in-sample optimism
    folds: int = 5
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    eval_max_slices: int = 512


def checkpoint_path(models_dir: str | Path, task: str, plane: str) -> Path:
    return Path(models_dir) / f"{task}-{plane}" / "best.pt"


def ensemble_path(models_dir: str | Path, task: str) -> Path:
    return Path(models_dir) / f"ensemble-{task}.joblib"


def tasks_with_all_planes(models_dir: str | Path, tasks: Sequence[str]) -> tuple[list[str], list[str]]:
    """Tasks whose three plane checkpoints exist, and a line for each missing checkpoint."""
    ready, missing = [], []
    for task in tasks:
        absent = [p for p in PLANES if not checkpoint_path(models_dir, task, p).is_file()]
        if absent:
            missing += [f"{task}: no checkpoint {checkpoint_path(models_dir, task, p)}" for p in absent]
        else:
            ready.append(task)
    return ready, missing


def load_plane_model(models_dir: str | Path, task: str, plane: str, device) -> MRNet:
    ckpt = load_checkpoint(checkpoint_path(models_dir, task, plane), task, plane)
    return model_for_inference(ckpt["model"], device)


def plane_probabilities(cfg: MetaConfig, tasks: Sequence[str], splits: Sequence[str]) -> dict[tuple[str, str], pd.DataFrame]:
    """(task, split) -> table case, label, axial, coronal, sagittal of per-plane probabilities.

    Works plane by plane so only one plane's series are in memory, and each series is
    read once for all tasks.
    """
    device = resolve_device(cfg.device)
    amp_dtype = resolve_amp(cfg.amp, device)
    check_and_load(cfg.data_dir, tasks, PLANES, splits, load=False)  # every problem up front, cheaply
    print(f"ensemble: computing per-plane probabilities on {', '.join(splits)} with {describe(device)}")
    columns: dict[tuple[str, str], list[pd.DataFrame]] = {(t, s): [] for t in tasks for s in splits}
    for plane in PLANES:
        data = check_and_load(cfg.data_dir, tasks, (plane,), splits)
        models = {task: load_plane_model(cfg.output_dir, task, plane, device) for task in tasks}
        for split in splits:
            split_data = data[(split, plane)]
            series = [split_data.series[c] for c in split_data.cases]
            for task in tasks:
                logits = predict_logits(models[task], series, device, amp_dtype, cfg.eval_max_slices,
                                        progress=f"{task}-{plane} {split}")
                columns[(task, split)].append(pd.DataFrame({
                    "case": split_data.cases, "label": split_data.labels_for(task), plane: sigmoid(logits),
                }))
        del data, models
    return {key: merge_on_case(frames) for key, frames in columns.items()}


def merge_on_case(frames: list[pd.DataFrame]) -> pd.DataFrame:
    merged = frames[0]
    for frame in frames[1:]:
        merged = merged.merge(frame, on=["case", "label"], how="inner", validate="one_to_one")
    if len(merged) != len(frames[0]):
        raise MRNetError("per-plane predictions cover different cases; check the label files")
    return merged.sort_values("case").reset_index(drop=True)


# ----------------------------------------------------------------------------- the stacker

def new_stacker(seed: int) -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)


def fit_stacker(train: pd.DataFrame, valid: pd.DataFrame, fit_on: str, folds: int, seed: int) -> tuple[LogisticRegression, np.ndarray]:
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
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise MRNetError(f"--tasks {' '.join(unknown)}: choose from {', '.join(TASKS)}")
    if cfg.fit_on not in FIT_ON:
        raise MRNetError(f"--fit-on {cfg.fit_on}: choose one of {', '.join(FIT_ON)}")
    if cfg.folds < 2:
        raise MRNetError(f"--folds {cfg.folds}: must be at least 2")
    if cfg.amp not in AMP_MODES:
        raise MRNetError(f"--amp {cfg.amp}: choose one of {', '.join(AMP_MODES)}")


def run_meta(cfg: MetaConfig) -> pd.DataFrame:
    """Fit one stacker per task with all three planes trained; write and print the AUC table."""
    validate_meta_config(cfg)
    ready, missing = tasks_with_all_planes(cfg.output_dir, cfg.tasks)
    for line in missing:
        print(f"ensemble: skipped {line}")
    if not ready:
        raise MRNetError(
            "no task has all three plane checkpoints in " + str(cfg.output_dir) + ":\n  "
            + "\n  ".join(missing) + "\ntrain them with scripts/train_plane.py or scripts/train_all.py"
        )
    for task in ready:  # a wrong or corrupt checkpoint is reported before any long computation
        for plane in PLANES:
            load_checkpoint(checkpoint_path(cfg.output_dir, task, plane), task, plane)

    splits = ("train", "valid") if cfg.fit_on == "train" else ("valid",)
    probs = plane_probabilities(cfg, ready, splits)
    rows, valid_out = [], []
    for task in ready:
        valid = probs[(task, "valid")]
        train = probs.get((task, "train"))
        model, ens = fit_stacker(train, valid, cfg.fit_on, cfg.folds, cfg.seed)
        save_ensemble(ensemble_path(cfg.output_dir, task), model, task, cfg.fit_on)
        labels = valid["label"].to_numpy()
        rows.append({"task": task, **{p: auc_or_nan(labels, valid[p]) for p in PLANES},
                     "ensemble": auc_or_nan(labels, ens)})
        valid_out.append(valid.assign(ensemble=ens, task=task)[["task", "case", "label", *PLANES, "ensemble"]])

    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    out = Path(cfg.output_dir)
    atomic_write(out / "auc_table.csv", lambda tmp: table.to_csv(tmp, index=False, float_format="%.4f"))
    predictions = pd.concat(valid_out, ignore_index=True)
    atomic_write(out / "ensemble_valid_predictions.csv",
                 lambda tmp: predictions.to_csv(tmp, index=False, float_format="%.6f"))
    save_run_info_meta(cfg)
    print_auc_table(table, cfg.fit_on)
    return table


def save_run_info_meta(cfg: MetaConfig) -> None:
    folder = Path(cfg.output_dir)
    write_json(folder / "meta_config.json", plain(cfg))
    write_json(folder / "meta_environment.json", environment())


def print_auc_table(table: pd.DataFrame, fit_on: str) -> None:
    print(f"\nValidation AUC (ensemble fitted on: {fit_on})")
    header = f"{'task':<10}" + "".join(f"{c:>10}" for c in TABLE_COLUMNS[1:])
    print(header)
    print("-" * len(header))
    for row in table.itertuples(index=False):
        cells = "".join(f"{_fmt(getattr(row, c)):>10}" for c in TABLE_COLUMNS[1:])
        print(f"{row.task:<10}{cells}")
    if len(table) > 1:
        mean = table[TABLE_COLUMNS[1:]].mean()
        print(f"{'mean':<10}" + "".join(f"{_fmt(mean[c]):>10}" for c in TABLE_COLUMNS[1:]))
    print()


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def add_meta_args(parser: argparse.ArgumentParser) -> None:
    d = MetaConfig()
    parser.add_argument("--fit-on", default=d.fit_on, choices=FIT_ON,
                        help="train: the paper's protocol (stacker fitted on the CNNs' train-set probabilities); "
                             "valid-cv: cross-validated on the valid split, free of in-sample optimism")
    parser.add_argument("--folds", type=int, default=d.folds, help="folds for --fit-on valid-cv (default 5)")


def get_args_parser() -> argparse.ArgumentParser:
    d = MetaConfig()
    parser = argparse.ArgumentParser(description="Fit the per-task stacked ensembles and print the AUC table.")
    parser.add_argument("--data-dir", default=d.data_dir)
    parser.add_argument("--output-dir", default=d.output_dir, help="folder holding the task-plane model folders")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    add_meta_args(parser)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default=d.device)
    parser.add_argument("--amp", default=d.amp, choices=AMP_MODES)
    parser.add_argument("--eval-max-slices", type=int, default=d.eval_max_slices)
    return parser


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    args = get_args_parser().parse_args(argv)
    cfg = MetaConfig(
        data_dir=args.data_dir, output_dir=args.output_dir, tasks=list(args.tasks), fit_on=args.fit_on,
        folds=args.folds, seed=args.seed, device=args.device, amp=args.amp, eval_max_slices=args.eval_max_slices,
    )
    return run_meta(cfg)
