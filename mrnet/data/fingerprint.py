"""What a model was trained and validated on, recorded so a later step can tell when the data changed.

A fingerprint holds, per split, the case ids, their labels for the task, each series' slice
count and the slice sizes, with a sha256 over all of it. It is small (a few characters per
exam) and is saved in every checkpoint, so `--resume`, `train_all`'s skip of finished models
and `train_meta` can compare it with the data they are given and name what changed:
cases added or removed, labels flipped, series replaced, another slice size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import TASKS

FINGERPRINT_VERSION = 1
MAX_NAMED = 6


def split_fingerprint(
    cases: Sequence[str], labels: Sequence[int] | np.ndarray, shapes: Sequence[tuple[int, ...]]
) -> dict[str, Any]:
    """One split: cases in order, labels as a 0/1 string, slice counts and the set of slice sizes."""
    entry = {
        "cases": list(cases),
        "labels": "".join(str(int(label)) for label in labels),
        "slices": [int(shape[0]) for shape in shapes],
        "sizes": sorted({int(shape[-1]) for shape in shapes}),
    }
    return _sealed(entry)


def _sealed(entry: dict[str, Any]) -> dict[str, Any]:
    entry = {key: value for key, value in entry.items() if key != "sha256"}
    return {**entry, "sha256": hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()}


def fingerprint_of(splits: Mapping[str, Any], task: str) -> dict[str, Any]:
    """The fingerprint of a (task, plane) model from its SplitData per split name."""
    result: dict[str, Any] = {"version": FINGERPRINT_VERSION, "task": task}
    for name, split in splits.items():
        shapes = [split.series[case].shape for case in split.cases]
        result[name] = split_fingerprint(split.cases, task_labels(split, task), shapes)
    return result


def task_labels(split: Any, task: str) -> np.ndarray:
    """A task's labels; for a multi-task run ('all'), each exam's label combination as one number (0-7)."""
    if task in TASKS:
        return split.labels_for(task)
    return sum(split.labels_for(t).astype(np.int64) << bit for bit, t in enumerate(reversed(TASKS)))


def view_fingerprint(run: Mapping[str, Any] | None, task: str) -> dict[str, Any] | None:
    """A multi-task run's fingerprint as a single-task run of `task` on the same data records it.

    Lets train_meta check a multi-task view against the data like any single-task model.
    """
    if not run or run.get("version") != FINGERPRINT_VERSION or run.get("task") in TASKS:
        return None
    bit = list(reversed(TASKS)).index(task)
    result: dict[str, Any] = {"version": FINGERPRINT_VERSION, "task": task}
    for name, entry in run.items():
        if isinstance(entry, Mapping) and "labels" in entry:
            labels = "".join(str((int(combination) >> bit) & 1) for combination in entry["labels"])
            result[name] = _sealed({**entry, "labels": labels})
    return result


def describe_changes(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """What differs between a recorded fingerprint and the data now given, one phrase per change.

    An empty list means the same data. A checkpoint written before fingerprints existed
    has none to compare, and passes.
    """
    if not saved or saved.get("version") != FINGERPRINT_VERSION:
        return []
    changes = []
    for name in ("train", "valid"):
        if name in saved and name in current and saved[name]["sha256"] != current[name]["sha256"]:
            changes += [f"{name}: {change}" for change in _split_changes(saved[name], current[name])]
    return changes


def _split_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    old_cases = dict(zip(old["cases"], zip(old["labels"], old["slices"], strict=True), strict=True))
    new_cases = dict(zip(new["cases"], zip(new["labels"], new["slices"], strict=True), strict=True))
    changes = []
    removed = sorted(set(old_cases) - set(new_cases))
    added = sorted(set(new_cases) - set(old_cases))
    common = sorted(set(old_cases) & set(new_cases))
    if removed:
        changes.append(f"{len(removed)} case(s) removed ({_named(removed)})")
    if added:
        changes.append(f"{len(added)} case(s) added ({_named(added)})")
    flipped = [f"{c}: {old_cases[c][0]} -> {new_cases[c][0]}" for c in common if old_cases[c][0] != new_cases[c][0]]
    if flipped:
        changes.append(f"{len(flipped)} label(s) changed ({_named(flipped)})")
    replaced = [c for c in common if old_cases[c][1] != new_cases[c][1]]
    if replaced:
        changes.append(f"{len(replaced)} series with another slice count ({_named(replaced)})")
    if old["sizes"] != new["sizes"]:
        changes.append(f"slice size {_sizes(old['sizes'])} -> {_sizes(new['sizes'])}")
    return changes or ["the series or their order differ"]


def _named(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f", +{len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def _sizes(sizes: Sequence[int]) -> str:
    return "/".join(f"{s}x{s}" for s in sizes) or "none"
