"""Output folders hold one run's files: a rerun removes what the same command wrote before and did not write again."""

from __future__ import annotations

import json

import pytest

from mrnet import PLANES
from mrnet.cli.evaluate import main as evaluate
from mrnet.cli.predict import main as predict
from mrnet.data.dataset import series_path
from mrnet.outputs import MANIFEST, OutputFolders


def run(command: str, root, *names: str, other=None) -> list:
    outputs = OutputFolders(command, root, other)
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    outputs.add(root / name for name in names)
    return outputs.finish()


def test_a_rerun_removes_its_earlier_files_it_did_not_rewrite(tmp_path):
    out = tmp_path / "out"
    run("predict", out, "predictions.csv", "competition.csv", "case-a/acl-axial.png", "case-b/acl-axial.png")
    (out / "notes.txt").write_text("the user's own file")
    removed = run("predict", out, "predictions.csv", "case-a/acl-axial.png")
    assert sorted(p.relative_to(out).as_posix() for p in removed) == ["case-b/acl-axial.png", "competition.csv"]
    assert not (out / "case-b").exists()  # the folder it left empty goes too
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert json.loads((out / MANIFEST).read_text())["commands"]["predict"] == [
        "case-a/acl-axial.png",
        "predictions.csv",
    ]


def test_another_commands_files_and_unlisted_paths_are_left_alone(tmp_path):
    out = tmp_path / "out"
    run("evaluate", out, "report.md", "metrics.csv")
    run("predict", out, "predictions.csv")
    assert (out / "report.md").exists() and (out / "metrics.csv").exists()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["commands"]["predict"] += ["../outside.txt", str(outside)]  # a tampered list cannot reach out
    (out / MANIFEST).write_text(json.dumps(manifest))
    run("predict", out, "predictions.csv")
    assert outside.read_text() == "keep"
    assert sorted(json.loads((out / MANIFEST).read_text())["commands"]) == ["evaluate", "predict"]


@pytest.mark.parametrize("text", ["{not json", '{"format": "other"}', '{"format": "mrnet-outputs", "commands": 3}'])
def test_an_unreadable_manifest_removes_nothing(tmp_path, text):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.csv").write_text("x")
    (out / MANIFEST).write_text(text)
    assert run("predict", out, "new.csv") == []
    assert (out / "old.csv").exists()


def test_a_file_belongs_to_the_innermost_output_folder(tmp_path):
    out, html = tmp_path / "out", tmp_path / "out" / "html"
    run("predict", out, "predictions.csv", "html/a.html", other=html)
    assert json.loads((html / MANIFEST).read_text())["commands"]["predict"] == ["a.html"]
    run("predict", out, "predictions.csv", "html/b.html", other=html)
    assert not (html / "a.html").exists() and (html / "b.html").exists()


def listing(tmp_path, data_dir, cases) -> str:
    path = tmp_path / f"inputs-{len(cases)}.csv"
    path.write_text("".join(f"{series_path(data_dir, 'valid', p, c)}\n" for c in cases for p in PLANES))
    return str(path)


def files_below(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_predict_rerun_leaves_no_file_of_the_earlier_run_and_no_input_path(tiny, tmp_path):
    out, html, cam = tmp_path / "out", tmp_path / "html", tmp_path / "cam"
    cases = sorted(p.stem for p in (tiny.data_dir / "valid" / "axial").glob("*.npy"))[:2]
    argv = ["--models-dir", str(tiny.models_dir), "--device", "cpu", "--out", str(out), "--html", str(html)]
    predict([*argv, "--cam", str(cam), "--input-csv", listing(tmp_path, tiny.data_dir, cases)])
    assert (out / "competition.csv").exists() and (html / f"{cases[1]}.html").exists() and (cam / cases[1]).is_dir()
    # Viewer pages and predictions.json name each input by its file name only: no folder of the machine.
    for path in [out / "predictions.json", *html.glob("*.html")]:
        text = path.read_text()
        assert str(tmp_path) not in text and str(tiny.data_dir) not in text, path
    (out / "my-notes.txt").write_text("kept")

    argv += ["--cam", str(cam), "--tasks", "acl", "--input-csv", listing(tmp_path, tiny.data_dir, cases[:1])]
    predict(argv)
    assert not (out / "competition.csv").exists()  # "needs all three tasks; it was not written": and none is there
    assert files_below(html) == {"index.html", f"{cases[0]}.html", MANIFEST}
    assert {p.name for p in cam.iterdir()} == {cases[0], MANIFEST}
    assert {p.name.split("-top")[0] for p in (cam / cases[0]).iterdir()} == {f"acl-{p}" for p in PLANES}
    assert (out / "my-notes.txt").read_text() == "kept"


@pytest.mark.slow
def test_evaluate_rerun_with_fewer_tasks_leaves_no_file_of_the_earlier_run(tiny, tmp_path):
    out = tmp_path / "report"
    argv = ["--data-dir", str(tiny.data_dir), "--models-dir", str(tiny.models_dir), "--bootstrap", "0"]
    argv += ["--device", "cpu", "--out", str(out), "--heatmap-exams", "1", "--viewer-exams", "1"]
    evaluate(argv)
    assert (out / "predictions.csv").exists() and (out / "roc-abnormal.png").exists()
    for path in (out / "viewer").glob("*.html"):
        assert str(tiny.data_dir) not in path.read_text(), path
    evaluate([*argv, "--tasks", "acl"])
    left = files_below(out)
    assert "predictions.csv" not in left
    assert not [name for name in left if "abnormal" in name or "meniscus" in name]
    listed = json.loads((out / MANIFEST).read_text())["commands"]["evaluate"]
    assert left == {*listed, MANIFEST}  # every file there is this run's
