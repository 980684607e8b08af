"""What every output says a figure is: never held-out where the split chose the plane models' epochs, and text
read from files shown as text."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import known_probabilities

from mrnet import PLANES
from mrnet.ensemble.file import LOG_ODDS, SavedEnsemble, Threshold
from mrnet.evaluation.evaluator import EvalConfig, provenance, task_metrics, with_mean_rows
from mrnet.evaluation.report import ReportContent, relations_of, render_markdown, text_table
from mrnet.evaluation.report_html import render_html
from mrnet.evaluation.scores import TaskScores

MODELS = (*PLANES, "ensemble")


def scores(select_on: str, fit_on: str = "tune", chosen_on: str = "tune") -> TaskScores:
    table = known_probabilities(40, seed=1)
    table["ensemble"] = (table["sagittal"] + table["coronal"]) / 2
    saved = SavedEnsemble(
        task="acl",
        planes=tuple(PLANES),
        features=LOG_ODDS,
        fit_on=fit_on,
        sklearn_version="1.5",
        classes=(0, 1),
        coef=(0.1, 0.5, 2.0),
        intercept=0.0,
        checkpoints={p: "0" * 64 for p in PLANES},
        thresholds={m: Threshold(0.5, chosen_on, "held-out") for m in MODELS},
    )
    return TaskScores("acl", table, saved, "held-out", {p: select_on for p in PLANES}, same_data=True)


def outputs(ts: TaskScores, tmp_path) -> dict[str, str]:
    """Each output evaluate writes or prints, as text: metrics.csv, report.md, report.html, the console."""
    metrics = with_mean_rows(task_metrics(ts, "valid", 0, 0), "valid")
    notes = provenance(EvalConfig(split="valid"), {"acl": ts}, metrics)
    content = ReportContent(
        split="valid",
        n_exams=len(ts.table),
        positives={"acl": int(ts.table["label"].sum())},
        tasks=["acl"],
        bootstrap=0,
        seed=0,
        models_dir="models",
        data_dir="data",
        competition_score=float(np.nan),
        notes=notes,
        relations=relations_of(metrics),
    )
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    return {
        "metrics.csv": (tmp_path / "metrics.csv").read_text(),
        "report.md": render_markdown(metrics, content, tmp_path),
        "report.html": render_html(metrics, content, tmp_path),
        "console": text_table(metrics) + "\n" + "\n".join(notes),
    }


def test_select_on_valid_outputs_never_call_a_valid_figure_held_out(tmp_path):
    for name, text in outputs(scores(select_on="valid"), tmp_path).items():
        assert "held-out" not in text.lower() and "held out" not in text.lower(), name
        assert "epochs chosen here" in text, name  # the ensemble's label says what this split chose


def test_a_split_that_chose_nothing_keeps_held_out(tmp_path):
    for name, text in outputs(scores(select_on="tune", fit_on="train", chosen_on="train"), tmp_path).items():
        assert "held-out" in text, name
        assert "same tuning split" not in text, name


def test_epochs_and_stacker_chosen_on_the_same_tuning_split_is_said(tmp_path):
    for name, text in outputs(scores(select_on="tune", fit_on="tune"), tmp_path).items():
        if name != "metrics.csv":  # a table of numbers; the sentence goes with them in every text output
            assert "epochs and its stacker were chosen on the same tuning split" in text, name


@pytest.mark.parametrize("chosen_on", ["tune <img src=x onerror=alert(1)> | `x` [a](b)", "tune\x1b[2J\nhidden"])
def test_text_from_the_ensemble_file_reaches_the_report_as_text(tmp_path, chosen_on):
    texts = outputs(scores(select_on="tune", chosen_on=chosen_on), tmp_path)
    for name in ("report.md", "report.html"):
        assert "<img src=x" not in texts[name] and "\x1b" not in texts[name], name
    markdown = texts["report.md"]
    assert "&lt;img src=x onerror=alert(1)&gt; \\| \\`x\\` \\[a\\](b)" in markdown or "?\\[2J" in markdown
    table_rows = [line for line in markdown.splitlines() if line.startswith("| acl |")]
    assert len(table_rows) == len(MODELS) and all(row.count(" | ") == 13 for row in table_rows)  # no column added
    assert "\x1b" not in texts["console"].replace(chosen_on, "")  # the console prints notes through plain_text
