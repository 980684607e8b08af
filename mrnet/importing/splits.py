"""Which studies go to valid: drawn by patient, stratified on the label combination, and fresh case ids.

A patient's studies (two knees, a follow-up) look alike to a model, so a patient in both
splits would be scored on what it was trained on; the draw is over patients, never studies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import MRNetError

HASH_CHARS = 16


def hashed_patient(patient_id: str) -> str:
    """A PatientID as the outputs name it: not the ID itself (keys.csv stays private all the same)."""
    return hashlib.sha256(f"mrnet-patient:{patient_id}".encode()).hexdigest()[:HASH_CHARS]


def _draw_key(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


@dataclass
class Planned:
    """One study to import: its key (what identifies it in the source), its patient, labels and split."""

    key: str
    patient: str  # hashed
    labels: dict[str, int]
    split: str | None = None  # given by the labels file; else drawn
    case: str = ""


def assign_splits(studies: Sequence[Planned], valid_fraction: float, seed: int) -> None:
    """Set each study's split: the labels file's where given (per patient), else a stratified draw of patients.

    Patients are grouped by the label combination of their first study (by key) and, within
    each group, ordered by a seeded hash; the first round(fraction * n) go to valid. The
    draw depends on the seed and the patients only, so a rerun draws the same.
    """
    by_patient: dict[str, list[Planned]] = {}
    for study in studies:
        by_patient.setdefault(study.patient, []).append(study)
    strata: dict[tuple, list[str]] = {}
    for patient, own in by_patient.items():
        given = {s.split for s in own if s.split is not None}
        if len(given) > 1:
            keys = ", ".join(sorted(s.key for s in own))
            raise MRNetError(
                f"the labels file puts one patient's studies in both splits ({keys}); a patient belongs to one split"
            )
        if given:
            split = given.pop()
            for s in own:
                s.split = split
            continue
        first = min(own, key=lambda s: s.key)
        strata.setdefault(tuple(sorted(first.labels.items())), []).append(patient)
    for patients in strata.values():
        ordered = sorted(patients, key=lambda p: _draw_key(seed, p))
        n_valid = round(valid_fraction * len(ordered))
        for index, patient in enumerate(ordered):
            for s in by_patient[patient]:
                s.split = "valid" if index < n_valid else "train"


def assign_case_ids(studies: Sequence[Planned], seed: int) -> None:
    """Fresh ids 0000, 0001, ...: train first, then valid (as in MRNet-v1.0), in a seeded order within each.

    The order follows a hash, not the source's names or dates, so an id tells nothing about the study.
    """
    ordered = sorted(studies, key=lambda s: (s.split != "train", _draw_key(seed, "case:" + s.key)))
    width = max(4, len(str(len(ordered) - 1)))
    for index, study in enumerate(ordered):
        study.case = str(index).zfill(width)
