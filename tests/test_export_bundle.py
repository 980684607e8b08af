"""Bundles: a run as one verified file; the same probabilities back, and tampered or pickled bundles refused."""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from helpers import valid_input_csv as input_csv

from mrnet import PLANES, TASKS, layout
from mrnet.cli.export import main as export_main
from mrnet.cli.predict import main as predict_main
from mrnet.ensemble.file import load_checked_ensemble
from mrnet.errors import MRNetError
from mrnet.export import manifest as mf
from mrnet.export.unpack import read_bundle, unpack_bundle

PROBABILITIES = [f"{t}_{c}" for t in TASKS for c in (*PLANES, "ensemble", "threshold")]


@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory) -> Path:
    notes = tmp_path_factory.mktemp("notes") / "notes.md"
    notes.write_text("Trained on synthetic knees for the tests.\n")
    out = tmp_path_factory.mktemp("bundle") / "knee-model.zip"
    export_main(
        [
            "bundle",
            "--models-dir",
            str(tiny.models_dir),
            "--out",
            str(out),
            "--license",
            "mit",
            "--card-notes",
            str(notes),
        ]
    )
    return out


def rewritten(source: Path, target: Path, change) -> Path:
    """A copy of a bundle whose members (name -> bytes, manifest included) went through `change`."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def listed(members: dict[str, bytes], name: str, data: bytes) -> None:
    """Add or replace a member and record its true hash in the manifest, as a forger would."""
    members[name] = data
    manifest = json.loads(members[mf.MANIFEST])
    manifest["members"][name] = hashlib.sha256(data).hexdigest()
    members[mf.MANIFEST] = json.dumps(manifest).encode()


class Bomb:
    """Unpickling this creates a file: the proof that something was unpickled."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


@pytest.mark.slow
def test_predict_with_bundle_equals_models_dir(tiny, bundle, tmp_path):
    csv = input_csv(tiny, tmp_path / "input.csv")
    common = ["--input-csv", str(csv), "--device", "cpu"]
    direct = predict_main(["--models-dir", str(tiny.models_dir), *common, "--out", str(tmp_path / "a")])
    bundled = predict_main(["--bundle", str(bundle), *common, "--out", str(tmp_path / "b")])
    assert list(direct["case"]) == list(bundled["case"])
    assert (direct[PROBABILITIES] - bundled[PROBABILITIES]).abs().to_numpy().max() <= 1e-6
    assert (direct[[f"{t}_positive" for t in TASKS]] == bundled[[f"{t}_positive" for t in TASKS]]).all().all()


@pytest.mark.slow
def test_unpacked_run_holds_checkpoints_and_stackers_that_agree(bundle, tmp_path):
    run = tmp_path / "run"
    unpack_bundle(bundle, run)
    for task in TASKS:
        saved = load_checked_ensemble(run, task)  # refuses a stacker whose best.pt hashes do not match
        assert saved.task == task
    assert json.loads((run / "bundle.json").read_text())["sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    with pytest.raises(MRNetError, match="not empty"):
        unpack_bundle(bundle, run)


@pytest.mark.slow
def test_bundle_holds_safetensors_json_and_a_manifest_of_every_member(bundle):
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read(mf.MANIFEST))
    assert names - {mf.MANIFEST} == set(manifest["members"])
    assert manifest["format_version"] == mf.FORMAT_VERSION
    assert not [n for n in names if n.endswith((".pt", ".joblib", ".pkl"))]
    for task in TASKS:
        for plane in PLANES:
            entry = manifest["models"][f"{task}-{plane}"]
            assert entry["weights"].endswith(".safetensors") and entry["image_size"] == 64
    preprocessing = json.loads(zipfile.ZipFile(bundle).read(mf.PREPROCESSING))
    assert preprocessing["mean"] == pytest.approx(58.09) and preprocessing["std"] == pytest.approx(49.73)


@pytest.mark.slow
def test_one_changed_byte_is_refused_naming_the_member(bundle, tmp_path):
    member = "models/acl-sagittal/model.safetensors"

    def flip(members):
        data = bytearray(members[member])
        data[-1] ^= 1
        members[member] = bytes(data)

    with pytest.raises(MRNetError, match=f"member {member} does not match its sha256"):
        read_bundle(rewritten(bundle, tmp_path / "changed.zip", flip))


@pytest.mark.slow
def test_an_extra_member_is_refused(bundle, tmp_path):
    def extra(members):
        members["thresholds.csv.orig"] = b"task,model\n"

    with pytest.raises(MRNetError, match=r"thresholds\.csv\.orig"):
        read_bundle(rewritten(bundle, tmp_path / "extra.zip", extra))


@pytest.mark.slow
@pytest.mark.parametrize("member", ["models/acl-axial/best.pt", "models/acl-axial/checkpoint.json", "evil.pkl"])
def test_a_pickle_is_refused_and_never_unpickled(bundle, tmp_path, member):
    target = tmp_path / "unpickled"
    bomb = pickle.dumps(Bomb(target), protocol=4)
    with pytest.raises(MRNetError, match=f"member {member}"):
        unpack_bundle(rewritten(bundle, tmp_path / "bomb.zip", lambda m: listed(m, member, bomb)), tmp_path / "out")
    assert not target.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_stacker_fitted_on_other_weights_is_refused(bundle, tmp_path):
    def swap(members):
        payload = json.loads(members["ensemble-acl.json"])
        payload["checkpoints"]["axial"] = "0" * 64
        listed(members, "ensemble-acl.json", json.dumps(payload).encode())

    with pytest.raises(MRNetError, match=r"ensemble-acl\.json was fitted on another axial model"):
        unpack_bundle(rewritten(bundle, tmp_path / "swapped.zip", swap), tmp_path / "out")


@pytest.mark.slow
def test_model_card_reports_every_auc_with_interval_split_and_protocol(bundle, tiny):
    card = zipfile.ZipFile(bundle).read(mf.CARD).decode()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "license: mit" in front and "roc_auc" in front and "tags:" in front
    rows = [line.split("|")[1:-1] for line in body.splitlines() if line.startswith("| ") and "AUC" not in line]
    results = {(r[0].strip(), r[1].strip()): [c.strip() for c in r] for r in rows if len(r) == 7}
    recorded = pd.read_csv(tiny.models_dir / layout.AUC_TABLE)
    for row in recorded.to_dict("records"):
        cells = results[(row["task"], "ensemble")]
        assert cells[2] == "valid" and float(cells[4]) == pytest.approx(row["ensemble"], abs=1e-4)
        low, high = (float(v) for v in cells[5].split(" to "))
        assert low <= float(cells[4]) <= high
        assert cells[6] == row["ensemble_scored"]
    assert "Epochs chosen on: tune split" in body
    for task in TASKS:
        assert f"Stacker of {task}: fitted on the tune split" in body
    assert "Research use only" in body and "Trained on synthetic knees for the tests." in body


def test_member_names_and_pickle_detection():
    assert mf.ALLOWED.match("models/acl-axial/model.safetensors")
    assert not mf.ALLOWED.match("models/acl-axial/../../etc/passwd")
    assert not mf.ALLOWED.match("models/acl-axial/best.pt")
    assert mf.looks_pickled("x.json", pickle.dumps({"a": 1}, protocol=2)[:4])
    assert mf.looks_pickled("x.json", b"PK\x03\x04")
    assert not mf.looks_pickled("models/acl-axial/model.safetensors", b"\x80\x04\x00\x00")
    assert not mf.looks_pickled("MODEL_CARD.md", b"---\nl")


@pytest.mark.slow
def test_evaluate_and_compare_read_bundles(tiny, bundle, tmp_path):
    from mrnet.cli.compare import main as compare_main
    from mrnet.cli.evaluate import main as evaluate_main

    common = ["--data-dir", str(tiny.data_dir), "--device", "cpu", "--bootstrap", "0", "--heatmap-exams", "0"]
    common += ["--viewer-exams", "0"]
    direct = evaluate_main(["--models-dir", str(tiny.models_dir), *common, "--out", str(tmp_path / "a")])
    bundled = evaluate_main(["--bundle", str(bundle), *common, "--out", str(tmp_path / "b")])
    assert direct["auc"].tolist() == pytest.approx(bundled["auc"].tolist(), abs=1e-9, nan_ok=True)
    argv = [str(tiny.models_dir), str(bundle), "--data-dir", str(tiny.data_dir), "--device", "cpu"]
    table = compare_main([*argv, "--bootstrap", "20", "--csv", str(tmp_path / "comparison.csv")])
    assert table["difference"].abs().max() == 0
