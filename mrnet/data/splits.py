"""The tuning split: train exams held out to pick epochs, fit the stacker and choose thresholds.

MRNet-v1.0's public valid split is, in practice, everyone's test set. Picking the best
epoch, the stacker and the operating thresholds on it makes its AUC optimistic, so by
default a fraction of the train exams is set aside for those choices and never trained on.

The draw is stratified on the exam's label combination (abnormal, acl, meniscus), so the
tuning split has the train split's mix of findings, and depends only on the train label
files, the fraction and the seed: every task and plane of a sweep gets the same exams.
The sweep writes them once to <models-dir>/tune_cases.csv; a run whose draw differs from
that file is refused, so no model is tuned on exams another model of the ensemble trained on.

Combinations with a single exam cannot give one to each side; they are pooled and the pool
is stratified like one combination (a pool of one exam stays in train). When even so the
tuning split lacks a class of a task, check_both_classes says so and how to proceed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import TASKS, layout
from ..errors import DataError, MRNetError
from ..files import atomic_write
from .dataset import label_path, parse_labels

MIN_TO_STRATIFY = 2  # a combination needs this many exams to give at least one to each side
FEW = 5  # fewer exams of a class than this in a split that chooses or reports: its AUC moves with one exam
RARE = "rare"  # the pooled group of combinations with fewer exams than that
PAPER_PROTOCOL = "--tune-fraction 0 --select-on valid --fit-on train"

Combination = tuple[int, ...]


@dataclass(frozen=True)
class TuneSplit:
    """The exams held out of training, and how they were drawn."""

    fraction: float
    seed: int
    cases: tuple[str, ...]  # sorted case ids of the tuning split; empty when fraction is 0
    combinations: Mapping[str, Combination] = field(repr=False)  # every train case -> (abnormal, acl, meniscus)
    pooled: tuple[str, ...] = ()  # combinations too rare to stratify alone, as '101' strings

    @property
    def enabled(self) -> bool:
        return bool(self.cases)

    def table(self) -> pd.DataFrame:
        """case, abnormal, acl, meniscus of the tuning exams: what tune_cases.csv holds."""
        rows = [(case, *self.combinations[case]) for case in self.cases]
        return pd.DataFrame(rows, columns=["case", *TASKS])

    def notes(self, tasks: Sequence[str]) -> list[str]:
        """What a user should know about this draw: a fraction that could not be kept, classes with few exams."""
        if not self.enabled:
            return []
        notes = []
        total, held = len(self.combinations), len(self.cases)
        asked = math.floor(self.fraction * total + 0.5)
        if held != asked:
            notes.append(
                f"note: the tuning split holds {held} of {total} train exams ({held / total:.0%}), not the "
                f"{asked} that --tune-fraction {self.fraction} asks for: every label combination with two or more "
                "exams gives at least one to each side, so that the tuning split holds the train split's findings"
            )
        if self.pooled:
            notes.append(f"note: label combinations {', '.join(self.pooled)} are too rare to stratify alone; pooled")
        for task in tasks:
            column = TASKS.index(task)
            positives = sum(self.combinations[c][column] for c in self.cases)
            fewest = min(positives, held - positives)
            if 0 < fewest < FEW:
                notes.append(
                    f"warning: the tuning split has {positives} positive and {held - positives} negative {task} "
                    f"exams; with fewer than {FEW} of a class, the epoch, stacker and threshold it chooses "
                    "can turn on a single exam"
                )
        return notes

    def training_cases(self, cases: Sequence[str]) -> list[str]:
        """`cases` without the tuning exams, in their order."""
        held_out = set(self.cases)
        return [case for case in cases if case not in held_out]


def combination_name(combination: Combination) -> str:
    return "".join(str(v) for v in combination)


def train_combinations(data_dir: str | Path) -> dict[str, Combination]:
    """Every train case's label combination, from the three train label files."""
    tables: dict[str, pd.Series] = {}
    problems: list[str] = []
    for task in TASKS:
        table, found = parse_labels(label_path(data_dir, "train", task))
        tables[task], problems = table.set_index("case")["label"], problems + found
    if problems:
        raise DataError(str(data_dir), problems)
    cases = sorted(set().union(*(set(t.index) for t in tables.values())))
    lacking = [f"train-{t}.csv lacks {len(set(cases) - set(tables[t].index))} case(s)" for t in TASKS]
    lacking = [text for text, t in zip(lacking, TASKS, strict=True) if set(cases) - set(tables[t].index)]
    if lacking:
        raise DataError(str(data_dir), [f"train: label files list different cases ({'; '.join(lacking)})"])
    return {case: tuple(int(tables[t][case]) for t in TASKS) for case in cases}


def allocate(sizes: Mapping[str, int], fraction: float) -> dict[str, int]:
    """Exams to hold out per group: about `fraction` of each, at least one, never the whole group.

    The total is round(fraction x all exams), shared by largest remainder; a group of one
    gives none (it cannot be on both sides).
    """
    total = sum(sizes.values())
    target = math.floor(fraction * total + 0.5)
    quotas = {g: fraction * n for g, n in sizes.items()}
    counts = {g: math.floor(q) for g, q in quotas.items()}
    by_remainder = sorted(sizes, key=lambda g: (-(quotas[g] - counts[g]), g))
    for group in by_remainder[: max(target - sum(counts.values()), 0)]:
        counts[group] += 1
    return {g: (min(max(counts[g], 1), n - 1) if n >= MIN_TO_STRATIFY else 0) for g, n in sizes.items()}


def draw_tune_split(combinations: Mapping[str, Combination], fraction: float, seed: int) -> TuneSplit:
    """The tuning exams, stratified on label combination; deterministic in (labels, fraction, seed)."""
    if fraction <= 0:
        return TuneSplit(fraction, seed, (), dict(combinations))
    groups: dict[str, list[str]] = {}
    for case in sorted(combinations):
        groups.setdefault(combination_name(combinations[case]), []).append(case)
    rare = sorted(name for name, cases in groups.items() if len(cases) < MIN_TO_STRATIFY)
    if rare:
        groups[RARE] = sorted(case for name in rare for case in groups.pop(name))
    counts = allocate({name: len(cases) for name, cases in groups.items()}, fraction)
    chosen: list[str] = []
    for name in sorted(groups):
        # One generator per group: a change in one combination's exams leaves the others' draws alone.
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        order = rng.permutation(len(groups[name]))
        chosen += [groups[name][i] for i in order[: counts[name]]]
    return TuneSplit(fraction, seed, tuple(sorted(chosen)), dict(combinations), tuple(rare))


def tune_split_for(data_dir: str | Path, fraction: float, seed: int) -> TuneSplit:
    """The tuning split a run with these options uses on this dataset."""
    if fraction <= 0:
        return TuneSplit(fraction, seed, (), {})
    return draw_tune_split(train_combinations(data_dir), fraction, seed)


def check_both_classes(split: TuneSplit, tasks: Sequence[str]) -> None:
    """The tuning split must hold both classes of each task: it picks epochs by AUC and fits the stacker.

    A task whose whole train split has one class is left to training, which refuses it with its own message.
    """
    if not split.enabled:
        return
    problems = []
    for task in tasks:
        column = TASKS.index(task)
        in_train = sum(combination[column] for combination in split.combinations.values())
        positives = sum(split.combinations[c][column] for c in split.cases)
        if in_train not in (0, len(split.combinations)) and positives in (0, len(split.cases)):
            problems.append(f"{task}: {positives} positive and {len(split.cases) - positives} negative")
    if problems:
        raise MRNetError(
            f"the tuning split ({len(split.cases)} train exams, --tune-fraction {split.fraction}) lacks a class "
            f"({'; '.join(problems)}): the label combinations are too rare to stratify at this fraction. "
            f"Raise --tune-fraction, or train with the paper's protocol ({PAPER_PROTOCOL})"
        )


# ----------------------------------------------------------------------------- tune_cases.csv


def read_tune_cases(models_dir: str | Path) -> list[str] | None:
    """The tuning exams recorded in a models folder, or None when it has no tuning split."""
    path = layout.tune_cases_file(models_dir)
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, dtype={"case": str})
    except (OSError, ValueError) as err:
        raise MRNetError(f"{path} cannot be read ({err}); delete it and train again") from None
    if "case" not in table:
        raise MRNetError(f"{path} has no 'case' column; delete it and train again")
    return sorted(table["case"].str.zfill(4))


def check_against_file(models_dir: str | Path, split: TuneSplit) -> bool:
    """Refuse a run whose tuning split differs from the folder's; True when the file must still be written."""
    recorded = read_tune_cases(models_dir)
    if recorded is None:
        return split.enabled
    if recorded != list(split.cases):
        path = layout.tune_cases_file(models_dir)
        differ = len(set(recorded) ^ set(split.cases))
        changed = changed_labels(path, split)
        cause = (
            f"the train labels changed since it was drawn ({changed}), and the draw is stratified on them. "
            "Every model of an ensemble must keep the same exams out of training: restore the label files, "
            "or train the whole ensemble again in another --models-dir"
            if changed
            else "Every model of an ensemble must keep the same exams out of training: use the --tune-fraction "
            "and --split-seed the folder was trained with, or another --models-dir"
        )
        raise MRNetError(
            f"{path} holds a tuning split of {len(recorded)} exams, but --tune-fraction {split.fraction} "
            f"--split-seed {split.seed} draws {len(split.cases)} here ({differ} exams differ): {cause}"
        )
    return False


def changed_labels(path: Path, split: TuneSplit) -> str:
    """Which recorded tuning exams now have other train labels, as 'case task old->new'; empty if none."""
    try:
        table = pd.read_csv(path, dtype={"case": str})
    except (OSError, ValueError):
        return ""
    changes = []
    for row in table.itertuples(index=False):
        case = str(row.case).zfill(4)
        now = split.combinations.get(case)
        if now is None:
            changes.append(f"{case} no longer in train")
            continue
        for task, value in zip(TASKS, now, strict=True):
            before = getattr(row, task, None)
            if before is not None and int(before) != value:
                changes.append(f"{case} {task} {int(before)}->{value}")
    shown = ", ".join(changes[:5])
    return shown + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")


def write_tune_cases(models_dir: str | Path, split: TuneSplit) -> Path:
    path = layout.tune_cases_file(models_dir)
    table = split.table()
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    return path


def prepare_tune_split(models_dir: str | Path, data_dir: str | Path, fraction: float, seed: int) -> TuneSplit:
    """Draw the split, check it against the folder's file, and write the file if it is the first."""
    split = tune_split_for(data_dir, fraction, seed)
    if check_against_file(models_dir, split):
        write_tune_cases(models_dir, split)
    return split
