"""Options written once: the command line, the checks, resume's roles and --config FILE read TrainConfig's fields."""

from __future__ import annotations

import json
from dataclasses import asdict, fields

import pytest
from helpers import FAST, write_tiny_layout

from mrnet.cli.common import training_config_from_args
from mrnet.cli.train_all import get_args_parser as train_all_parser
from mrnet.cli.train_plane import get_args_parser as train_plane_parser
from mrnet.cli.train_plane import main as train_plane
from mrnet.errors import MRNetError
from mrnet.files import write_json
from mrnet.options import LENGTH, RECIPE, flags_of, options_of
from mrnet.runinfo import plain
from mrnet.training.config import RECIPE_FIELDS, RUN_FIELDS, TrainConfig


def config_of(argv: list[str]) -> tuple[TrainConfig, set[str]]:
    return training_config_from_args(train_plane_parser().parse_args(argv))


def test_every_field_is_an_option_with_one_role():
    roles = {f.name: f.metadata["role"] for f in options_of(TrainConfig)}
    assert set(roles) == {f.name for f in fields(TrainConfig)}
    assert set(RECIPE_FIELDS) == {n for n, r in roles.items() if r == RECIPE}
    run = {
        "data_dir",
        "models_dir",
        "device",
        "threads",
        "eval_max_slices",
        "amp",
        "channels_last",
        "resume",
        "overwrite",
    }
    assert set(RUN_FIELDS) == run
    assert {n for n, r in roles.items() if r == LENGTH} == {"epochs", "patience"}


def test_switches_are_spelled_from_their_default():
    flags = {f.name: flags_of(f)[0] for f in options_of(TrainConfig)}
    assert flags["pretrained"] == "--no-pretrained"
    assert flags["channels_last"] == "--no-channels-last"
    assert flags["resume"] == "--resume"
    assert flags["lr_factor"] == "--lr-factor"
    assert config_of(["--task", "acl", "--plane", "axial", "--no-augment", "--overwrite"])[0].augment is False


def test_file_values_are_defaults_and_the_command_line_wins(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"task": "meniscus", "plane": "axial", "lr": 2e-4, "pretrained": False, "epochs": 3}))
    cfg, explicit = config_of(["--config", str(path), "--plane", "coronal", "--epochs", "7"])
    assert (cfg.task, cfg.plane, cfg.lr, cfg.pretrained, cfg.epochs) == ("meniscus", "coronal", 2e-4, False, 7)
    assert cfg.weight_decay == TrainConfig().weight_decay
    # A resumed run refuses a changed recipe from a file as from a flag: the file's values are the user's.
    assert explicit == {"task", "plane", "lr", "pretrained", "epochs"}


def test_a_toml_file_is_read_too(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('task = "acl"\nplane = "sagittal"\nbackbone = "resnet18"\nexams_per_step = 4\n')
    cfg, _ = config_of([f"--config={path}"])
    assert (cfg.backbone, cfg.exams_per_step) == ("resnet18", 4)


def test_unknown_keys_and_bad_values_are_named_with_the_file_in_one_message(tmp_path):
    path = tmp_path / "bad.json"
    bad = {"task": "acl", "plane": "axial", "lr": -1, "backbone": "vgg", "epochs": 2.5, "colour": 1, "augment": "no"}
    path.write_text(json.dumps(bad))
    with pytest.raises(MRNetError) as err:
        config_of(["--config", str(path)])
    message = str(err.value)
    assert message.startswith(f"--config {path}: ")
    for expected in (
        "lr -1.0: must be a finite number above 0",
        "backbone 'vgg': choose one of alexnet",
        "epochs 2.5: must be a whole number",
        "colour: not an option of",
        "augment 'no': must be true or false",
    ):
        assert expected in message


@pytest.mark.parametrize("text,problem", [("[1, 2]", "expected a table"), ("{lr: 1}", "not valid JSON")])
def test_a_file_that_is_not_a_table_of_options_is_refused(tmp_path, text, problem):
    path = tmp_path / "run.json"
    path.write_text(text)
    with pytest.raises(MRNetError, match=problem):
        config_of(["--config", str(path)])


def test_a_saved_config_is_a_valid_input(tmp_path):
    """What the training commands write as config.json reads back as the same config."""
    cfg = TrainConfig(task="all", plane="coronal", lr=3e-4, seed=7, pool="attention", augment=False, eval_max_slices=16)
    write_json(tmp_path / "config.json", plain(cfg))  # save_run_info's config.json, without its git call
    assert config_of(["--config", str(tmp_path / "config.json")])[0] == cfg


def test_train_all_takes_the_recipe_of_a_saved_model_and_keeps_its_own_grid(tmp_path):
    write_json(tmp_path / "config.json", plain(TrainConfig(task="acl", plane="axial", lr=3e-4, pretrained=False)))
    args = train_all_parser().parse_args(["--config", str(tmp_path / "config.json"), "--tasks", "meniscus"])
    assert (args.task, args.tasks, args.planes) == (None, ["meniscus"], ["axial", "coronal", "sagittal"])
    assert (args.lr, args.pretrained) == (3e-4, False)


@pytest.mark.slow
def test_a_trained_runs_config_json_gives_back_the_same_config(tmp_path):
    data = write_tiny_layout(tmp_path / "data", n_train=8, n_valid=6)
    argv = ["--task", "acl", "--plane", "sagittal", "--data-dir", str(data), "--models-dir", str(tmp_path / "m")]
    train_plane([*argv, "--epochs", "1", "--tune-fraction", "0", "--select-on", "valid", *FAST])
    saved = tmp_path / "m" / "acl-sagittal" / "config.json"
    cfg, _ = config_of(["--config", str(saved)])
    assert asdict(cfg) == json.loads(saved.read_text())
