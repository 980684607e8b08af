"""The models folder, spelled in one place: where each command reads and writes.

MODELS/<task>-<plane>/best.pt, last.pt        checkpoints (best epoch; resume state)
MODELS/<task>-<plane>/metrics.csv             one row per epoch
MODELS/<task>-<plane>/<split>_predictions.csv the best epoch's probabilities on the split that chose it (tune or valid)
MODELS/<task>-<plane>/config.json, environment.json, train.log
MODELS/<task>-<plane>/run.lock                held by the one process writing the run
MODELS/all-<plane>/best.pt, last.pt, metrics.csv, config.json, environment.json, run.lock
                                              a multi-task run (--task all): one network, a logit per task
MODELS/<task>-<plane>/best.pt, <split>_predictions.csv
                                              ... and its per-task views, written at its best epoch: single-task
                                              checkpoints (the head's row for the task), read like any other
MODELS/runs/<task>-<plane>/, runs/all-<plane>/  TensorBoard events
MODELS/ensemble-<task>.json                   the task's stacker, as plain numbers (what the commands load)
MODELS/ensemble-<task>.joblib                 the same stacker pickled, for scikit-learn users (never loaded by default)
MODELS/tune_cases.csv                         the tuning split carved from train, shared by every model
MODELS/auc_table.csv, ensemble_valid_predictions.csv, thresholds.csv, meta_config.json, meta_environment.json
MODELS/report/                                evaluate's default output
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import PLANES
from .errors import MRNetError
from .invocation import command

BEST = "best.pt"
LAST = "last.pt"
METRICS = "metrics.csv"
TRAIN_LOG = "train.log"
RUN_LOCK = "run.lock"
META_CONFIG = "meta_config.json"
META_ENVIRONMENT = "meta_environment.json"
AUC_TABLE = "auc_table.csv"
ENSEMBLE_PREDICTIONS = "ensemble_valid_predictions.csv"
TUNE_CASES = "tune_cases.csv"
THRESHOLDS = "thresholds.csv"
REPORT = "report"


def model_name(task: str, plane: str) -> str:
    return f"{task}-{plane}"


def model_dir(models_dir: str | Path, task: str, plane: str) -> Path:
    return Path(models_dir) / model_name(task, plane)


def best_checkpoint(models_dir: str | Path, task: str, plane: str) -> Path:
    return model_dir(models_dir, task, plane) / BEST


def last_checkpoint(models_dir: str | Path, task: str, plane: str) -> Path:
    return model_dir(models_dir, task, plane) / LAST


def selection_predictions(models_dir: str | Path, task: str, plane: str, split: str) -> Path:
    """The best epoch's probabilities on the split that selected it: tune_predictions.csv or valid_predictions.csv."""
    return model_dir(models_dir, task, plane) / f"{split}_predictions.csv"


def tune_cases_file(models_dir: str | Path) -> Path:
    return Path(models_dir) / TUNE_CASES


def thresholds_file(models_dir: str | Path) -> Path:
    return Path(models_dir) / THRESHOLDS


def tensorboard_dir(models_dir: str | Path, task: str, plane: str) -> Path:
    return Path(models_dir) / "runs" / model_name(task, plane)


def ensemble_file(models_dir: str | Path, task: str) -> Path:
    """The stacker as JSON: loads without running code, so a shared models folder cannot execute anything."""
    return Path(models_dir) / f"ensemble-{task}.json"


def ensemble_joblib(models_dir: str | Path, task: str) -> Path:
    """The same stacker pickled with joblib, for scikit-learn users; loading it runs code from the file."""
    return Path(models_dir) / f"ensemble-{task}.joblib"


def report_dir(models_dir: str | Path) -> Path:
    return Path(models_dir) / REPORT


def missing_files(models_dir: str | Path, task: str, with_ensemble: bool, planes: Sequence[str] = PLANES) -> list[Path]:
    """What a task still lacks: a best checkpoint per plane and, if asked, its ensemble."""
    wanted = [best_checkpoint(models_dir, task, plane) for plane in planes]
    if with_ensemble:
        wanted.append(ensemble_file(models_dir, task))
    return [path for path in wanted if not path.is_file()]


def complete_tasks(
    models_dir: str | Path, tasks: Sequence[str], with_ensemble: bool, planes: Sequence[str] = PLANES
) -> tuple[list[str], dict[str, list[Path]]]:
    """Tasks that have every file they need, and per other task the files it lacks."""
    ready, missing = [], {}
    for task in tasks:
        absent = missing_files(models_dir, task, with_ensemble, planes)
        if absent:
            missing[task] = absent
        else:
            ready.append(task)
    return ready, missing


def ready_tasks(
    models_dir: str | Path, tasks: Sequence[str], planes: Sequence[str] = PLANES
) -> tuple[list[str], list[str]]:
    """Tasks with a checkpoint per plane and an ensemble (all that scoring needs), and a line per task skipped."""
    if not Path(models_dir).is_dir():
        raise MRNetError(f"models folder {models_dir} does not exist (set --models-dir)")
    ready, missing = complete_tasks(models_dir, list(tasks), with_ensemble=True, planes=planes)
    skipped = [f"{task}: skipped, missing {', '.join(str(p) for p in paths)}" for task, paths in missing.items()]
    if not ready:
        raise MRNetError(
            f"no task has its {', '.join(planes)} model(s) and ensemble in {models_dir}:\n  "
            + "\n  ".join(skipped)
            + f"\ntrain them with {command('train-all')}, or name the planes the folder has with --planes"
        )
    return ready, skipped
