"""The exams both sides of the benchmark read: an MRNet-layout folder, given or synthetic, and a checked selection."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mrnet.data.dataset import check_and_load, series_path
from mrnet.errors import MRNetError

SYNTHETIC_VALID_EXAMS = 1  # make_dataset needs one; the benchmark does not read it


@dataclass(frozen=True)
class ExamSet:
    """The exams both sides read: file paths, labels, and slice counts (for the rates)."""

    paths: tuple[str, ...]
    labels: tuple[int, ...]
    slice_counts: tuple[int, ...]
    size: int

    @property
    def slices(self) -> int:
        return sum(self.slice_counts)


def write_synthetic_exams(root: Path, count: int, size: int, slices: tuple[int, int], seed: int) -> None:
    """Synthetic knees in the MRNet layout; their slice counts are drawn from [min, max] like MRNet's."""
    from mrnet.synthetic import make_dataset  # only needed when no --data-dir is given

    make_dataset(root, n_train=count, n_valid=SYNTHETIC_VALID_EXAMS, size=size, seed=seed, slices=slices)


def select_exams(data_dir: Path, plane: str, count: int) -> ExamSet:
    """The first `count` training exams of a plane, checked the way training checks them.

    Labels alternate 0/1 so that any subset holds both classes; speed does not depend on
    them, and the loss weight and the AUC need both.
    """
    split = check_and_load(data_dir, tasks=("acl",), planes=(plane,), splits=("train",), load=False)[("train", plane)]
    if len(split.cases) < count:
        raise MRNetError(f"--data-dir {data_dir}: {len(split.cases)} train exams, fewer than --exams {count}")
    cases = split.cases[:count]
    shapes = [split.series[c].shape for c in cases]
    sizes = {shape[-1] for shape in shapes}
    if len(sizes) != 1:
        raise MRNetError(f"--data-dir {data_dir}: exams of several sizes {sorted(sizes)}; the benchmark needs one")
    return ExamSet(
        paths=tuple(str(series_path(data_dir, "train", plane, c)) for c in cases),
        labels=tuple(i % 2 for i in range(count)),
        slice_counts=tuple(int(shape[0]) for shape in shapes),
        size=sizes.pop(),
    )


@contextmanager
def exam_folder(data_dir: str | None, count: int, size: int, slices: tuple[int, int], seed: int) -> Iterator[Path]:
    """The folder to read: `data_dir` as given, or synthetic exams in a temporary folder removed afterwards."""
    if data_dir:
        yield Path(data_dir)
        return
    with tempfile.TemporaryDirectory(prefix="mrnet-bench-") as tmp:
        root = Path(tmp) / "MRNet-v1.0"
        print(f"writing {count} synthetic exams of {size} px to a temporary folder ...", flush=True)
        started = time.perf_counter()
        write_synthetic_exams(root, count, size, slices, seed)
        print(f"  done in {time.perf_counter() - started:.1f} s (not part of any measurement)", flush=True)
        yield root
