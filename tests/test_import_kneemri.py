"""KneeMRI import: sagittal-only cases with the acl label, read by column name; a hostile .pck runs nothing."""

from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest

from mrnet.errors import MRNetError
from mrnet.importing.kneemri import import_kneemri
from mrnet.importing.pickles import UnsafePickle, load_array
from tests.import_cohorts import Hostile, write_kneemri


def read(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_kneemri_imports_sagittal_acl_and_refuses_the_hostile_pickle(tmp_path):
    src, source = write_kneemri(tmp_path, 5)
    data = tmp_path / "DATA"
    result = import_kneemri(src, data, size=64, valid_fraction=0.4)
    assert not (tmp_path / "pwned").exists()  # the hostile pickle's os.system never ran
    hostile = list(source)[-1]
    problems = read(data / "import" / "problems.csv")
    assert [p["study"] for p in problems] == [hostile]
    assert "nothing was run" in problems[0]["problem"]
    assert result.tasks == ("acl",) and result.written_now == 4
    assert sorted(p.name for p in data.glob("*.csv")) == ["train-acl.csv", "valid-acl.csv"]
    assert sorted(p.name for p in (data / "train").iterdir()) == ["sagittal"]
    labels = {}
    for split in ("train", "valid"):
        with (data / f"{split}-acl.csv").open() as handle:
            labels.update({case: int(label) for case, label in csv.reader(handle)})
    for key in read(data / "import" / "keys.csv"):
        row = source[key["study"]]
        assert labels[key["case"]] == int(row["aclDiagnosis"] in ("1", "2"))
        imported = np.load(data / key["split"] / "sagittal" / f"{key['case']}.npy")
        assert imported.dtype == np.uint8 and imported.shape == row["volume"].shape
        assert np.corrcoef(imported.ravel(), row["volume"].ravel().astype(float))[0, 1] >= 0.99
    cases = read(data / "import" / "cases.csv")
    assert {c["knee"] for c in cases} <= {"0", "1"} and all(c["roiDepth"] == "3" for c in cases)


def test_complete_ruptures_only(tmp_path):
    src, source = write_kneemri(tmp_path, 4, flat=True)
    data = tmp_path / "DATA"
    import_kneemri(src, data, size=64, acl_positive="complete", valid_fraction=0.0)
    with (data / "train-acl.csv").open() as handle:
        labels = dict(csv.reader(handle))
    keys = {k["case"]: k["study"] for k in read(data / "import" / "keys.csv")}
    assert {case: int(source[keys[case]]["aclDiagnosis"] == "2") for case in labels} == {
        case: int(label) for case, label in labels.items()
    }


def test_the_unpickler_admits_arrays_only(tmp_path):
    array = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    for protocol in (2, 4, 5):
        path = tmp_path / f"v{protocol}.pck"
        path.write_bytes(pickle.dumps(array, protocol=protocol))
        assert np.array_equal(load_array(path), array)
    hostile = tmp_path / "hostile.pck"
    hostile.write_bytes(pickle.dumps(Hostile(tmp_path / "pwned")))
    with pytest.raises(UnsafePickle, match="nothing was run"):
        load_array(hostile)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "dict.pck").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UnsafePickle, match="not a numeric numpy array"):
        load_array(tmp_path / "dict.pck")


def test_metadata_is_read_by_column_name(tmp_path):
    src, _ = write_kneemri(tmp_path, 2)
    text = (src / "metadata.csv").read_text().replace("aclDiagnosis", "diagnosis")
    (src / "metadata.csv").write_text(text)
    with pytest.raises(MRNetError, match="no column aclDiagnosis"):
        import_kneemri(src, tmp_path / "DATA", size=64)
