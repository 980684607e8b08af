"""Converting the planned studies, in this process or in worker processes, each written whole or not at all.

A worker converts and writes one study and returns only its cases.csv row or its problem,
so no volume crosses between processes; the parent lists each case as done once written.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.series import SeriesProblem
from .splits import Planned
from .store import Store


class StudyProblem(Exception):
    """A study that cannot be imported as it is; the message says why (and names no patient)."""


# (payload) -> ({plane: uint8 (s, size, size)}, the shareable facts of the case for cases.csv)
Convert = Callable[[Any], tuple[dict[str, np.ndarray], dict[str, Any]]]


@dataclass
class Job:
    study: Planned
    payload: Any


@dataclass
class Outcome:
    study: Planned
    row: dict[str, Any] | None  # the case's cases.csv row when written
    problem: str | None


def _work(args: tuple[Convert, Store, Job]) -> Outcome:
    convert, store, job = args
    study = job.study
    try:
        volumes, facts = convert(job.payload)
    except (StudyProblem, SeriesProblem) as err:
        return Outcome(study, None, str(err))
    store.write_case(str(study.split), study.case, volumes)
    return Outcome(study, {"case": study.case, "split": study.split, **facts}, None)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one study per process; the processes are the parallelism


def convert_all(
    convert: Convert, store: Store, jobs: Sequence[Job], workers: int, progress: Callable[[], None] | None = None
) -> Iterator[Outcome]:
    """Each job's outcome as it finishes; a written case is listed as done before it is yielded."""
    tasks = [(convert, store, job) for job in jobs]
    if workers <= 1 or len(tasks) <= 1:
        results: Iterator[Outcome] = map(_work, tasks)
        yield from _record(store, results, progress)
        return
    # fork: the workers share the parent's imports; the parent has run no torch operation before this
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_init_worker) as pool:
        yield from _record(store, pool.imap_unordered(_work, tasks), progress)


def _record(store: Store, results: Iterator[Outcome], progress: Callable[[], None] | None) -> Iterator[Outcome]:
    for outcome in results:
        if outcome.row is not None:
            store.mark_done(outcome.row)
        if progress is not None:
            progress()
        yield outcome


def facts_of(volumes: Mapping[str, np.ndarray], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The slice counts of a case's planes next to its other facts."""
    return {**{f"{plane}_slices": int(v.shape[0]) for plane, v in volumes.items()}, **facts}


@dataclass
class ImportResult:
    """What an import did: cases written (now and before), studies left out, and where the lists are."""

    out: str
    tasks: tuple[str, ...]
    planned: int
    written_now: int
    written_before: int
    problems: list[tuple[str, str, str]]  # (study, where, problem), as in problems.csv
    seconds: float
    split_counts: dict[str, int]

    @property
    def studies_per_second(self) -> float:
        return self.written_now / self.seconds if self.seconds > 0 else float("nan")


def run_import(
    store: Store,
    jobs: Sequence[Job],
    convert: Convert,
    tasks: Sequence[str],
    case_columns: Sequence[str],
    problems: list[tuple[str, str, str]],
    workers: int,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> ImportResult:
    """Plan checked against an earlier run, the cases not yet done converted, then the tables written."""
    import time

    studies = [job.study for job in jobs]
    store.check_plan(studies)
    done_before = store.done()
    todo = [job for job in jobs if job.study.case not in done_before]
    started = time.perf_counter()
    tick = progress(len(todo)) if progress is not None and todo else None
    written = 0
    for outcome in convert_all(convert, store, todo, workers, tick):
        if outcome.problem is not None:
            problems.append((outcome.study.key, "", outcome.problem))
        else:
            written += 1
    seconds = time.perf_counter() - started
    store.finish(studies, tasks, case_columns, problems)
    done = store.done()
    counts = {split: sum(1 for s in studies if s.split == split and s.case in done) for split in ("train", "valid")}
    return ImportResult(str(store.out), tuple(tasks), len(jobs), written, len(done_before), problems, seconds, counts)
