"""Plane-model weights as safetensors: tensors and a JSON header, nothing that runs code when read.

A checkpoint splits into its tensors (`model`, written as safetensors) and everything else
(plain types, written as JSON); joining the two gives back a checkpoint in the project's
format. The sha256 of the safetensors bytes names the weights themselves, whichever file
format carries them, so an ONNX file or a bundle can say which weights it was made from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_checkpoint
from ..errors import CheckpointError, MRNetError
from ..files import finite_or_null

WEIGHTS_KEY = "model"


def import_safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise MRNetError("install safetensors to read or write bundles (pip install 'mrnet[export]')") from None
    return safetensors.torch


def weights_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """A state dict as safetensors bytes (contiguous CPU tensors; the format stores keys sorted)."""
    tensors = {name: value.detach().cpu().contiguous() for name, value in state.items()}
    return import_safetensors().save(tensors)


def weights_from_bytes(data: bytes, where: str) -> dict[str, torch.Tensor]:
    """Read safetensors bytes back into a state dict; a malformed file is refused naming `where`."""
    try:
        return import_safetensors().load(data)
    except Exception as err:  # safetensors raises its own error types for a malformed header
        raise MRNetError(f"{where} is not a readable safetensors file ({type(err).__name__}: {err})") from None


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    return hashlib.sha256(weights_bytes(state)).hexdigest()


def checkpoint_weights_sha256(path: str | Path) -> str:
    """The sha256 of a checkpoint's weights as safetensors bytes: the same for best.pt and its bundled copy."""
    return weights_sha256(load_checkpoint(path)[WEIGHTS_KEY])


def split_checkpoint(ckpt: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, the rest as plain JSON-ready types); a checkpoint holding tensors elsewhere is refused."""
    rest = {key: value for key, value in ckpt.items() if key != WEIGHTS_KEY}
    if _holds_tensor(rest):
        raise CheckpointError("the checkpoint holds tensors besides its weights (optimizer state?); use best.pt")
    return ckpt[WEIGHTS_KEY], finite_or_null(rest)


def join_checkpoint(weights: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint as save_checkpoint takes it (its format marker is added there)."""
    state = {key: value for key, value in rest.items() if key not in ("format", "format_version")}
    return {**state, WEIGHTS_KEY: weights}


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_tensor(v) for v in value)
    return False
