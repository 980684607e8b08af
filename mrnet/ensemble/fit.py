"""Fitting the stacked ensembles (train_meta): per task, a logistic regression over its planes' logits.

The planes are the three of MRNet unless `--planes` names fewer (a cohort with sagittal series
only, as KneeMRI's): the stacker then combines those, and every table shows only them.

Where the stacker learns (`--fit-on`):
- `tune` (the default when the models folder has a tuning split): the CNNs' probabilities on
  the tuning exams, which they never trained on. They look like the probabilities of new
  exams, so the stacker weighs the planes as they perform on new knees and its output is a
  calibrated probability.
- `train` (the paper's protocol): the probabilities on the exams the CNNs trained on. Those are
  over-confident, so the stacker can trust a plane that memorised its training exams, and its
  output is a score rather than a probability.
- `valid-cv`: the valid split's probabilities, cross-validated: each valid exam is scored by
  a stacker fitted on the other folds (the reported figures); the saved stacker is then
  refitted on the whole valid split.

Per-plane predictions are merged on case id with pandas, never by position, so a missing
or reordered exam cannot silently pair one exam's sagittal score with another's axial.
Every task is fitted before anything is written; then the ensembles, the AUC table and the
config replace the earlier ones together, so a failure leaves the folder as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn

from .. import AMP_MODES, FIT_ON, LEGACY_RECIPE, PLANES, TASKS, layout, plane_order
from ..checkpoint import load_checkpoint
from ..data.dataset import check_and_load
from ..data.fingerprint import describe_changes, fingerprint_of
from ..data.splits import read_tune_cases, tune_split_for
from ..device import Scoring
from ..errors import MRNetError, at_least, check_options, one_of, seed_rule
from ..files import atomic_write_many, check_writable, json_text, temporary_leftovers
from ..inference import PlaneModels, plane_probabilities
from ..invocation import command
from ..runinfo import environment, plain
from ..stats.auc import auc_or_nan
from ..stats.delong import delong_test
from ..stats.thresholds import fold_count
from .file import checkpoint_hashes, ensemble_files, saved_ensemble
from .stacker import choose_thresholds, features, fit_stacker, out_of_fold


# auc_table.csv: AUCs on the valid split, the split(s) that chose the plane models' epochs, how the ensemble was
# fitted and how its valid figures relate to what chose (never "held-out" where valid chose an epoch), and the
# ensemble against its best plane.
def table_columns(planes: Sequence[str] = PLANES) -> list[str]:
    return [
        *("task", "split", "selected_on", *planes, "ensemble", "ensemble_fit_on", "ensemble_scored"),
        *("best_plane", "ensemble_minus_best", "p_delong"),
    ]


TABLE_COLUMNS = table_columns()


@dataclass
class MetaConfig:
    """Options of train_meta (saved as meta_config.json next to the ensembles)."""

    data_dir: str = "data/MRNet-v1.0"
    models_dir: str = "models"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    planes: list[str] = field(default_factory=lambda: list(PLANES))  # the planes the stacker combines
    fit_on: str | None = None  # None: "tune" when the models folder has a tuning split, else "train"
    folds: int = 5
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    eval_max_slices: int | None = None  # None: the device's default (64 on the CPU, 512 on CUDA)


def validate_meta_config(cfg: MetaConfig) -> None:
    check_options(
        [
            *(one_of("--tasks", task, TASKS) for task in cfg.tasks),
            *(one_of("--planes", plane, PLANES) for plane in cfg.planes),
            one_of("--fit-on", cfg.fit_on, FIT_ON) if cfg.fit_on is not None else (True, ""),
            at_least("--folds", cfg.folds, 2),
            seed_rule(cfg.seed),
            one_of("--amp", cfg.amp, AMP_MODES),
            at_least("--eval-max-slices", cfg.eval_max_slices, 1),
        ]
    )


# ----------------------------------------------------------------------------- the command


def resolve_fit_on(cfg: MetaConfig, tune_cases: list[str] | None) -> str:
    """--fit-on as given, or its default: the tuning split when the models folder has one."""
    if cfg.fit_on is None:
        return "tune" if tune_cases else "train"
    if cfg.fit_on == "tune" and not tune_cases:
        raise MRNetError(
            f"--fit-on tune: {layout.tune_cases_file(cfg.models_dir)} does not exist, so the models were trained "
            "without a tuning split (--tune-fraction 0); fit with --fit-on train or --fit-on valid-cv"
        )
    return cfg.fit_on


def check_plane_models(
    cfg: MetaConfig, tasks: list[str], tune_cases: list[str] | None, fit_on: str
) -> dict[str, dict[str, str]]:
    """Every checkpoint must load, and where the tuning split is used, none may have trained on it.

    Returns, per task and plane, the split that chose the model's best epoch (--select-on).

    A model trained with another --tune-fraction or --split-seed (or none) learned some of the
    tuning exams, and its probabilities there would be in-sample: stacking or thresholds
    chosen on them would carry the optimism the tuning split exists to avoid.
    """
    draws: dict[tuple[float, int], tuple[str, ...]] = {}
    problems = []
    selected: dict[str, dict[str, str]] = {task: {} for task in tasks}
    for task in tasks:  # a wrong or corrupt checkpoint is reported before any long computation
        for plane in plane_order(cfg.planes):
            config = load_checkpoint(layout.best_checkpoint(cfg.models_dir, task, plane), task, plane)["config"]
            selected[task][plane] = str(config.get("select_on", LEGACY_RECIPE["select_on"]))
            if not tune_cases or fit_on == "valid-cv":
                continue
            key = (float(config.get("tune_fraction", 0.0)), int(config.get("split_seed", 0)))
            if key not in draws:
                draws[key] = tune_split_for(cfg.data_dir, *key).cases
            if list(draws[key]) != tune_cases:
                problems.append(f"{layout.model_name(task, plane)} (--tune-fraction {key[0]} --split-seed {key[1]})")
    if problems:
        raise MRNetError(
            f"these models were not trained with the tuning split of {layout.tune_cases_file(cfg.models_dir)}, so "
            f"they trained on some of its exams: {', '.join(problems)}. Retrain them with the folder's "
            "--tune-fraction and --split-seed, or fit with --fit-on valid-cv"
        )
    return selected


def selected_text(selected: dict[str, str]) -> str:
    """The split that chose the planes' epochs: one name when they agree, else per plane."""
    splits = set(selected.values())
    if len(splits) == 1:
        return splits.pop()
    return ", ".join(f"{plane} {split}" for plane, split in selected.items())


def scored_given_selection(relation: str, splits: set[str], split: str, plural: bool = True) -> str:
    """How figures on `split` relate to what chose: the stacker's relation, unless `split` chose an epoch.

    A stacker held out from valid still combines plane models whose epochs valid chose, so
    those figures are optimistic and never called held-out.
    """
    if split not in splits:
        return relation
    chose = "chose the epochs" if plural else "chose the epoch"
    return chose if relation == "held-out" else f"{relation}; {split} {chose}"


def auc_row(
    task: str, valid: pd.DataFrame, ensemble: np.ndarray, fit_on: str, scored: str, selected: dict[str, str]
) -> dict[str, Any]:
    """The task's valid AUCs, what chose, and the ensemble against its best plane (DeLong's test on the same exams)."""
    labels = valid["label"].to_numpy()
    planes = list(selected)
    aucs = {p: auc_or_nan(labels, valid[p].to_numpy()) for p in planes}
    defined = [p for p in planes if not np.isnan(aucs[p])]
    best = max(defined, key=lambda p: aucs[p]) if defined else planes[0]
    versus = delong_test(labels, valid[best].to_numpy(), ensemble)
    return {
        "task": task,
        "split": "valid",
        "selected_on": selected_text(selected),
        **aucs,
        "ensemble": auc_or_nan(labels, ensemble),
        "ensemble_fit_on": fit_on,
        "ensemble_scored": scored_given_selection(scored, set(selected.values()), "valid"),
        "best_plane": best,
        "ensemble_minus_best": versus.difference,
        "p_delong": versus.p_value,
    }


def task_parts(
    probs: dict[tuple[str, str], pd.DataFrame], task: str, tune_cases: list[str] | None, fit_on: str
) -> dict[str, pd.DataFrame]:
    """The task's probability tables by role: valid, and from the train split the tuning and the trained-on exams."""
    parts = {"valid": probs[(task, "valid")]}
    train = probs.get((task, "train"))
    if train is not None:
        held_out = train["case"].isin(tune_cases or [])
        if tune_cases:
            parts["tune"] = train[held_out].reset_index(drop=True)
        if fit_on == "train":
            parts["train"] = train[~held_out].reset_index(drop=True)
    return parts


@dataclass
class FittedTask:
    """One task's fitted stacker: its files to write, its row of the AUC table, valid predictions and thresholds."""

    writes: dict[Path, Callable[[Path], object]]
    auc: dict[str, Any]
    predictions: pd.DataFrame
    thresholds: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def fit_task(
    cfg: MetaConfig,
    task: str,
    parts: dict[str, pd.DataFrame],
    fit_on: str,
    checkpoints: dict[str, str],
    selected: dict[str, str],
) -> FittedTask:
    """Fit one task's stacker with its thresholds, none of them chosen on probabilities the stacker was fitted on."""
    valid = parts["valid"]
    fitted_on = parts.get(fit_on)
    planes = list(selected)  # the planes asked for, in the usual order
    model, valid_ensemble = fit_stacker(fitted_on, valid, fit_on, cfg.folds, cfg.seed, planes)
    ensemble = {"valid": valid_ensemble}
    scored = {"valid": "out-of-fold" if fit_on == "valid-cv" else "held-out"}
    folds_used, notes = {}, []
    if fit_on == "valid-cv":
        folds_used["valid"] = fold_count(valid["label"].to_numpy(), cfg.folds)
    if "tune" in parts and fit_on != "valid-cv":
        tune = parts["tune"]
        tune_folds = fold_count(tune["label"].to_numpy(), cfg.folds)
        if fit_on != "tune":
            ensemble["tune"], scored["tune"] = model.predict_proba(features(tune, planes=planes))[:, 1], "held-out"
        elif tune_folds:
            ensemble["tune"], scored["tune"] = out_of_fold(tune, tune_folds, cfg.seed, planes), "out-of-fold"
            folds_used["tune"] = tune_folds
        else:  # < 2 exams of a class: no fold keeps both classes to fit on, so no tuning exam is scored out of fold
            notes.append(
                f"{task}: the tuning split holds {class_counts(tune)} exams (negative, positive): too few to score "
                "the stacker out of fold there, so the ensemble's threshold is chosen on valid (held-out from the "
                "stacker; evaluate calls the valid exams with thresholds chosen on the other folds)"
            )
    for split, used in folds_used.items():
        if used < cfg.folds:
            notes.append(
                f"{task}: --folds {cfg.folds}: {used} folds used on the {split} exams, "
                "as many as their smaller class has exams (the ensemble file records both as folds and folds_used)"
            )
    plane_split = "tune" if "tune" in parts and fit_on != "valid-cv" else "valid"
    thresholds = choose_thresholds(parts, ensemble, scored, plane_split, planes)
    fit_table = valid if fit_on == "valid-cv" else fitted_on
    assert fit_table is not None  # fit_stacker has fitted on it
    saved = saved_ensemble(
        model,
        task,
        fit_on,
        checkpoints,
        sklearn.__version__,
        planes=planes,
        folds=cfg.folds,
        folds_used=folds_used or None,
        seed=cfg.seed,
        data_dir=str(Path(cfg.data_dir).resolve()),
        fit_split="valid" if fit_on == "valid-cv" else "train",
        fit_cases=list(fit_table["case"]),
        thresholds=thresholds,
    )
    splits = set(selected.values())
    for name, t in thresholds.items():  # a plane's threshold: its own epoch's split; the ensemble's: every plane's
        chose_here = {selected[name]} if name in selected else splits
        scored_here = scored_given_selection(t.scored, chose_here, t.chosen_on, plural=name == "ensemble")
        thresholds[name] = replace(t, scored=scored_here)
    chose = {**selected, "ensemble": selected_text(selected)}
    return FittedTask(
        writes=ensemble_files(cfg.models_dir, saved, model),
        auc=auc_row(task, valid, valid_ensemble, fit_on, scored["valid"], selected),
        predictions=valid.assign(ensemble=valid_ensemble, task=task)[["task", "case", "label", *planes, "ensemble"]],
        thresholds=[
            {"task": task, "model": name, **asdict(t), "selected_on": chose[name]} for name, t in thresholds.items()
        ],
        notes=notes,
    )


def class_counts(table: pd.DataFrame) -> str:
    counts = np.bincount(table["label"].to_numpy(dtype=int), minlength=2)
    return f"{counts[0]}, {counts[1]}"


def fitted_on_the_selecting_split(fit_on: str, selected: dict[str, dict[str, str]]) -> list[str]:
    """Tasks whose stacker and thresholds learn from probabilities of the split that chose their planes' epochs."""
    split = {"tune": "tune", "valid-cv": "valid"}.get(fit_on)
    return [task for task, planes in selected.items() if split in planes.values()]


def fit_ensembles(cfg: MetaConfig, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Fit one stacker per task whose planes are all trained; write the ensembles, thresholds and the AUC table."""
    validate_meta_config(cfg)
    planes = plane_order(cfg.planes)
    ready, missing = layout.complete_tasks(cfg.models_dir, cfg.tasks, with_ensemble=False, planes=planes)
    lines = [f"{task}: no checkpoint {path}" for task, paths in missing.items() for path in paths]
    for line in lines:
        log(f"ensemble: skipped {line}")
    if not ready:
        raise MRNetError(
            f"no task has a checkpoint for each of {', '.join(planes)} in "
            + str(cfg.models_dir)
            + ":\n  "
            + "\n  ".join(lines)
            + f"\ntrain them with {command('train-plane')} or {command('train-all')}"
        )
    tune_cases = read_tune_cases(cfg.models_dir)
    fit_on = resolve_fit_on(cfg, tune_cases)
    check_writable(Path(cfg.models_dir))
    remove_own_leftovers(Path(cfg.models_dir), ready)
    selected = check_plane_models(cfg, ready, tune_cases, fit_on)

    # Score only what the fit needs: the tuning exams (not all of train) when stacking on them.
    splits = ("valid",) if fit_on == "valid-cv" else ("train", "valid")
    check_checkpoints(cfg, ready, splits)
    cases = {"train": tune_cases} if fit_on == "tune" and tune_cases else None  # resolve_fit_on: tune has cases
    scoring = Scoring.resolve(cfg.device, cfg.amp, cfg.eval_max_slices)
    models = PlaneModels(cfg.models_dir, scoring.device)  # each stacker records the hashes of the bytes it scored
    probs = plane_probabilities(cfg.data_dir, cfg.models_dir, ready, splits, scoring, cases, models, planes)
    hashes = {task: models.hashes(task, planes) for task in ready}
    fitted: list[FittedTask] = []
    writes: dict[Path, Callable[[Path], object]] = {}
    for task in ready:
        try:
            parts = task_parts(probs, task, tune_cases, fit_on)
            result = fit_task(cfg, task, parts, fit_on, hashes[task], selected[task])
        except MRNetError as err:
            raise MRNetError(f"{task}: {err}; no ensemble, table or config was changed") from None
        for line in result.notes:
            log(f"ensemble: {line}")
        fitted.append(result)
        writes.update(result.writes)

    table = pd.DataFrame([f.auc for f in fitted], columns=table_columns(planes))
    predictions = pd.concat([f.predictions for f in fitted], ignore_index=True)
    thresholds = pd.DataFrame([row for f in fitted for row in f.thresholds])
    out = Path(cfg.models_dir)
    config_text = json_text({**plain(cfg), "planes": list(planes), "fit_on": fit_on})
    environment_text = json_text(environment())
    writes[out / layout.AUC_TABLE] = lambda tmp: table.to_csv(tmp, index=False, float_format="%.4f")
    writes[out / layout.ENSEMBLE_PREDICTIONS] = lambda tmp: predictions.to_csv(tmp, index=False, float_format="%.6f")
    writes[layout.thresholds_file(out)] = lambda tmp: thresholds.to_csv(tmp, index=False)
    writes[out / layout.META_CONFIG] = lambda tmp: tmp.write_text(config_text)
    writes[out / layout.META_ENVIRONMENT] = lambda tmp: tmp.write_text(environment_text)
    atomic_write_many(writes)
    same = fitted_on_the_selecting_split(fit_on, selected)
    if same:
        log(
            f"ensemble: note: {', '.join(same)}: the {'tuning' if fit_on == 'tune' else 'valid'} split chose the "
            "planes' epochs and the stacker and thresholds were fitted on its probabilities too, so they trust "
            "the planes a little more than new exams would justify"
        )
    return table


def remove_own_leftovers(models_dir: Path, tasks: list[str]) -> None:
    """The temporary files of a train_meta that was killed while writing; only its own outputs' names."""
    names = {layout.AUC_TABLE, layout.ENSEMBLE_PREDICTIONS, layout.thresholds_file(models_dir).name}
    names |= {layout.META_CONFIG, layout.META_ENVIRONMENT}
    names |= {layout.ensemble_file(models_dir, t).name for t in tasks}
    names |= {layout.ensemble_joblib(models_dir, t).name for t in tasks}
    for path in temporary_leftovers(models_dir):
        if any(path.name.startswith(f".{name}.") for name in names):
            path.unlink(missing_ok=True)


def check_checkpoints(cfg: MetaConfig, tasks: list[str], splits: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Every plane checkpoint readable, of the right model, trained on the data given; their hashes per task.

    Run before any long computation. A checkpoint trained on other cases or labels than
    --data-dir holds would give a stacker fitted on a mixture, so it is refused with what changed.
    """
    planes = plane_order(cfg.planes)
    headers = check_and_load(cfg.data_dir, tasks, planes, splits, load=False)
    problems = []
    for task in tasks:
        for plane in planes:
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
            + f"\nretrain them ({command('train-all')} --overwrite) or set --data-dir to the data they were trained on"
        )
    return {task: checkpoint_hashes(cfg.models_dir, task, planes) for task in tasks}
