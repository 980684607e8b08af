"""The ensemble file: plain JSON that loads without running code, checked strictly, equal to scikit-learn."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from test_ensemble import known_probabilities

from mrnet import PLANES
from mrnet.cli.evaluate import main as evaluate
from mrnet.cli.predict import main as predict
from mrnet.cli.train_meta import main as train_meta
from mrnet.data.dataset import series_path
from mrnet.ensemble.file import (
    LOG_ODDS,
    LOGITS,
    PROBABILITY,
    Threshold,
    ensemble_text,
    load_ensemble,
    load_ensemble_joblib,
    saved_ensemble,
)
from mrnet.ensemble.stacker import ensemble_probabilities, features, fit_stacker
from mrnet.errors import MRNetError
from mrnet.layout import best_checkpoint, ensemble_file, ensemble_joblib

HASHES = dict.fromkeys(PLANES, "0" * 64)


def fitted_payload(fit_on: str = "train") -> tuple[object, dict]:
    model, _ = fit_stacker(known_probabilities(80, 0), known_probabilities(40, 1), "train", 5, 0)
    return model, saved_ensemble(model, "acl", fit_on, HASHES, "1.0").payload()


def test_json_probabilities_equal_scikit_learns(tmp_path):
    model, _ = fitted_payload()
    path = tmp_path / "ensemble-acl.json"
    path.write_text(ensemble_text(saved_ensemble(model, "acl", "train", HASHES, "1.0")))
    with pytest.warns(UserWarning, match="scikit-learn 1.0"):
        saved = load_ensemble(path, "acl")
    table = known_probabilities(50, 3)
    expected = model.predict_proba(features(table))[:, 1]  # the stacker is fitted on the planes' logits
    assert saved.features == LOGITS
    assert np.allclose(ensemble_probabilities(saved, table), expected, rtol=0, atol=1e-12)
    shuffled = table[["sagittal_logit", "axial_logit", "coronal_logit", "sagittal", "axial", "coronal"]]  # by name
    assert np.allclose(ensemble_probabilities(saved, shuffled), expected, rtol=0, atol=1e-12)
    # a stacker recorded as fitted on probabilities is applied to probabilities
    on_probs = dataclasses.replace(saved, features=PROBABILITY)
    raw = model.predict_proba(table[list(PLANES)].to_numpy())[:, 1]
    assert np.allclose(ensemble_probabilities(on_probs, table), raw, rtol=0, atol=1e-12)
    # a stacker recorded as fitted on clipped log-odds is applied to them, clipped as it was fitted
    on_log_odds = dataclasses.replace(saved, features=LOG_ODDS)
    clipped = np.clip(table[list(PLANES)].to_numpy(), 1e-6, 1 - 1e-6)
    old = model.predict_proba(np.log(clipped / (1 - clipped)))[:, 1]
    assert np.allclose(ensemble_probabilities(on_log_odds, table), old, rtol=0, atol=1e-12)
    with pytest.raises(MRNetError, match="axial_logit"):  # a table without logits is refused, never guessed
        ensemble_probabilities(saved, table[list(PLANES)])


def test_saved_ensemble_round_trips_the_file_byte_for_byte(tmp_path):
    model, _ = fitted_payload()
    thresholds = {
        "axial": Threshold(0.25, "tune", "held-out"),
        "ensemble": Threshold(float("nan"), "tune", "out-of-fold"),  # one class in tune: Youden's J undefined
    }
    record = {"folds": 5, "folds_used": {"tune": 2}, "seed": 0, "data_dir": "/data", "fit_split": "train"}
    record["fit_cases"] = ["0001", "0002"]
    text = ensemble_text(saved_ensemble(model, "acl", "tune", HASHES, "1.0", **record, thresholds=thresholds))
    assert list(json.loads(text)) == [
        *("format", "format_version", "task", "planes", "features", "fit_on", "sklearn_version", "classes"),
        *("coef", "intercept", "checkpoints", "folds", "folds_used", "seed", "data_dir", "fit_split", "fit_cases"),
        "thresholds",
    ]
    assert json.loads(text)["thresholds"]["ensemble"]["threshold"] is None  # valid JSON: null, never NaN
    path = tmp_path / "ensemble-acl.json"
    path.write_text(text)
    with pytest.warns(UserWarning, match="scikit-learn 1.0"):
        saved = load_ensemble(path, "acl")
    assert ensemble_text(saved) == text
    assert saved.fit_cases == ("0001", "0002") and saved.thresholds["axial"] == thresholds["axial"]
    assert math.isnan(saved.thresholds["ensemble"].threshold)
    assert saved.folds_used == {"tune": 2}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"format": "other"}, "marker"),
        ({"planes": ["axial", "axial", "sagittal"]}, "planes"),
        ({"coef": [1.0, 2.0]}, "coef"),
        ({"coef": [1.0, True, 2.0]}, "coef"),
        ({"intercept": "0.5"}, "intercept"),
        ({"classes": [0, 1, 2]}, "classes"),
        ({"task": "meniscus"}, "task"),
        ({"checkpoints": {"axial": "x"}}, "sha256"),
        ({"fit_on": "everything"}, "fit_on"),
        ({"thresholds": {"ensemble": {"threshold": 0.5}}}, "thresholds"),
        ({"thresholds": {"ensemble": {"threshold": "0.5", "chosen_on": "tune", "scored": "held-out"}}}, "thresholds"),
        ({"fit_cases": "0001"}, "fit_cases"),
        ({"folds": 2.5}, "folds"),
        ({"fit_split": "train"}, "folds and seed"),
        ({"fit_split": "everywhere", "folds": 5, "seed": 0}, "fit_split 'everywhere'"),
        ({"folds": 1}, "folds 1, expected a whole number of at least 2"),
        ({"folds_used": {"valid": 100.0}}, "folds_used"),
        ({"features": "per-plane magic"}, "features"),
        ({"sklearn_version": "1.5\x1b[2J"}, "sklearn_version"),
        ({"threshold": "0.5"}, "threshold '0.5', expected a probability"),
        ({"threshold": [0.5]}, "threshold \\[0.5\\], expected a probability"),
        ({"threshold": 2.0}, "threshold 2.0, expected a probability from 0 to 1"),
    ],
)
def test_loader_is_strict(tmp_path, change, message):
    _, payload = fitted_payload()
    path = tmp_path / "ensemble-acl.json"
    path.write_text(json.dumps({**payload, **change}))
    with pytest.raises(MRNetError, match=message):
        load_ensemble(path, "acl")


def test_non_finite_coefficients_are_refused(tmp_path):
    _, payload = fitted_payload()
    path = tmp_path / "ensemble-acl.json"
    path.write_text(json.dumps({**payload, "coef": [float("nan"), 1.0, 1.0]}))
    with pytest.raises(MRNetError, match="finite"):
        load_ensemble(path, "acl")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, 2.0, "0.5", [0.5], True])
def test_a_threshold_that_is_no_probability_is_refused_naming_the_file_and_field(tmp_path, bad):
    """NaN, infinity or 2.0 would call every exam negative: refused at load, not applied."""
    _, payload = fitted_payload()
    payload["thresholds"] = {"ensemble": {"threshold": bad, "chosen_on": "tune", "scored": "held-out"}}
    path = tmp_path / "ensemble-acl.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(MRNetError, match=r"ensemble-acl.json .*thresholds.ensemble.threshold .*from 0 to 1"):
        load_ensemble(path, "acl")


@pytest.mark.parametrize("field", ["coef", "intercept"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_any_non_finite_coefficient_or_intercept_is_refused(tmp_path, field, bad):
    _, payload = fitted_payload()
    payload[field] = [1.0, bad, 1.0] if field == "coef" else bad
    path = tmp_path / "ensemble-acl.json"
    path.write_text(json.dumps(payload))  # json writes NaN and Infinity, and Python's json reads them back
    with pytest.raises(MRNetError, match=f"{field} .*finite"):
        load_ensemble(path, "acl")


def test_a_tampered_file_gets_one_message_listing_everything_wrong(tmp_path):
    _, payload = fitted_payload()
    del payload["intercept"]
    payload.update(
        extra=1,
        fit_cases={"0001": 1},
        thresholds={
            "ensemble": {"threshold": [0.3], "chosen_on": "<script>", "scored": "held-out"},
            "axial": {"threshold": 0.3},
            "everything": {"threshold": 0.3, "chosen_on": "tune", "scored": "held-out"},
        },
    )
    path = tmp_path / "ensemble-acl.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(MRNetError) as err:
        load_ensemble(path, "acl")
    message = str(err.value)
    for part in (
        "missing field(s) intercept",
        "unknown field(s) 'extra'",
        "fit_cases",
        "thresholds.ensemble.threshold [0.3]",
        "thresholds.ensemble.chosen_on '<script>', expected one of tune, valid",
        "thresholds.axial {'threshold': 0.3}, expected an object with threshold, chosen_on, scored",
        "thresholds.everything: unknown model",
    ):
        assert part in message


JUNK = [None, True, "x", 1.5, -3, [], [1, "a"], {}, {"a": [1]}, float("nan")]


def test_no_junk_in_any_field_ends_in_a_traceback(tmp_path):
    """Every field, removed or replaced by a value of each wrong type: a clear error or a valid file, nothing else."""
    _, payload = fitted_payload()
    payload.update(folds=5, seed=0, data_dir="/d", fit_split="train", fit_cases=["0001"], threshold=0.5)
    payload["thresholds"] = {"ensemble": {"threshold": 0.5, "chosen_on": "tune", "scored": "held-out"}}
    path = tmp_path / "ensemble-acl.json"
    variants = [{k: v for k, v in payload.items() if k != key} for key in payload]
    variants += [{**payload, key: junk} for key in payload for junk in JUNK]
    variants += [
        {**payload, "thresholds": {"ensemble": {**payload["thresholds"]["ensemble"], f: junk}}}
        for f in ("threshold", "chosen_on", "scored")
        for junk in JUNK
    ]
    refused = 0
    for variant in variants:
        path.write_text(json.dumps(variant))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_ensemble(path, "acl")
        except MRNetError as err:
            assert str(path) in str(err)
            refused += 1
    assert refused > len(variants) * 0.8


def test_joblib_copy_loads_only_when_asked_and_warns(tmp_path):
    model, _ = fitted_payload()
    joblib.dump({"model": model}, tmp_path / "e.joblib")
    with pytest.warns(UserWarning, match="runs code"):
        assert load_ensemble_joblib(tmp_path / "e.joblib")["model"].coef_.shape == (1, 3)


def report_args(tiny, models, tmp_path) -> list[str]:
    return [
        "--data-dir",
        str(tiny.data_dir),
        "--models-dir",
        str(models),
        "--out",
        str(tmp_path / "report"),
        "--bootstrap",
        "0",
        "--device",
        "cpu",
    ]


class Planted:
    """Unpickling this opens (creates) a file: what a hostile ensemble-<task>.joblib could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def shared_folder(tiny, tmp_path):
    """A copy of the tiny models folder whose joblib files were replaced by hostile ones."""
    models = tmp_path / "shared-models"
    shutil.copytree(tiny.models_dir, models)
    marker = tmp_path / "pwned"
    for task in ("abnormal", "acl", "meniscus"):
        joblib.dump(Planted(marker), ensemble_joblib(models, task))
    return models, marker


@pytest.mark.slow
def test_crafted_joblib_runs_nothing_under_predict_evaluate_train_meta(tiny, shared_folder, tmp_path):
    models, marker = shared_folder
    case = sorted(p.stem for p in (tiny.data_dir / "valid" / "axial").glob("*.npy"))[0]
    planes = [a for p in PLANES for a in (f"--{p}", str(series_path(tiny.data_dir, "valid", p, case)))]
    predict(["--models-dir", str(models), *planes, "--out", str(tmp_path / "pred"), "--device", "cpu"])
    evaluate([*report_args(tiny, models, tmp_path), "--heatmap-exams", "0"])
    train_meta(["--data-dir", str(tiny.data_dir), "--models-dir", str(models), "--device", "cpu"])
    assert not marker.exists()
    assert json.loads(ensemble_file(models, "acl").read_text())["format"] == "mrnet-ensemble"


@pytest.mark.slow
def test_a_plane_changed_since_the_ensemble_was_fitted_is_refused(tiny, shared_folder, tmp_path):
    models, _ = shared_folder
    checkpoint = best_checkpoint(models, "acl", "coronal")
    checkpoint.write_bytes(checkpoint.read_bytes() + b"\0")  # any change of the file: a retrained plane
    case = sorted(p.stem for p in (tiny.data_dir / "valid" / "axial").glob("*.npy"))[0]
    planes = [a for p in PLANES for a in (f"--{p}", str(series_path(tiny.data_dir, "valid", p, case)))]
    with pytest.raises(MRNetError, match=r"acl-coronal.*changed since.*train.meta"):
        predict(["--models-dir", str(models), *planes, "--out", str(tmp_path / "pred"), "--device", "cpu"])
    with pytest.raises(MRNetError, match=r"acl-coronal.*changed since"):
        evaluate(report_args(tiny, models, tmp_path))
    assert not (tmp_path / "pred" / "predictions.csv").exists()


@pytest.mark.slow
def test_train_meta_changes_nothing_when_one_task_fails(tiny, tmp_path, monkeypatch):
    from helpers import folder_snapshot

    import mrnet.ensemble.fit as ensemble

    models = tmp_path / "models"
    shutil.copytree(tiny.models_dir, models)
    before = folder_snapshot(models)
    real = ensemble.fit_stacker
    calls = []

    def fails_on_the_last_task(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise MRNetError("--fit-on valid-cv needs at least 2 exams of each class in valid, found [9, 1]")
        return real(*args, **kwargs)

    monkeypatch.setattr(ensemble, "fit_stacker", fails_on_the_last_task)
    with pytest.raises(MRNetError, match=r"meniscus: .*no ensemble, table or config was changed"):
        train_meta(["--data-dir", str(tiny.data_dir), "--models-dir", str(models), "--device", "cpu"])
    assert folder_snapshot(models) == before
    assert pd.read_csv(models / "auc_table.csv")["task"].tolist() == ["abnormal", "acl", "meniscus"]
