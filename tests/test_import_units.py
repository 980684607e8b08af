"""The import's parts: the labels file, the split by patient, and the output folder's record of its source."""

from __future__ import annotations

import pytest

from mrnet.errors import MRNetError
from mrnet.importing.labels import read_labels
from mrnet.importing.splits import Planned, assign_case_ids, assign_splits, hashed_patient
from mrnet.importing.store import Store


def test_labels_file_unknowns_and_tasks(tmp_path):
    path = tmp_path / "LABELS.csv"
    path.write_text("study,abnormal,acl,meniscus,split\nA,1,1,,valid\nB,0,0,0,\n")
    labels = read_labels(path)
    assert labels.tasks == ("abnormal", "acl", "meniscus")
    assert labels.unknown(labels.rows[0]) == ["meniscus"] and labels.rows[0].split == "valid"
    path.write_text("study,acl\nA,1\nB,0\n")
    assert read_labels(path).tasks == ("acl",)  # an ACL-only cohort writes only the acl label files
    path.write_text("study,abnormal,acl,meniscus\nA,1,2,0\nA,1,1,0\n")
    with pytest.raises(MRNetError, match=r"line 2: acl '2'.*\n.*line 3: study 'A' already on line 2"):
        read_labels(path)
    path.write_text("accession,acl\nA,1\n")
    with pytest.raises(MRNetError, match="the first line must be the header"):
        read_labels(path)


def test_split_by_patient_stratified_and_overridden():
    studies = []
    for index in range(40):
        patient = hashed_patient(f"P{index // 2}")  # two studies per patient
        studies.append(Planned(f"S{index}", patient, {"acl": int(index % 4 < 2)}))
    studies.append(Planned("forced", hashed_patient("Q"), {"acl": 0}, split="valid"))
    assign_splits(studies, 0.25, seed=1)
    by_patient: dict[str, set] = {}
    for s in studies:
        by_patient.setdefault(s.patient, set()).add(s.split)
    assert all(len(v) == 1 for v in by_patient.values())
    valid = [s for s in studies[:40] if s.split == "valid"]
    # 10 patients per label stratum: round(2.5) = 2 of each to valid, with two studies each
    assert len(valid) == 8 and sum(s.labels["acl"] for s in valid) == 4
    assert studies[-1].split == "valid"
    assign_case_ids(studies, seed=1)
    assert sorted(s.case for s in studies) == [f"{i:04d}" for i in range(41)]
    assert all(s.case < t.case for s in studies if s.split == "train" for t in studies if t.split == "valid")
    with pytest.raises(MRNetError, match="both splits"):
        assign_splits([Planned("a", "p", {}, "train"), Planned("b", "p", {}, "valid")], 0.2, 0)


def test_store_records_its_source(tmp_path):
    Store(tmp_path / "DATA", {"source": "/a", "size": 64})
    Store(tmp_path / "DATA", {"source": "/a", "size": 64})
    with pytest.raises(MRNetError, match="size 64 then, 256 now"):
        Store(tmp_path / "DATA", {"source": "/a", "size": 256})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("")
    with pytest.raises(MRNetError, match="not empty and holds no import"):
        Store(tmp_path / "other", {"source": "/a"})
