"""Atomic writes on a really full filesystem: the documented message, the previous file intact, no leftovers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mrnet.errors import MRNetError
from mrnet.files import atomic_write, atomic_write_many, save_figure

# A child process whose files may not grow past LIMIT bytes (RLIMIT_FSIZE): every write beyond fails
# with EFBIG as on a full disk. SIGXFSZ is ignored so the write returns the error instead of killing it.
FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    import torch
    from mrnet.checkpoint import save_checkpoint
    from mrnet.errors import MRNetError
    from mrnet.files import atomic_write

    path, kind = sys.argv[1], sys.argv[2]
    small = {"task": "acl", "plane": "sagittal", "model": {"w": torch.zeros(10)}}
    big = {"task": "acl", "plane": "sagittal", "model": {"w": torch.zeros(200_000)}}
    if kind == "checkpoint":
        save_checkpoint(small, path)
    else:
        atomic_write(path, lambda tmp: tmp.write_text("previous"))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    try:
        if kind == "checkpoint":
            save_checkpoint(big, path)
        else:
            atomic_write(path, lambda tmp: tmp.write_text("x" * 1_000_000))
    except MRNetError as err:
        print(err)
        sys.exit(2)
    """
)


@pytest.mark.parametrize("kind", ["checkpoint", "text"])
def test_full_filesystem_keeps_the_previous_file(tmp_path, kind):
    path = tmp_path / ("last.pt" if kind == "checkpoint" else "metrics.csv")
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path), kind], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert f"could not write {path}" in result.stdout and "previous version of the file, if any, is intact" in (
        result.stdout
    )
    assert "Traceback" not in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    if kind == "checkpoint":
        import torch

        assert torch.load(path, weights_only=True)["model"]["w"].shape == (10,)
    else:
        assert path.read_text() == "previous"


def test_files_written_together_change_together(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.csv"
    atomic_write_many({first: lambda tmp: tmp.write_text("old a"), second: lambda tmp: tmp.write_text("old b")})

    def fails(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(MRNetError, match=r"could not write .*b.csv \(No space left on device\)"):
        atomic_write_many({first: lambda tmp: tmp.write_text("new a"), second: fails})
    assert first.read_text() == "old a" and second.read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.csv"]


def test_errors_that_are_not_io_pass_through(tmp_path):
    with pytest.raises(ZeroDivisionError):
        atomic_write(tmp_path / "x", lambda tmp: 1 / 0)
    assert list(tmp_path.iterdir()) == []


def test_a_figure_is_saved_whole_or_not_at_all(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 1))
    FigureCanvasAgg(figure)
    path = save_figure(figure, tmp_path / "plots" / "roc.png")
    assert path.read_bytes().startswith(b"\x89PNG")

    class Broken:
        def savefig(self, target, format):
            Path(target).write_bytes(b"half a picture")
            raise OSError(28, "No space left on device")

    before = path.read_bytes()
    with pytest.raises(MRNetError, match=r"roc.png \(No space left on device\); the previous version"):
        save_figure(Broken(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["roc.png"]  # no temporary left behind


def test_json_outputs_are_strict_json_with_null_for_undefined_numbers(tmp_path):
    import json as strict_json

    import numpy as np

    from mrnet.files import write_json

    write_json(tmp_path / "x.json", {"auc": float("nan"), "p": [np.float32(0.5), np.inf], "n": np.float64(1.0)})
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert strict_json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {"auc": None, "p": [0.5, None], "n": 1.0}
