"""Runs know their data: --resume, train_all's skip and train_meta refuse other data, naming what changed."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FAST, fast_and

from mrnet import PLANES, TASKS
from mrnet.cli.train_all import main as train_all
from mrnet.data.fingerprint import describe_changes, split_fingerprint
from mrnet.ensemble.fit import MetaConfig, fit_ensembles
from mrnet.errors import MRNetError
from mrnet.training.config import TrainConfig
from mrnet.training.trainer import train


def fingerprint(cases, labels, slices, size=64):
    return {"version": 1, "train": split_fingerprint(cases, labels, [(s, size, size) for s in slices])}


def test_changes_are_named():
    old = fingerprint(["0001", "0002", "0003"], [0, 1, 0], [4, 5, 6])
    assert describe_changes(old, old) == []
    assert describe_changes(old, fingerprint(["0001", "0003"], [0, 0], [4, 6])) == ["train: 1 case(s) removed (0002)"]
    assert describe_changes(old, fingerprint(["0001", "0002", "0003"], [0, 1, 1], [4, 5, 6])) == [
        "train: 1 label(s) changed (0003: 0 -> 1)"
    ]
    assert describe_changes(old, fingerprint(["0001", "0002", "0003"], [0, 1, 0], [4, 5, 6], 128)) == [
        "train: slice size 64x64 -> 128x128"
    ]
    assert describe_changes(None, old) == []  # a checkpoint from before fingerprints: nothing to compare


def remove_case(data, split: str, case: str) -> None:
    for plane in PLANES:
        (data / split / plane / f"{case}.npy").unlink()
    for task in TASKS:
        path = data / f"{split}-{task}.csv"
        path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if not line.startswith(case)))


def flip_label(data, split: str, task: str, case: str) -> None:
    path = data / f"{split}-{task}.csv"
    lines = [
        f"{case},{1 - int(line.split(',')[1])}" if line.startswith(case) else line
        for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")


def one_epoch(data, models, **kw) -> TrainConfig:
    options = {"epochs": 1, "lr": 1e-4, "weight_decay": 1e-4, "pretrained": False, "device": "cpu", **kw}
    return TrainConfig(task="acl", plane="sagittal", data_dir=str(data), models_dir=str(models), **options)


@pytest.mark.slow
def test_resume_after_cases_removed_or_labels_flipped_is_refused(tiny_data, tmp_path):
    models = tmp_path / "models"
    train(one_epoch(tiny_data, models))
    last = (models / "acl-sagittal" / "last.pt").read_bytes()
    remove_case(tiny_data, "train", "0003")
    with pytest.raises(MRNetError, match=r"--resume: .*train: 1 case\(s\) removed \(0003\)"):
        train(one_epoch(tiny_data, models, epochs=2, resume=True), explicit={"epochs"})
    flip_label(tiny_data, "valid", "acl", "0013")
    with pytest.raises(MRNetError, match=r"valid: 1 label\(s\) changed \(0013: 1 -> 0\).*--overwrite"):
        train(one_epoch(tiny_data, models, epochs=2, resume=True), explicit={"epochs"})
    assert (models / "acl-sagittal" / "last.pt").read_bytes() == last


@pytest.mark.slow
def test_resume_on_another_slice_size_is_refused(tiny_data, tmp_path):
    models = tmp_path / "models"
    train(one_epoch(tiny_data, models))
    for path in (tiny_data / "train").rglob("*.npy"):
        np.save(path, np.load(path).repeat(2, axis=1).repeat(2, axis=2))
    for path in (tiny_data / "valid").rglob("*.npy"):
        np.save(path, np.load(path).repeat(2, axis=1).repeat(2, axis=2))
    with pytest.raises(MRNetError, match=r"slice size 64x64 -> 128x128"):
        train(one_epoch(tiny_data, models, epochs=2, resume=True), explicit={"epochs"})


def sweep(data, models, *extra: str) -> None:
    train_all(
        [
            *("--data-dir", str(data), "--models-dir", str(models), "--tasks", "acl", "--planes", "sagittal"),
            *fast_and("--skip-meta", "--epochs", "1", *extra),
        ]
    )


@pytest.mark.slow
def test_train_all_with_another_recipe_or_dataset_is_refused(tiny_data, tmp_path, capsys):
    models = tmp_path / "models"
    sweep(tiny_data, models)
    sweep(tiny_data, models)
    assert "finished checkpoint exists, skipped" in capsys.readouterr().out
    with pytest.raises(MRNetError, match=r"(?s)acl-sagittal: lr=0.0002 \(it used 0.0001\).*--overwrite"):
        sweep(tiny_data, models, "--lr", "2e-4")
    with pytest.raises(MRNetError, match=r"seed=3 \(it used 0\)"):
        sweep(tiny_data, models, "--seed", "3")
    flip_label(tiny_data, "train", "acl", "0002")
    with pytest.raises(MRNetError, match=r"acl-sagittal: train: 1 label\(s\) changed \(0002: 0 -> 1\)"):
        sweep(tiny_data, models)
    sweep(tiny_data, models, "--overwrite")  # retrained where the user asks for it
    sweep(tiny_data, models)


@pytest.mark.slow
def test_train_meta_refuses_checkpoints_trained_on_other_data(tiny, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny.data_dir, data)
    case = sorted(p.stem for p in (data / "valid" / "axial").glob("*.npy"))[0]
    remove_case(data, "valid", case)
    with pytest.raises(
        MRNetError, match=rf"acl-sagittal/best.pt was trained on other data: valid: 1 case\(s\) removed \({case}\)"
    ):
        fit_ensembles(MetaConfig(data_dir=str(data), models_dir=str(tiny.models_dir), device="cpu"))


def test_a_multitask_views_fingerprint_is_the_one_its_task_would_record(tiny_data):
    from mrnet.data.dataset import check_and_load
    from mrnet.data.fingerprint import fingerprint_of, view_fingerprint

    data = check_and_load(str(tiny_data), list(TASKS), ["sagittal"], ("train", "valid"))
    splits = {s: data[(s, "sagittal")] for s in ("train", "valid")}
    run = fingerprint_of(splits, "all")
    for task in TASKS:
        assert view_fingerprint(run, task) == fingerprint_of(splits, task)
    assert view_fingerprint(fingerprint_of(splits, "acl"), "acl") is None  # only a multi-task run has views
    assert view_fingerprint(None, "acl") is None


@pytest.mark.slow
def test_train_meta_checks_multitask_views_against_the_data(tiny_data, tmp_path):
    models = tmp_path / "models"
    train_all(["--data-dir", str(tiny_data), "--models-dir", str(models), "--epochs", "1", "--task", "all", *FAST])
    flip_label(tiny_data, "valid", "meniscus", sorted(p.stem for p in (tiny_data / "valid" / "axial").glob("*.npy"))[0])
    with pytest.raises(MRNetError, match=r"meniscus-axial/best.pt was trained on other data: valid: 1 label"):
        fit_ensembles(MetaConfig(data_dir=str(tiny_data), models_dir=str(models), device="cpu"))
    fit_ensembles(MetaConfig(data_dir=str(tiny_data), models_dir=str(models), device="cpu", tasks=["acl"]))
