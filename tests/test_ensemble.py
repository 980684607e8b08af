"""The stacked ensemble: merged on case id, fitted as the paper does, saved with its version."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import train_config, write_tiny_layout
from sklearn.metrics import roc_auc_score

from mrnet.ensemble import MetaConfig, fit_ensembles, fit_stacker
from mrnet.ensemble_format import ensemble_payload, ensemble_text, load_ensemble
from mrnet.errors import MRNetError
from mrnet.inference import merge_on_case
from mrnet.layout import ENSEMBLE_PREDICTIONS
from mrnet.layout import ensemble_file as ensemble_path
from mrnet.training.trainer import train


def known_probabilities(n: int, seed: int) -> pd.DataFrame:
    """Sagittal carries the signal, coronal a little, axial none."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "case": [f"{i:04d}" for i in range(n)],
            "label": labels,
            "axial": rng.random(n),
            "coronal": np.clip(0.3 * labels + 0.7 * rng.random(n), 0, 1),
            "sagittal": np.clip(0.8 * labels + 0.2 * rng.random(n), 0, 1),
        }
    )


def test_stacker_on_known_probabilities_weights_the_informative_plane():
    train, valid = known_probabilities(200, 0), known_probabilities(100, 1)
    model, probs = fit_stacker(train, valid, "train", folds=5, seed=0)
    coef = dict(zip(["axial", "coronal", "sagittal"], model.coef_[0], strict=True))
    assert coef["sagittal"] > coef["coronal"] > abs(coef["axial"])
    assert roc_auc_score(valid["label"], probs) > 0.95


def test_cross_validated_fit_scores_each_exam_out_of_fold():
    valid = known_probabilities(60, 2)
    final, out_of_fold = fit_stacker(None, valid, "valid-cv", folds=5, seed=0)
    in_sample = final.predict_proba(valid[["axial", "coronal", "sagittal"]].to_numpy())[:, 1]
    assert out_of_fold.shape == (60,) and not np.allclose(out_of_fold, in_sample)


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
    payload = ensemble_payload(model, "acl", "train", dict.fromkeys(("axial", "coronal", "sagittal"), "0" * 64), "")
    path.write_text(ensemble_text({**payload, "sklearn_version": sklearn.__version__}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_ensemble(path)["task"] == "acl"  # same version: silent
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
    assert list(saved.columns) == ["task", "axial", "coronal", "sagittal", "ensemble"]
    assert ensemble_path(out, "acl").is_file()
    per_plane = pd.read_csv(out / "acl-sagittal" / "valid_predictions.csv", dtype={"case": str})
    assert saved.loc[0, "sagittal"] == pytest.approx(roc_auc_score(per_plane["label"], per_plane["prob"]), abs=1e-4)


@pytest.mark.slow
def test_meta_with_no_complete_task_is_a_clear_error(acl_models):
    data, out = acl_models
    with pytest.raises(MRNetError, match="no task has all three plane checkpoints"):
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
    assert load_ensemble(ensemble_path(out, "acl"))["fit_on"] == "valid-cv"
