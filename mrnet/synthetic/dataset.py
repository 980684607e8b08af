"""A whole dataset on disk in the MRNet-v1.0 layout, so the pipeline reads synthetic exams exactly
as it reads real ones; it refuses to overwrite another dataset unless asked."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import PLANES, SPLITS, TASKS
from .exam import exam_rng, make_exam, validate_size, validate_slices
from .labels import draw_split_labels


def case_id(index: int) -> str:
    return f"{index:04d}"


def mrnet_layout_paths(out_dir: Path) -> list[Path]:
    """Existing paths that belong to an MRNet layout in out_dir."""
    candidates = [out_dir / split for split in SPLITS]
    candidates += [out_dir / f"{split}-{task}.csv" for split in SPLITS for task in TASKS]
    return [p for p in candidates if p.exists()]


def clear_mrnet_layout(out_dir: Path) -> None:
    """Remove a previous dataset's series and label files (only those), so no stale exams remain."""
    for split in SPLITS:
        for plane in PLANES:
            shutil.rmtree(out_dir / split / plane, ignore_errors=True)
        split_dir = out_dir / split
        if split_dir.is_dir() and not any(split_dir.iterdir()):
            split_dir.rmdir()
    for split in SPLITS:
        for task in TASKS:
            (out_dir / f"{split}-{task}.csv").unlink(missing_ok=True)


def validate_counts(n_train: int, n_valid: int, seed: int) -> None:
    for name, value in (("n_train", n_train), ("n_valid", n_valid), ("seed", seed)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if n_train < 1 or n_valid < 1:
        raise ValueError(f"each split needs at least one exam, got n_train={n_train}, n_valid={n_valid}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")


def make_dataset(
    out_dir: str | Path,
    n_train: int = 120,
    n_valid: int = 60,
    size: int = 256,
    seed: int = 0,
    slices: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: Callable[[str, str], None] | None = None,
) -> dict:
    """Write a synthetic MRNet-v1.0 dataset; return {split: {n, first_id, last_id, abnormal, acl, meniscus}}.

    Train ids start at 0000 and valid ids continue after them; the valid split is ordered by
    label combination like the real one. `progress(split, case_id)` is called after each exam.
    """
    validate_counts(n_train, n_valid, seed)
    validate_size(size)
    validate_slices(slices)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    existing = mrnet_layout_paths(out)
    if existing and not overwrite:
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in existing)
        raise FileExistsError(
            f"{out} already holds an MRNet-style dataset ({names}); refusing to overwrite it. "
            "Choose another folder or pass overwrite=True (--overwrite) to replace it."
        )
    if existing:
        clear_mrnet_layout(out)

    split_cases = {
        "train": (0, draw_split_labels(seed, 0, n_train, ordered=False)),
        "valid": (n_train, draw_split_labels(seed, n_train, n_valid, ordered=True)),
    }
    summary: dict = {}
    for split, (first, combos) in split_cases.items():
        for plane in PLANES:
            (out / split / plane).mkdir(parents=True, exist_ok=True)
        for offset, labels in enumerate(combos):
            index = first + offset
            exam = make_exam(exam_rng(seed, index), labels, size=size, slices=slices)
            assert isinstance(exam, dict)  # no masks asked for: one array per plane
            for plane in PLANES:
                np.save(out / split / plane / f"{case_id(index)}.npy", exam[plane])
            if progress is not None:
                progress(split, case_id(index))
        for t, task in enumerate(TASKS):
            rows = "".join(f"{case_id(first + i)},{labels[t]}\n" for i, labels in enumerate(combos))
            (out / f"{split}-{task}.csv").write_text(rows)
        summary[split] = {
            "n": len(combos),
            "first_id": case_id(first),
            "last_id": case_id(first + len(combos) - 1),
            **{task: int(sum(labels[t] for labels in combos)) for t, task in enumerate(TASKS)},
        }
    return summary
