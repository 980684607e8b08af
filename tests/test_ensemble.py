"""The stacked ensemble: merged on case id, fitted on the tuning split or as the paper does, saved with its version."""

from __future__ import annotations

import json
import shutil
import warnings
from unittest.mock import ANY

import numpy as np
import pandas as pd
import pytest
from helpers import known_probabilities, train_config, write_tiny_layout
from sklearn.metrics import roc_auc_score

from mrnet import PLANES
from mrnet.data.splits import read_tune_cases
from mrnet.device import Scoring
from mrnet.ensemble.file import Threshold, ensemble_text, load_ensemble, saved_ensemble
from mrnet.ensemble.fit import MetaConfig, fit_ensembles
from mrnet.ensemble.stacker import fit_stacker
from mrnet.errors import MRNetError
from mrnet.inference import merge_on_case, plane_probabilities
from mrnet.layout import ENSEMBLE_PREDICTIONS
from mrnet.layout import ensemble_file as ensemble_path
from mrnet.stats.thresholds import fold_count
from mrnet.training.trainer import train


def test_merge_is_by_case_not_position():
    a = pd.DataFrame({"case": ["0001", "0002", "0003"], "label": [0, 1, 0], "axial": [0.1, 0.2, 0.3]})
    b = pd.DataFrame({"case": ["0003", "0001", "0002"], "label": [0, 0, 1], "coronal": [0.9, 0.7, 0.8]})
    merged = merge_on_case([a, b])
    assert merged.set_index("case").loc["0003", "coronal"] == 0.9
    assert merged.set_index("case").loc["0001", "coronal"] == 0.7


def test_merge_refuses_mismatched_cases():
    a = pd.DataFrame({"case": ["0001", "0002"], "label": [0, 1], "axial": [0.1, 0.2]})
    b = pd.DataFrame({"case": ["0001", "0009"], "label": [0, 1], "coronal": [0.1, 0.2]})
    with pytest.raises(MRNetError, match="different cases"):
        merge_on_case([a, b])


def test_version_mismatch_warns(tmp_path):
    model, _ = fit_stacker(known_probabilities(50, 0), known_probabilities(20, 1), "train", 5, 0)
    import sklearn

    path = tmp_path / "ensemble-acl.json"
    hashes = dict.fromkeys(("axial", "coronal", "sagittal"), "0" * 64)
    payload = saved_ensemble(model, "acl", "train", hashes, "").payload()
    path.write_text(ensemble_text(saved_ensemble(model, "acl", "train", hashes, sklearn.__version__)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_ensemble(path).task == "acl"  # same version: silent
    path.write_text(json.dumps({**payload, "sklearn_version": "0.24.0"}))
    with pytest.warns(UserWarning, match="saved with scikit-learn 0.24.0"):
        load_ensemble(path)


def test_not_an_ensemble_file(tmp_path):
    (tmp_path / "x.joblib").write_text("nope")
    with pytest.raises(MRNetError, match=r"x.joblib"):
        load_ensemble(tmp_path / "x.joblib")


@pytest.fixture(scope="module")
def acl_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    data = write_tiny_layout(root / "data")
    out = root / "models"
    for plane in ("axial", "coronal", "sagittal"):
        train(train_config(data, out, plane=plane, epochs=2))
    return data, out


@pytest.mark.slow
def test_meta_runs_tasks_with_all_planes_and_names_missing_ones(acl_models, capsys):
    data, out = acl_models
    table = fit_ensembles(MetaConfig(data_dir=str(data), models_dir=str(out), device="cpu"))
    printed = capsys.readouterr().out
    assert "abnormal: no checkpoint" in printed and "meniscus-axial" in printed
    assert table["task"].tolist() == ["acl"]
    saved = pd.read_csv(out / "auc_table.csv")
    assert list(saved.columns) == [
        "task",
        "split",
        "selected_on",
        "axial",
        "coronal",
        "sagittal",
        "ensemble",
        "ensemble_fit_on",
        "ensemble_scored",
        "best_plane",
        "ensemble_minus_best",
        "p_delong",
    ]
    row = saved.iloc[0]
    assert (row["split"], row["ensemble_fit_on"], row["ensemble_scored"]) == ("valid", "tune", "held-out")
    assert row["selected_on"] == "tune"  # the tuning split chose the epochs; valid chose nothing
    best = max(PLANES, key=lambda p: row[p])
    assert row["best_plane"] == best and row["ensemble_minus_best"] == pytest.approx(
        row["ensemble"] - row[best], abs=2e-4
    )
    assert 0 <= row["p_delong"] <= 1
    assert ensemble_path(out, "acl").is_file()


@pytest.mark.slow
def test_tuning_split_probabilities_are_those_training_recorded(acl_models):
    data, out = acl_models
    tune = read_tune_cases(out)
    recorded = pd.read_csv(out / "acl-sagittal" / "tune_predictions.csv", dtype={"case": str})
    scoring = Scoring.resolve("cpu", "auto", None)
    probs = plane_probabilities(data, out, ["acl"], ["train"], scoring, cases={"train": tune})[("acl", "train")]
    assert probs["case"].tolist() == recorded["case"].tolist() == tune
    assert np.allclose(probs["sagittal"], recorded["prob"], atol=1e-6)


@pytest.mark.slow
def test_default_fit_is_on_the_tuning_split_with_thresholds_chosen_there(acl_models):
    data, out = acl_models
    fit_ensembles(MetaConfig(data_dir=str(data), models_dir=str(out), tasks=["acl"], device="cpu"))
    saved = load_ensemble(ensemble_path(out, "acl"))
    assert saved.fit_on == "tune" and saved.fit_split == "train"
    assert list(saved.fit_cases) == read_tune_cases(out)
    thresholds = pd.read_csv(out / "thresholds.csv").set_index("model")
    assert thresholds.index.tolist() == [*PLANES, "ensemble"]
    assert set(thresholds.loc[list(PLANES), "chosen_on"]) == {"tune"}
    assert set(thresholds["selected_on"]) == {"tune"}
    # the ensemble's on its out-of-fold tuning probabilities; with under 2 exams of a class there, on valid
    tune_labels = pd.read_csv(data / "train-acl.csv", header=None, names=["case", "label"], dtype={"case": str})
    labels = tune_labels.set_index("case").loc[read_tune_cases(out), "label"].to_numpy()
    if fold_count(labels, 5):
        assert tuple(thresholds.loc["ensemble", ["chosen_on", "scored"]]) == (
            "tune",
            "out-of-fold; tune chose the epochs",
        )
    else:
        assert tuple(thresholds.loc["ensemble", ["chosen_on", "scored"]]) == ("valid", "held-out")
    assert json.loads((out / "meta_config.json").read_text())["fit_on"] == "tune"


@pytest.mark.slow
def test_paper_fit_uses_the_trained_on_exams_and_still_thresholds_on_tune(acl_models):
    data, out = acl_models
    table = fit_ensembles(MetaConfig(data_dir=str(data), models_dir=str(out), tasks=["acl"], fit_on="train"))
    saved = load_ensemble(ensemble_path(out, "acl"))
    tune = read_tune_cases(out)
    assert saved.fit_on == "train" and len(saved.fit_cases) == 12 - len(tune)
    assert not set(saved.fit_cases) & set(tune)
    # held-out from the stacker, but the tuning split chose the planes' epochs (--select-on tune)
    assert saved.thresholds["ensemble"] == Threshold(ANY, chosen_on="tune", scored="chose the epochs")
    on_disk = json.loads(ensemble_path(out, "acl").read_text())["thresholds"]["ensemble"]
    assert on_disk == {"threshold": ANY, "chosen_on": "tune", "scored": "chose the epochs"}
    assert table.loc[0, "ensemble_fit_on"] == "train"


@pytest.mark.slow
def test_fit_on_tune_without_a_tuning_split_is_refused(acl_models, tmp_path):
    data, out = acl_models
    copy = tmp_path / "models"
    shutil.copytree(out, copy)
    (copy / "tune_cases.csv").unlink()
    with pytest.raises(MRNetError, match=r"--fit-on tune: .*tune_cases.csv does not exist"):
        fit_ensembles(MetaConfig(data_dir=str(data), models_dir=str(copy), fit_on="tune", device="cpu"))


@pytest.mark.slow
def test_models_that_trained_on_the_tuning_exams_are_refused(acl_models, tmp_path):
    data, out = acl_models
    copy = tmp_path / "models"
    shutil.copytree(out, copy)
    (copy / "tune_cases.csv").write_text("case,abnormal,acl,meniscus\n0000,0,0,0\n0003,1,1,1\n")
    with pytest.raises(MRNetError, match=r"not trained with the tuning split.*acl-axial"):
        fit_ensembles(MetaConfig(data_dir=str(data), models_dir=str(copy), device="cpu"))


@pytest.mark.slow
def test_meta_with_no_complete_task_is_a_clear_error(acl_models):
    data, out = acl_models
    with pytest.raises(MRNetError, match="no task has a checkpoint for each of axial, coronal, sagittal"):
        fit_ensembles(MetaConfig(data_dir=str(data), models_dir=str(out), tasks=["meniscus"], device="cpu"))


@pytest.mark.slow
def test_meta_valid_cv(acl_models):
    data, out = acl_models
    table = fit_ensembles(
        MetaConfig(data_dir=str(data), models_dir=str(out), tasks=["acl"], fit_on="valid-cv", folds=3, device="cpu")
    )
    # the reported AUC is that of the out-of-fold probabilities written next to it
    out_of_fold = pd.read_csv(out / ENSEMBLE_PREDICTIONS, dtype={"case": str})
    assert out_of_fold["case"].tolist() == [f"{i:04d}" for i in range(12, 20)]
    assert table.loc[0, "ensemble"] == pytest.approx(roc_auc_score(out_of_fold["label"], out_of_fold["ensemble"]))
    assert load_ensemble(ensemble_path(out, "acl")).fit_on == "valid-cv"
