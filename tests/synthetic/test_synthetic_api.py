"""The package's public entry points: the names it re-exports, and scripts/make_synthetic.py."""

from __future__ import annotations

import pytest
from helpers import run_script

from mrnet import synthetic as synth
from mrnet.synthetic import dataset, exam, labels, tissues


def test_package_reexports_the_public_api():
    assert synth.make_dataset is dataset.make_dataset and synth.case_id is dataset.case_id
    assert synth.make_exam is exam.make_exam and synth.exam_rng is exam.exam_rng
    assert synth.draw_slice_counts is exam.draw_slice_counts
    assert synth.REAL_SLICE_RANGES is exam.REAL_SLICE_RANGES
    assert synth.draw_case_labels is labels.draw_case_labels and synth.COMBINATIONS is labels.COMBINATIONS
    assert synth.draw_split_labels is labels.draw_split_labels
    assert synth.FINDINGS is tissues.FINDINGS
    assert all(hasattr(synth, name) for name in synth.__all__)


def make_synthetic(*args: str):
    return run_script("make_synthetic.py", *args, timeout=120)


@pytest.mark.slow
def test_cli_writes_a_dataset_and_reports_positives(tmp_path):
    small = ["--train", "3", "--valid", "2", "--size", "64"]
    done = make_synthetic("--out", str(tmp_path / "d"), *small, "--slices", "3", "4")
    assert done.returncode == 0, done.stderr
    assert "wrote 5 synthetic exams" in done.stdout
    assert "abnormal" in done.stdout and "meniscus" in done.stdout
    assert (tmp_path / "d" / "valid" / "coronal" / "0004.npy").is_file()

    refused = make_synthetic("--out", str(tmp_path / "d"), *small)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--size", "32"], ["--slices", "5", "2"]])
def test_cli_bad_options_exit_2_without_traceback(tmp_path, args):
    done = make_synthetic("--out", str(tmp_path / "d"), *args)
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
