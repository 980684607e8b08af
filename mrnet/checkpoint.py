"""Checkpoints: written atomically, checked on load against the model they should hold.

A checkpoint is a dict of plain types and tensors, so `torch.load(weights_only=True)`
reads it without running pickled code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import CheckpointError, MRNetError

FORMAT = "mrnet-checkpoint"
FORMAT_VERSION = 1


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over `path`.

    A crash or a full disk mid-write leaves the previous file untouched: os.replace is
    atomic on POSIX, and the temporary file is removed when writing fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the file normal permissions
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise MRNetError(
            f"could not write {path} ({err.strerror or err}); the previous version of the file, if any, is intact"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


TEMP_SUFFIX = ".tmp"


def temporary_leftovers(folder: str | Path) -> list[Path]:
    """Temporary files atomic_write left behind when its process was killed mid-write."""
    return sorted(Path(folder).glob(f".*{TEMP_SUFFIX}"))


def remove_temporary_leftovers(folder: str | Path) -> int:
    """Delete them before a resumed run writes again; returns how many there were."""
    leftovers = temporary_leftovers(folder)
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(
    path: str | Path,
    task: str | None = None,
    plane: str | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load and check a checkpoint; refuse files that are not ours or belong to another model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable MRNet checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an MRNet checkpoint (no '{FORMAT}' marker)")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {state.get('format_version')}, this version reads {FORMAT_VERSION}"
        )
    found = (state.get("task"), state.get("plane"))
    wanted = (task or found[0], plane or found[1])
    if found != wanted:
        raise CheckpointError(
            f"{path} is a checkpoint for task={found[0]} plane={found[1]}, not task={wanted[0]} plane={wanted[1]}"
        )
    return state
