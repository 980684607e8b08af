"""Comparing two runs: the same exams for both, DeLong's difference and p-value, a paired bootstrap beside it."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import run_script

from mrnet import PLANES, TASKS
from mrnet.cli import COMMANDS
from mrnet.ensemble.fit import MetaConfig, fit_ensembles
from mrnet.errors import MRNetError
from mrnet.evaluation.compare import CompareConfig, compare_runs, paired_bootstrap, paired_tables
from mrnet.evaluation.scores import TaskScores
from mrnet.stats.auc import bootstrap_indices


def scores(cases: list[str], labels: list[int], sagittal: list[float]) -> TaskScores:
    table = pd.DataFrame({"case": cases, "label": labels, **{p: sagittal for p in PLANES}, "ensemble": sagittal})
    return TaskScores("acl", table, {"fit_on": "tune"}, "held-out", dict.fromkeys(PLANES, "tune"), True)


def test_runs_are_paired_on_case_and_must_agree_on_labels():
    a = scores(["0001", "0002", "0003"], [0, 1, 1], [0.1, 0.8, 0.6])
    b = scores(["0003", "0001", "0002"], [1, 0, 1], [0.7, 0.2, 0.9])
    merged = paired_tables(a, b).set_index("case")
    assert merged.loc["0003", "sagittal_a"] == 0.6 and merged.loc["0003", "sagittal_b"] == 0.7
    with pytest.raises(MRNetError, match="labels differ"):
        paired_tables(a, scores(["0001", "0002", "0003"], [1, 1, 1], [0.1, 0.8, 0.6]))
    with pytest.raises(MRNetError, match="different exams"):
        paired_tables(a, scores(["0001", "0002"], [0, 1], [0.1, 0.8]))


def test_identical_scores_differ_by_nothing_in_the_bootstrap():
    labels = np.array([0, 1, 0, 1, 1, 0])
    scores_a = np.array([0.2, 0.7, 0.4, 0.6, 0.3, 0.1])
    boot = paired_bootstrap(labels, scores_a, scores_a, bootstrap_indices(6, 200, np.random.default_rng(0)))
    assert (boot.difference, boot.standard_error, boot.p_value) == (0.0, 0.0, 1.0)


@pytest.mark.slow
def test_a_run_against_itself_differs_by_nothing(tiny, tmp_path):
    cfg = CompareConfig(
        run_a=str(tiny.models_dir),
        run_b=str(tiny.models_dir),
        data_dir=str(tiny.data_dir),
        tasks=["acl"],
        bootstrap=100,
        device="cpu",
        csv=str(tmp_path / "same.csv"),
    )
    table = compare_runs(cfg).table
    assert table["model"].tolist() == [*PLANES, "ensemble"]
    assert (table["difference"] == 0).all() and (table["p_delong"] == 1).all()
    assert (table["auc_a"] == table["auc_b"]).all()


@pytest.mark.slow
def test_compare_command_prints_and_writes_the_table(tiny, tmp_path):
    other = tmp_path / "paper-stacker"
    shutil.copytree(tiny.models_dir, other)
    fit_ensembles(MetaConfig(data_dir=str(tiny.data_dir), models_dir=str(other), fit_on="train", device="cpu"))
    csv = tmp_path / "comparison.csv"
    result = run_script(
        "compare.py",
        str(tiny.models_dir),
        str(other),
        "--data-dir",
        str(tiny.data_dir),
        "--csv",
        str(csv),
        "--bootstrap",
        "200",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    assert "DeLong" in result.stdout and "B - A" in result.stdout
    table = pd.read_csv(csv)
    assert len(table) == len(TASKS) * 4 and set(table["split"]) == {"valid"}
    planes = table[table["model"] != "ensemble"]
    assert (planes["difference"] == 0).all() and (planes["p_delong"] == 1).all()  # the same plane models
    assert table[["p_delong", "p_bootstrap"]].apply(lambda p: p.between(0, 1)).all().all()
    assert {"ci_low", "ci_high", "se_delong", "se_bootstrap", "scored_a", "scored_b"} <= set(table.columns)


def test_compare_is_a_command():
    assert COMMANDS["compare"] == "mrnet.cli.compare"
    result = run_script("compare.py", "--help")
    assert result.returncode == 0 and "RUN_A" in result.stdout and "--split" in result.stdout


def test_undefined_delong_prints_n_a_and_never_a_verdict():
    from mrnet.cli.compare import difference_text, p_text

    two_positives = {"n": 10, "positives": 2, "difference": 0.6, "ci_low": float("nan"), "p_delong": float("nan")}
    assert difference_text(two_positives) == "+0.6000 n/a (zero variance)"
    one_positive = {**two_positives, "positives": 1}
    assert difference_text(one_positive) == "+0.6000 n/a (too few exams)"
    assert p_text(one_positive) == "n/a (too few exams)"
    defined = {**two_positives, "ci_low": -0.1, "ci_high": 1.0, "p_delong": 0.2}
    assert difference_text(defined) == "+0.6000 (-0.100, +1.000)" and p_text(defined) == "0.200"


def test_fewer_than_five_exams_of_a_class_is_warned():
    from mrnet.evaluation.compare import few_exams_warnings

    table = pd.DataFrame({"task": ["acl", "acl", "meniscus"], "n": [30, 30, 30], "positives": [2, 2, 15]})
    notes = few_exams_warnings(table, "valid")
    assert len(notes) == 1 and "acl: the valid split holds 2 positive exam(s)" in notes[0]


def test_the_table_goes_beside_run_b_unless_out_is_given_and_options_are_never_abbreviated(tmp_path):
    from mrnet.cli.compare import get_args_parser

    cfg = CompareConfig(run_a="runs/a", run_b=str(tmp_path / "b"), split="valid")
    assert cfg.csv_path() == tmp_path / "b" / "comparison-valid.csv"
    assert CompareConfig(run_a="a", run_b="b", csv="x/c.csv").csv_path().as_posix() == "x/c.csv"
    assert get_args_parser().parse_args(["a", "b", "--out", "t.csv"]).csv == "t.csv"
    with pytest.raises(SystemExit):
        get_args_parser().parse_args(["a", "b", "--boot", "10"])
