"""train_meta's outputs say what chose what: thresholds never on the stacker's own fit, valid never called
held-out where it chose an epoch, the folds actually used recorded, leftovers of a killed write removed."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import known_probabilities

from mrnet import PLANES
from mrnet.cli.common import print_auc_table
from mrnet.ensemble.fit import TABLE_COLUMNS, MetaConfig, fit_task

HASHES = dict.fromkeys(PLANES, "0" * 64)
ON_TUNE, ON_VALID = dict.fromkeys(PLANES, "tune"), dict.fromkeys(PLANES, "valid")


def with_positives(table: pd.DataFrame, positives: int) -> pd.DataFrame:
    """The table with only its first `positives` positive exams kept."""
    keep = (table["label"] == 0) | (table["label"].cumsum() <= positives)
    return table[keep].reset_index(drop=True)


def fitted(tmp_path, parts, fit_on, selected, folds=5):
    cfg = MetaConfig(data_dir=str(tmp_path), models_dir=str(tmp_path), folds=folds)
    return fit_task(cfg, "acl", parts, fit_on, HASHES, selected)


def console(table: pd.DataFrame) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_auc_table(table)
    return printed.getvalue()


def test_a_tuning_split_with_one_positive_never_thresholds_the_ensemble_in_sample(tmp_path):
    """No fold of 1 positive keeps both classes: the ensemble's threshold comes from valid (held-out), said so."""
    parts = {"tune": with_positives(known_probabilities(40, 0), 1), "valid": known_probabilities(40, 1)}
    result = fitted(tmp_path, parts, "tune", ON_VALID)
    rows = {row["model"]: row for row in result.thresholds}
    assert (rows["ensemble"]["chosen_on"], rows["ensemble"]["scored"]) == ("valid", "chose the epochs")
    assert all(rows[p]["chosen_on"] == "tune" and rows[p]["scored"] == "held-out" for p in PLANES)
    assert not any("in-sample" in row["scored"] for row in result.thresholds)
    assert any("too few to score the stacker out of fold" in note for note in result.notes)
    # with 2 or more of each class the tuning exams are scored out of fold and the threshold stays on tune
    parts["tune"] = with_positives(known_probabilities(40, 0), 2)
    rows = {row["model"]: row for row in fitted(tmp_path, parts, "tune", ON_VALID).thresholds}
    assert (rows["ensemble"]["chosen_on"], rows["ensemble"]["scored"]) == ("tune", "out-of-fold")


def test_select_on_valid_never_calls_a_valid_figure_held_out(tmp_path):
    """valid chose every plane's epoch: the AUC table, its console text and the thresholds say so."""
    parts = {"train": known_probabilities(60, 0), "valid": known_probabilities(40, 1)}  # no tuning split
    result = fitted(tmp_path, parts, "train", ON_VALID)
    assert result.auc["selected_on"] == "valid" and result.auc["ensemble_scored"] == "chose the epochs"
    table = pd.DataFrame([result.auc], columns=TABLE_COLUMNS)
    assert "held-out" not in table.to_csv(index=False)
    text = console(table)
    assert "held-out" not in text
    assert "epochs chosen on: valid" in text and "optimistic" in text
    thresholds = pd.DataFrame(result.thresholds)
    assert set(thresholds["chosen_on"]) == {"valid"} and set(thresholds["selected_on"]) == {"valid"}
    assert "held-out" not in thresholds.to_csv(index=False)
    # valid-cv on a split that also chose the epochs: out of fold for the stacker, still not held-out
    result = fitted(tmp_path, {"valid": known_probabilities(40, 1)}, "valid-cv", ON_VALID)
    assert result.auc["ensemble_scored"] == "out-of-fold; valid chose the epochs"


def test_the_tuning_split_that_chose_the_epochs_is_named_where_the_stacker_learns_from_it(tmp_path):
    """The default (and --task all): tune chose the views' epochs, then the stacker and thresholds learn on tune."""
    parts = {"tune": known_probabilities(40, 0), "valid": known_probabilities(40, 1)}
    result = fitted(tmp_path, parts, "tune", ON_TUNE)
    assert (result.auc["selected_on"], result.auc["ensemble_scored"]) == ("tune", "held-out")  # valid chose nothing
    rows = {row["model"]: row for row in result.thresholds}
    assert rows["ensemble"]["scored"] == "out-of-fold; tune chose the epochs"
    assert all(rows[p]["scored"] == "chose the epoch" and rows[p]["selected_on"] == "tune" for p in PLANES)
    mixed = fitted(tmp_path, parts, "tune", {"axial": "tune", "coronal": "valid", "sagittal": "tune"})
    assert mixed.auc["selected_on"] == "axial tune, coronal valid, sagittal tune"
    assert mixed.auc["ensemble_scored"] == "chose the epochs"


def test_folds_beyond_the_smaller_class_are_recorded_as_used_and_said(tmp_path):
    valid = with_positives(known_probabilities(40, 1), 3)
    result = fitted(tmp_path, {"valid": valid}, "valid-cv", ON_TUNE, folds=100)
    path, write = next(iter(result.writes.items()))  # the ensemble JSON comes first
    write(tmp_path / "written.json")
    payload = json.loads((tmp_path / "written.json").read_text())
    assert path.name == "ensemble-acl.json" and payload["folds"] == 100 and payload["folds_used"] == {"valid": 3}
    any_note = " ".join(result.notes)
    assert "--folds 100: 3 folds used on the valid exams" in any_note


def test_the_auc_table_line_says_n_a_never_plus_nan():
    row = {"task": "acl", "split": "valid", "selected_on": "tune", **dict.fromkeys(PLANES, 1.0), "ensemble": 1.0}
    row.update(ensemble_fit_on="tune", ensemble_scored="held-out", best_plane="axial")
    nan_row = {**row, "ensemble_minus_best": float("nan"), "p_delong": float("nan")}
    no_test = {**row, "ensemble_minus_best": 0.25, "p_delong": float("nan")}
    text = console(pd.DataFrame([nan_row, no_test], columns=TABLE_COLUMNS))
    assert "nan" not in text and "n/a" in text
    assert "beats" not in text  # no verdict without a test


@pytest.mark.slow
def test_train_meta_files_and_console_under_select_on_valid(tiny, tmp_path, monkeypatch, capsys):
    """Each output of a --select-on valid run: none calls a valid figure held-out; a killed write's leftover goes."""
    import mrnet.ensemble.fit as fit
    from mrnet.cli.train_meta import main as train_meta

    models = tmp_path / "models"
    shutil.copytree(tiny.models_dir, models)
    leftover = models / ".auc_table.csv.x1y2.tmp"  # what a train_meta killed mid-write leaves
    leftover.write_text("half")
    unrelated = models / ".notes.txt.x1y2.tmp"  # not one of train_meta's files: left alone
    unrelated.write_text("other")
    real = fit.check_plane_models

    def chosen_on_valid(cfg, tasks, tune_cases, fit_on):
        real(cfg, tasks, tune_cases, fit_on)
        return {task: dict(ON_VALID) for task in tasks}

    monkeypatch.setattr(fit, "check_plane_models", chosen_on_valid)
    train_meta(["--data-dir", str(tiny.data_dir), "--models-dir", str(models), "--device", "cpu"])
    out = capsys.readouterr().out
    header = out[out.index("AUC on the valid split") :].splitlines()[0]
    assert "held-out" not in header and "epochs chosen on: valid" in header
    auc_table = pd.read_csv(models / "auc_table.csv")
    assert set(auc_table["selected_on"]) == {"valid"}
    assert not auc_table["ensemble_scored"].str.contains("held-out").any()
    thresholds = pd.read_csv(models / "thresholds.csv")
    assert set(thresholds["selected_on"]) == {"valid"}
    on_valid = thresholds[thresholds["chosen_on"] == "valid"]
    assert not on_valid["scored"].str.contains("held-out").any()
    assert not leftover.exists() and unrelated.exists()
    assert not np.isnan(auc_table["ensemble"]).any()
