"""Evaluation metrics on hand examples, and the evaluate command end to end on tiny trained models.

Every figure must say where it comes from: thresholds never chosen on training probabilities,
out-of-fold figures for a stacker cross-validated on the evaluated split, and another dataset
recognised as one that chose nothing.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import run_script
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from mrnet import PLANES, TASKS
from mrnet.ensemble.file import load_ensemble
from mrnet.ensemble.fit import MetaConfig, fit_ensembles
from mrnet.errors import MRNetError
from mrnet.evaluation.evaluator import EvalConfig, run_evaluate
from mrnet.evaluation.showcase import pick
from mrnet.layout import ensemble_file
from mrnet.stats.auc import auc_rows, bootstrap_auc, bootstrap_indices, competition_score
from mrnet.stats.thresholds import cross_validated_operating_point, operating_point, youden_threshold
from mrnet.synthetic import make_dataset
from mrnet.viewer import browser

ROOT = Path(__file__).resolve().parents[1]

needs_chromium = pytest.mark.skipif(
    browser.find_chromium() is None, reason="chromium is not installed (Debian: apt-get install chromium)"
)


# ----------------------------------------------------------------------------- metrics by hand


def test_rank_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=(20, 30))
    scores = np.round(rng.random((20, 30)), 1)  # rounding creates ties
    expected = [roc_auc_score(y, s) for y, s in zip(labels, scores, strict=True)]
    assert np.allclose(auc_rows(labels, scores), expected)


def test_rank_auc_is_nan_for_one_class_rows():
    assert math.isnan(auc_rows(np.ones((1, 4)), np.arange(4.0))[0])


def test_bootstrap_interval_brackets_point_estimate():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    scores = labels * 0.8 + rng.normal(0, 0.6, size=80)
    interval = bootstrap_auc(labels, scores, bootstrap_indices(80, 1000, np.random.default_rng(0)))
    assert interval.low < interval.auc < interval.high
    assert interval.auc == pytest.approx(roc_auc_score(labels, scores))
    assert 0 < interval.high - interval.low < 0.5
    assert interval.used == 1000


def test_bootstrap_is_seeded_and_skips_one_class_resamples():
    labels = np.array([1] + [0] * 9)  # one positive: many resamples miss it
    scores = np.linspace(0, 1, 10)[::-1]
    first = bootstrap_auc(labels, scores, bootstrap_indices(10, 500, np.random.default_rng(3)))
    again = bootstrap_auc(labels, scores, bootstrap_indices(10, 500, np.random.default_rng(3)))
    assert first == again
    assert 0 < first.used < 500  # the resamples without the positive were skipped, not scored 0.5


def test_youden_threshold_on_hand_example():
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.55, 0.6, 0.7, 0.9])
    # >= 0.6: sens 3/4, spec 4/4 -> J 0.75; >= 0.4: sens 4/4, spec 3/4 -> J 0.75; tie -> higher threshold
    assert youden_threshold(labels, scores) == pytest.approx(0.6)
    assert youden_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(0.8)
    assert math.isnan(youden_threshold(np.zeros(4), np.arange(4.0)))


def test_operating_point_on_hand_example():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.6, 0.4, 0.7, 0.2, 0.1, 0.5, 0.5])
    point = operating_point(labels, scores, 0.5)  # calls: 1 1 0 1 0 0 1 1
    assert (point.true_positives, point.false_negatives, point.true_negatives, point.false_positives) == (3, 1, 2, 2)
    assert point.sensitivity == pytest.approx(3 / 4)
    assert point.specificity == pytest.approx(2 / 4)
    assert point.accuracy == pytest.approx(5 / 8)


def test_out_of_fold_operating_point_calls_each_exam_with_a_threshold_chosen_without_it():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    point = cross_validated_operating_point(labels, scores, folds=2, seed=0)
    called = np.zeros(8, dtype=bool)
    for fit, held in StratifiedKFold(n_splits=2, shuffle=True, random_state=0).split(scores.reshape(-1, 1), labels):
        called[held] = scores[held] >= youden_threshold(labels[fit], scores[fit])
    assert point.true_positives == int((called & (labels == 1)).sum())
    assert point.false_positives == int((called & (labels == 0)).sum())
    assert math.isnan(point.threshold)
    # In-sample the separable scores look perfect; out of fold a positive below its fold's threshold is missed.
    in_sample = operating_point(labels, scores, youden_threshold(labels, scores))
    assert in_sample.sensitivity == 1.0 and point.sensitivity < 1.0 and point.specificity == 1.0
    assert math.isnan(cross_validated_operating_point(np.array([1, 0, 0]), np.arange(3.0), 5, 0).sensitivity)


def test_competition_score_is_mean_column_auc():
    labels = {"abnormal": np.array([0, 1, 1, 1]), "acl": np.array([0, 0, 1, 1]), "meniscus": np.array([1, 0, 1, 0])}
    probs = np.array([[0.2, 0.1, 0.9], [0.8, 0.2, 0.1], [0.7, 0.9, 0.8], [0.9, 0.6, 0.3]])
    expected = np.mean([roc_auc_score(labels[t], probs[:, i]) for i, t in enumerate(TASKS)])
    assert competition_score(labels, probs) == pytest.approx(expected)


# ----------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    cfg = EvalConfig(
        data_dir=str(tiny.data_dir),
        models_dir=str(tiny.models_dir),
        out=str(out),
        bootstrap=200,
        device="cpu",
        heatmap_exams=1,
        viewer_exams=1,
    )
    return out, run_evaluate(cfg).metrics


def read_valid_labels(data_dir: Path, task: str) -> pd.Series:
    table = pd.read_csv(data_dir / f"valid-{task}.csv", header=None, names=["case", "label"], dtype={"case": str})
    return table.set_index("case")["label"]


@pytest.mark.slow
def test_report_aucs_equal_auc_table_from_training(tiny, report):
    _, metrics = report
    auc_table = pd.read_csv(tiny.models_dir / "auc_table.csv").set_index("task")
    for task in TASKS:
        for model in (*PLANES, "ensemble"):
            row = metrics[(metrics["task"] == task) & (metrics["model"] == model)].iloc[0]
            assert row["auc"] == pytest.approx(auc_table.loc[task, model], abs=5e-5)  # the table keeps 4 decimals


@pytest.mark.slow
def test_competition_file_format_and_score(tiny, report):
    out, metrics = report
    competition = pd.read_csv(out / "predictions.csv", header=None)
    with_ids = pd.read_csv(out / "predictions_with_ids.csv", dtype={"case": str})
    assert competition.shape == (10, 3)
    assert competition.map(lambda v: isinstance(v, float)).all().all()  # no header row was read as data
    assert list(with_ids["case"]) == sorted(with_ids["case"])
    assert np.allclose(competition.to_numpy(), with_ids[list(TASKS)].to_numpy(), atol=1e-6)

    labels = {t: read_valid_labels(tiny.data_dir, t).loc[with_ids["case"]].to_numpy() for t in TASKS}
    scored = competition_score(labels, competition.to_numpy())
    reported = metrics[(metrics["task"] == "mean") & (metrics["model"] == "ensemble")]["auc"].iloc[0]
    assert scored == pytest.approx(reported, abs=1e-5)


@pytest.mark.slow
def test_report_files_and_links(report):
    out, metrics = report
    text = (out / "report.md").read_text()
    for task in TASKS:
        assert (out / f"roc-{task}.png").stat().st_size > 0
        assert f"(roc-{task}.png)" in text
        assert (out / f"calibration-{task}.png").stat().st_size > 0
        assert f"(calibration-{task}.png)" in text
    heatmaps = sorted((out / "heatmaps").glob("*.png"))
    assert heatmaps and all(f"(heatmaps/{p.name})" in text for p in heatmaps)
    assert (out / "evaluate_config.json").is_file()
    saved = pd.read_csv(out / "metrics.csv")
    assert set(saved["model"]) == {*PLANES, "ensemble"}
    assert len(saved) == len(metrics) == 3 * 4 + 4
    per_model = saved[saved["task"] != "mean"]
    assert per_model[["sensitivity_youden", "specificity_youden", "accuracy_youden"]].notna().all().all()
    assert per_model[["brier", "ece"]].notna().all().all()


def test_report_says_how_each_number_was_made(report, tiny):
    out, metrics = report
    rows = metrics[metrics["task"] != "mean"]
    assert set(rows.loc[rows["model"] != "ensemble", "threshold_chosen_on"]) == {"tune"}  # a tuning split
    for task, chosen in rows.loc[rows["model"] == "ensemble", ["task", "threshold_chosen_on"]].to_numpy():
        # the ensemble's on tune, out of fold; on valid where tune holds under 2 exams of a class: valid is then
        # called with thresholds chosen on the other folds
        saved = load_ensemble(ensemble_file(tiny.models_dir, task))
        assert chosen == ("tune" if saved.thresholds["ensemble"].chosen_on == "tune" else "valid, out-of-fold")
    assert set(rows["probabilities"]) == {"held-out"}  # valid chose nothing: epochs, stacker, thresholds on tune
    text = (out / "report.md").read_text()
    assert "## How these numbers were made" in text
    assert "epochs were chosen on the tune split" in text and "this valid split chose nothing" in text
    assert "ensemble was fitted on tune" in text and "never on training probabilities" in text


def test_valid_cv_ensembles_report_out_of_fold_figures_and_thresholds(tiny, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny.models_dir, models)
    meta = MetaConfig(data_dir=str(tiny.data_dir), models_dir=str(models), fit_on="valid-cv", folds=3, device="cpu")
    table = fit_ensembles(meta).set_index("task")
    cfg = EvalConfig(
        data_dir=str(tiny.data_dir),
        models_dir=str(models),
        out=str(tmp_path / "r"),
        bootstrap=0,
        device="cpu",
        heatmap_exams=0,
    )
    result = run_evaluate(cfg)
    rows = result.metrics[result.metrics["task"] != "mean"].set_index(["task", "model"])
    for task in TASKS:
        assert rows.loc[(task, "ensemble"), "auc"] == pytest.approx(table.loc[task, "ensemble"], abs=5e-5)
        assert rows.loc[(task, "ensemble"), "probabilities"] == "out-of-fold"
        assert rows.loc[(task, "ensemble"), "threshold_chosen_on"] == "valid, out-of-fold"
    assert "figures here are out-of-fold" in (tmp_path / "r" / "report.md").read_text()


def test_another_dataset_chose_nothing_and_gets_the_saved_thresholds(tiny, tmp_path):
    other = tmp_path / "untouched"
    make_dataset(other, n_train=2, n_valid=12, size=64, seed=7, slices=(2, 4))
    cfg = EvalConfig(
        data_dir=str(other),
        models_dir=str(tiny.models_dir),
        out=str(tmp_path / "r"),
        bootstrap=0,
        device="cpu",
        heatmap_exams=0,
        tasks=["acl"],
    )
    rows = run_evaluate(cfg).metrics
    rows = rows[rows["task"] == "acl"]
    saved = load_ensemble(ensemble_file(tiny.models_dir, "acl")).thresholds.items()
    assert set(rows["probabilities"]) == {"held-out"}
    # As saved, named with the dataset whose split chose them: the other dataset chose none.
    chosen = {m: f"{t.chosen_on} of {tiny.data_dir.name}" for m, t in saved}
    assert rows.set_index("model")["threshold_chosen_on"].to_dict() == chosen


def test_missing_models_is_a_clear_error(tiny_data, tmp_path):
    cfg = EvalConfig(data_dir=str(tiny_data), models_dir=str(tmp_path / "nothing"), device="cpu")
    with pytest.raises(MRNetError, match="models folder"):
        run_evaluate(cfg)


@pytest.mark.slow
def test_evaluate_script_runs(tiny, tmp_path):
    result = run_script(
        "evaluate.py",
        "--data-dir",
        str(tiny.data_dir),
        "--models-dir",
        str(tiny.models_dir),
        "--out",
        str(tmp_path / "r"),
        "--bootstrap",
        "50",
        "--device",
        "cpu",
        "--tasks",
        "acl",
        "--heatmap-exams",
        "0",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "competition" in result.stdout and "acl" in result.stdout
    assert not (tmp_path / "r" / "predictions.csv").exists()  # one task: no competition file
    assert (tmp_path / "r" / "report.md").is_file()


def test_exams_to_show_first_on_a_hand_example():
    table = pd.DataFrame(
        {
            "case": ["a", "b", "c", "d", "e", "f"],
            "label": [1, 1, 0, 0, 1, 0],
            "ensemble": [0.9, 0.6, 0.7, 0.55, 0.2, 0.1],
        }
    )
    # at 0.5: true positives a, b; false positives c, d (worst first); false negative e
    assert pick(table, 0.5, 1) == [
        ("true positive", "a", 0.9),
        ("false positive", "c", 0.7),
        ("false negative", "e", 0.2),
    ]
    assert [case for _, case, _ in pick(table, 0.5, 5)] == ["a", "b", "c", "d", "e"]


def test_report_html_is_valid_and_links_every_image_and_viewer_page(report):
    import html5lib

    out, _ = report
    text = (out / "report.html").read_text()
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)
    for task in TASKS:
        assert f'src="roc-{task}.png"' in text
    assert all(f'src="heatmaps/{p.name}"' in text for p in (out / "heatmaps").glob("*.png"))
    pages = sorted(p.name for p in (out / "viewer").glob("*.html") if p.name != "index.html")
    assert pages and all(f'href="viewer/{name}"' in text for name in pages)
    assert 'href="viewer/index.html"' in text
    markdown = (out / "report.md").read_text()
    assert "## Exams to look at first" in markdown and f"(viewer/{pages[0]})" in markdown
    shown = (out / "viewer" / pages[0]).read_text()
    assert "shown in the evaluation report as:" in shown and "Youden" in shown


@pytest.mark.slow
@needs_chromium
def test_report_html_in_chromium_shows_every_roc_image(report):
    out, _ = report
    dom = browser.dump_dom(browser.page_url(out / "report.html"))
    images = re.findall(r"<img [^>]*>", dom)
    assert len(images) >= len(TASKS)
    assert all('data-loaded="1"' in tag for tag in images), images
    body = re.search(r"<body[^>]*>", dom).group(0)  # attribute order depends on when the images finished loading
    assert f'data-images="{len(images)}"' in body and f'data-images-loaded="{len(images)}"' in body, body
    rocs = [tag for tag in images if 'src="roc-' in tag]
    assert len(rocs) == len(TASKS)
    assert 'class="missing"' not in dom


@pytest.mark.slow
@needs_chromium
def test_report_viewer_index_sorts_in_chromium(report):
    out, _ = report
    text = (out / "viewer" / "index.html").read_text()
    rows = re.findall(r'<tr data-case="([^"]+)" data-abnormal="[^"]*" data-acl="([^"]+)"', text)
    lowest = min(rows, key=lambda row: float(row[1]))[0]
    dom = browser.dump_dom(browser.page_url(out / "viewer" / "index.html", "sort=acl&order=asc"))
    assert 'data-ready="1"' in dom and f'data-first="{lowest}"' in dom
