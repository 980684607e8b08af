"""Messages name another command the way the user ran this one, never a scripts/ path an installed wheel lacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT, python_env, write_tiny_layout

import mrnet.cli.train_plane
from mrnet.__main__ import program
from mrnet.invocation import command


@pytest.mark.parametrize(
    "started_as,named",
    [
        ("mrnet train-plane", "mrnet train-meta"),  # the mrnet console script (set by mrnet.__main__)
        ("python -m mrnet train-plane", "python -m mrnet train-meta"),
        ("/venv/bin/mrnet-train-plane", "mrnet-train-meta"),
        ("C:\\venv\\Scripts\\mrnet-train-plane.exe".replace("\\", "/"), "mrnet-train-meta"),
        ("scripts/train_plane.py", "python scripts/train_meta.py"),
        ("/home/me/mrnet/scripts/train_all.py", "python /home/me/mrnet/scripts/train_meta.py"),
        (mrnet.cli.train_plane.__file__, "python -m mrnet train-meta"),  # python -m mrnet.cli.train_plane
        ("/usr/bin/pytest", "python -m mrnet train-meta"),
        ("", "python -m mrnet train-meta"),  # an embedded interpreter
    ],
)
def test_a_command_is_named_the_way_this_one_was_started(started_as, named):
    assert command("train-meta", started_as) == named


def test_the_entry_point_names_itself_as_called():
    assert program("/venv/bin/mrnet") == "mrnet"
    assert program("/site-packages/mrnet/__main__.py") == "python -m mrnet"


@pytest.mark.slow
def test_a_hint_names_the_command_as_the_user_typed_it(tmp_path):
    data = write_tiny_layout(tmp_path / "data")
    options = ["--data-dir", str(data), "--models-dir", str(tmp_path / "none"), "--device", "cpu"]
    # The console scripts set sys.argv[0] to their own path and call these functions.
    console = "import sys; sys.argv[0] = {!r}; from {} import {}; {}()"
    started = {
        "python scripts/train_plane.py or python scripts/train_all.py": ["scripts/train_meta.py"],
        "python -m mrnet train-plane or python -m mrnet train-all": ["-m", "mrnet", "train-meta"],
        "mrnet train-plane or mrnet train-all": [
            "-c",
            console.format("/venv/bin/mrnet", "mrnet.__main__", "main", "main"),
            "train-meta",
        ],
        "mrnet-train-plane or mrnet-train-all": [
            "-c",
            console.format("/venv/bin/mrnet-train-meta", "mrnet.cli.train_meta", "run", "run"),
        ],
    }
    for hint, how in started.items():
        result = subprocess.run(
            [sys.executable, *how, *options], capture_output=True, text=True, cwd=ROOT, env=python_env()
        )
        assert result.returncode == 2, result.stderr
        assert f"train them with {hint}\n" in result.stderr
