"""benchmarks.parallel's variants (another checkout of the code included) and benchmarks.optimizer's record."""

from __future__ import annotations

import argparse
import json
import re

import pytest
from helpers import ROOT

from benchmarks import optimizer, parallel
from benchmarks.tables import render


def test_a_variant_may_name_another_checkout_by_its_folder(tmp_path):
    (tmp_path / "before" / "scripts").mkdir(parents=True)
    (tmp_path / "before" / "scripts" / "train_all.py").write_text("")
    variant = parallel.parse_variant(f"source={tmp_path / 'before'}")
    assert parallel.label(variant) == "source=before"
    assert parallel.label(parallel.parse_variant("workers=2,threads=2")) == "workers=2,threads=2"
    with pytest.raises(argparse.ArgumentTypeError, match=r"holds no scripts/train_all\.py"):
        parallel.parse_variant(f"source={tmp_path}")
    with pytest.raises(argparse.ArgumentTypeError, match="only workers=, threads= and source="):
        parallel.parse_variant("epochs=3")


@pytest.mark.slow  # runs git
def test_the_code_of_a_checkout_is_its_commit():
    assert re.fullmatch(r"[0-9a-f]{7,}(\+changes)?", parallel.revision(ROOT))


def test_the_record_shows_each_round_the_speed_up_and_the_ensembles(tmp_path):
    variant = {
        "seconds_all": [300.0, 280.0],
        "load_at_start": [0.2, 1.9],
        "first_line": "cpu (2 threads: 2 CPUs, load 0.0)",
        "code": "abc1234",
        "ensemble_aucs": "abnormal 0.9994, acl 0.9356, meniscus 0.9975",
        "speedup_over_first": 1.0,
        "auc_table_equal": True,
        "weights_equal": True,
    }
    results = {"command": "python -m benchmarks.parallel …", "epochs": 8, "variants": {"source=before": variant}}
    (tmp_path / "demo-speed.json").write_text(json.dumps({**results, **parallel.as_record(results)}))
    table = render("demo-speed", tmp_path)
    assert "| source=before | abc1234 | cpu (2 threads: 2 CPUs, load 0.0) | 300 and 280 | 1.00x |" in table
    assert "load average 0.2-1.9" in table


def test_the_adam_benchmark_times_each_implementation_and_how_far_it_ends_from_the_loop(tmp_path):
    out = tmp_path / "adam-cpu.json"
    tiny = ["--size", "64", "--slices", "2", "3", "--exams", "4", "--rounds", "2"]
    results = optimizer.main([*tiny, "--json", str(out)])
    assert list(results["variants"]) == ["loop", "foreach", "fused"]
    assert results["variants"]["loop"]["largest_weight_difference_from_loop"] == 0
    for name in ("foreach", "fused"):  # training amplifies rounding: the difference is recorded, not bounded here
        assert 0 <= results["variants"][name]["largest_weight_difference_from_loop"] < 1
        assert len(results["variants"][name]["ms_per_step_all"]) == 2
    assert "| fused |" in render("adam-cpu", tmp_path)
