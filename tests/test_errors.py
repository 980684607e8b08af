"""User-facing errors: one message, an exit status, no traceback."""

from __future__ import annotations

import pytest

from mrnet.cli.common import run_cli
from mrnet.errors import DataError, MRNetError, format_problems


def test_user_error_exits_2_with_the_message(capsys):
    def main(argv):
        raise MRNetError("--epochs 0: must be at least 1")

    with pytest.raises(SystemExit) as stopped:
        run_cli(main)
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "error: --epochs 0: must be at least 1\n"


def test_ctrl_c_exits_130_and_says_how_to_continue(capsys):
    def main(argv):
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stopped:
        run_cli(main)
    assert stopped.value.code == 130
    assert "continue with --resume" in capsys.readouterr().err


def test_long_problem_lists_are_cut_with_a_count():
    problems = [f"train/axial/{i:04d}.npy: has 0 slices" for i in range(45)]
    text = format_problems("data", problems)
    assert text.startswith("data: 45 problems found, nothing was trained or written:")
    assert "0039.npy" in text and "0040.npy" not in text and "... and 5 more" in text
    assert DataError("data", problems).problems == problems
