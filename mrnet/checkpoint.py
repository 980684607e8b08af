"""Checkpoints: written atomically, checked on load against the model they should hold.

A checkpoint is a dict of plain types and tensors, so `torch.load(weights_only=True)`
reads it without running pickled code.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .files import atomic_write

FORMAT = "mrnet-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    state = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}

    def write(tmp: Path) -> None:
        # Through a Python file object: a full disk then surfaces as its OSError (see files.write_failure).
        with open(tmp, "wb") as handle:
            torch.save(state, handle)

    atomic_write(path, write)


def load_checkpoint(
    path: str | Path,
    task: str | None = None,
    plane: str | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load and check a checkpoint; refuse files that are not ours or belong to another model."""
    return read_checkpoint(path, task, plane, map_location)[0]


def read_checkpoint(
    path: str | Path,
    task: str | None = None,
    plane: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[dict[str, Any], str]:
    """A checked checkpoint and the sha256 of the very bytes it was built from.

    The file is read once: hashing it and loading it separately would let a file replaced in
    between (a resumed training run) be loaded under the old file's hash.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{path} cannot be read ({err.strerror or err})") from None
    return checked_state(data, path, task, plane, map_location), hashlib.sha256(data).hexdigest()


def checked_state(
    data: bytes, path: Path, task: str | None, plane: str | None, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """A checkpoint's bytes loaded without running pickled code, then checked: marker, version, task and plane."""
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
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
