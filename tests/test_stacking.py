"""The stacker: weighs the informative plane, scores out of fold, is calibrated on held-out input, knows its exams."""

from __future__ import annotations

import numpy as np
import pandas as pd
from helpers import known_probabilities, with_logits
from sklearn.metrics import roc_auc_score

from mrnet import PLANES
from mrnet.ensemble.file import LOG_ODDS, SavedEnsemble, saved_ensemble
from mrnet.ensemble.stacker import ensemble_probabilities, features, fit_stacker, fitted_on_these_exams
from mrnet.stats.calibration import brier_score, expected_calibration_error


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


def test_stacker_fitted_on_held_out_probabilities_is_calibrated():
    """Stacked on memorised training probabilities the output is over-confident; on tuning probabilities it is not."""
    rng = np.random.default_rng(0)

    def held_out(n: int) -> pd.DataFrame:  # what the planes give exams they never saw: informative, noisy
        table = known_probabilities(n, int(rng.integers(1000)))
        table["sagittal"] = np.clip(0.35 + 0.3 * table["label"] + rng.normal(0, 0.15, n), 0.01, 0.99)
        return with_logits(table)

    memorised = known_probabilities(300, 5)
    memorised["sagittal"] = np.where(memorised["label"] == 1, 0.99, 0.01)  # the training exams, learned by heart
    memorised = with_logits(memorised)
    tune, valid = held_out(300), held_out(2000)
    labels = valid["label"].to_numpy()
    _, on_train = fit_stacker(memorised, valid, "train", folds=5, seed=0)
    _, on_tune = fit_stacker(tune, valid, "tune", folds=5, seed=0)
    assert expected_calibration_error(labels, on_tune) < 0.05 < expected_calibration_error(labels, on_train)
    assert brier_score(labels, on_tune) < brier_score(labels, on_train)


def saved(fit_on: str, **record) -> SavedEnsemble:
    """A saved stacker with what it was fitted on; its numbers play no part here."""
    hashes = dict.fromkeys(("axial", "coronal", "sagittal"), "0" * 64)
    planes, coef = ("axial", "coronal", "sagittal"), (1.0, 1.0, 1.0)
    return SavedEnsemble("acl", planes, "per-plane log-odds", fit_on, "1.0", (0, 1), coef, 0.0, hashes, **record)


def test_a_saved_stacker_knows_which_exams_it_was_fitted_on(tmp_path):
    """Its figures on an exam are held-out, out-of-fold or in-sample, and evaluate labels them so."""
    data = str((tmp_path / "data").resolve())
    cases = ["0001", "0002", "0003"]
    on_train = saved("tune", fit_split="train", fit_cases=tuple(cases[:2]), data_dir=data, folds=5, seed=0)
    assert fitted_on_these_exams(on_train, data, "valid", cases) == "held-out"
    assert fitted_on_these_exams(on_train, data, "train", cases) == "in-sample"
    assert fitted_on_these_exams(on_train, tmp_path / "other", "train", cases) == "held-out"
    cross_validated = saved("valid-cv", fit_split="valid", fit_cases=tuple(cases), data_dir=data, folds=5, seed=0)
    assert fitted_on_these_exams(cross_validated, data, "valid", cases) == "out-of-fold"
    assert fitted_on_these_exams(cross_validated, data, "valid", cases[:2]) == "in-sample"
    older = saved("valid-cv")  # saved before stackers recorded their exams: judged by the split's name
    assert fitted_on_these_exams(older, data, "valid", cases) == "in-sample"
    assert fitted_on_these_exams(older, data, "test", cases) == "held-out"


def confident_tables(n: int, seed: int) -> pd.DataFrame:
    """Sagittal separates perfectly with confident logits: negatives 14.5 to 20, positives 21 to 30 (p > 1 - 1e-6)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    logits = {
        "axial": rng.normal(0, 1, n),
        "coronal": rng.normal(0, 1, n) + 0.3 * labels,
        "sagittal": np.where(labels == 1, rng.uniform(21, 30, n), rng.uniform(14.5, 20, n)),
    }
    table = pd.DataFrame({"case": [f"{i:04d}" for i in range(n)], "label": labels})
    for plane, values in logits.items():
        table[plane], table[f"{plane}_logit"] = 1 / (1 + np.exp(-values)), values
    return table


def test_a_plane_separating_with_logits_above_14_keeps_its_weight():
    """Clipped at 1e-6, every such logit was 13.8 and the plane got no weight; on the logits it leads the ensemble."""
    tune, valid = confident_tables(200, 0), confident_tables(200, 1)
    assert (tune["sagittal_logit"] > 14).all()
    assert np.ptp(features(tune, LOG_ODDS)[:, 2]) == 0  # what the clipped log-odds made of this plane: one number
    model, probs = fit_stacker(tune, valid, "tune", folds=5, seed=0)
    coef = dict(zip(["axial", "coronal", "sagittal"], model.coef_[0], strict=True))
    assert coef["sagittal"] > 0.5 and coef["sagittal"] > 5 * max(abs(coef["axial"]), abs(coef["coronal"]))
    labels = valid["label"].to_numpy()
    assert roc_auc_score(labels, valid["sagittal"]) == 1.0
    assert roc_auc_score(labels, probs) == roc_auc_score(labels, valid["sagittal"])
    saved_file = saved_ensemble(model, "acl", "tune", dict.fromkeys(PLANES, "0" * 64), "1.0")
    assert roc_auc_score(labels, ensemble_probabilities(saved_file, valid)) == 1.0  # as predict and evaluate apply it
