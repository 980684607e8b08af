"""The command layer: option checks before any work, fast --help, SIGTERM's message, no abbreviations."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time

import pytest

from mrnet.cli import COMMANDS as COMMAND_MODULES
from mrnet.cli.common import run_cli
from mrnet.cli.evaluate import get_args_parser as evaluate_parser
from mrnet.cli.train_all import main as train_all
from mrnet.cli.train_plane import get_args_parser as train_plane_parser
from mrnet.cli.train_plane import main as train_plane
from mrnet.errors import MRNetError

COMMANDS = ("train_plane", "train_all", "train_meta", "evaluate", "predict", "make_synthetic")


@pytest.mark.parametrize(
    "options,message",
    [
        (["--lr", "inf"], "--lr inf: must be a finite number"),
        (["--lr", "0"], "--lr 0.0: must be a finite number above 0"),
        (["--weight-decay", "nan"], "--weight-decay nan: must be a finite number"),
        (["--lr-factor", "2"], "--lr-factor 2.0: must be between 0 and 1"),
        (["--lr-factor", "0"], "--lr-factor 0.0: must be between 0 and 1"),
        (["--patience", "-1"], "--patience -1: must be at least 0"),
        (["--lr-patience", "-2"], "--lr-patience -2: must be at least 0"),
        (["--seed", str(2**70)], "--seed 1180591620717411303424: must be between 0 and 4294967295"),
    ],
)
def test_bad_training_options_are_named_before_any_work(tmp_path, options, message):
    with pytest.raises(MRNetError, match=message.replace("+", r"\+")):
        train_plane(["--task", "acl", "--plane", "sagittal", "--data-dir", str(tmp_path / "none"), *options])
    assert list(tmp_path.iterdir()) == []


def test_devices_are_checked_up_front(tmp_path):
    with pytest.raises(MRNetError, match=r"--devices cuda:7"):
        train_all(["--data-dir", str(tmp_path / "none"), "--devices", "cuda:7", "cpu"])


def test_abbreviated_options_are_refused(capsys):
    with pytest.raises(SystemExit):
        train_plane_parser().parse_args(["--task", "acl", "--plane", "sagittal", "--lr-fac", "0.5"])
    assert "unrecognized arguments: --lr-fac" in capsys.readouterr().err


def test_a_task_named_twice_is_taken_once():
    assert evaluate_parser().parse_args(["--tasks", "acl", "acl", "abnormal"]).tasks == ["acl", "abnormal"]


def test_sigterm_says_how_to_continue(capsys):
    def main(argv):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    with pytest.raises(SystemExit) as stopped:
        run_cli(main)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert "continue with --resume" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_fast_and_imports_no_heavy_library(command):
    code = (
        f"import sys, time; t = time.perf_counter(); import mrnet.cli.{command} as c\n"
        "try:\n    c.get_args_parser().parse_args(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'sklearn', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "print(heavy, time.perf_counter() - t, file=sys.stderr)"
    )
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("[]"), result.stderr
    assert elapsed < 2.0


@pytest.mark.parametrize("name", sorted(COMMAND_MODULES))
def test_every_command_refuses_a_repeated_single_value_option(name, capsys):
    """`--x a --x b` would silently keep b: every command's parser refuses it, under any of the option's names."""
    parser = importlib.import_module(COMMAND_MODULES[name]).get_args_parser()
    kinds = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if kinds:  # a command with kinds (import-data dicom|kneemri): the first kind's own parser and options
        parser = next(iter(kinds[0].choices.values()))
    option = next(
        a
        for a in parser._actions
        if a.option_strings and a.nargs is None and not isinstance(a, argparse._AppendAction) and a.dest != "help"
    )
    flag, other = option.option_strings[0], option.option_strings[-1]
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([flag, "1", f"{other}=2"])
    assert exit_.value.code == 2
    assert f"argument {other}: given more than once (first as {flag})" in capsys.readouterr().err
    assert not parser.allow_abbrev


def test_options_meant_to_repeat_still_may():
    from mrnet.cli.predict import get_args_parser

    args = get_args_parser().parse_args(["--series", "axial=AX", "--series", "coronal=COR", "--out", "p"])
    assert args.series == ["axial=AX", "coronal=COR"] and args.out == "p"
    with pytest.raises(SystemExit):
        get_args_parser().parse_args(["--tasks", "acl", "--tasks", "meniscus"])  # a list option given twice
