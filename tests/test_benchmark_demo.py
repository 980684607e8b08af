"""The demo's records are read from what train_all wrote, and the docs render them."""

from __future__ import annotations

import json

from benchmarks.demo import main
from benchmarks.tables import render

HEADER = (
    "task,split,axial,coronal,sagittal,ensemble,ensemble_fit_on,ensemble_scored,best_plane,ensemble_minus_best,p_delong"
)


def fake_run(folder, seed, aucs):
    (folder / "acl-axial").mkdir(parents=True)
    (folder / "acl-axial" / "config.json").write_text(json.dumps({"seed": seed}))
    rows = [
        f"{t},valid,0.5,0.6,0.7,{a},tune,held-out,sagittal,0.0,1.0"
        for t, a in zip(["abnormal", "acl", "meniscus"], aucs, strict=True)
    ]
    (folder / "auc_table.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return folder


def test_records_come_from_the_runs_and_render(tmp_path):
    runs = [fake_run(tmp_path / f"s{s}", s, a) for s, a in [(0, (0.99, 0.93, 1.0)), (1, (0.98, 0.95, 0.99))]]
    out = tmp_path / "measured"
    main([str(r) for r in runs] + ["--table", str(out / "demo-auc.json"), "--seeds", str(out / "demo-seeds.json")])
    seeds = json.loads((out / "demo-seeds.json").read_text())
    assert seeds["rows"][0] == ["0", "0.9900", "0.9300", "1.0000", "0.9733"]
    assert seeds["rows"][-1] == ["range", "0.9800-0.9900", "0.9300-0.9500", "0.9900-1.0000", "0.9733-0.9733"]
    assert "0.9300" in render("demo-seeds", out) and "acl" in render("demo-auc", out)
