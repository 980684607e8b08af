"""Shared fixtures: tiny MRNet-layout datasets written to a temporary folder."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mrnet import PLANES, TASKS  # noqa: E402


def write_tiny_layout(root: Path, n_train: int = 12, n_valid: int = 8, size: int = 64,
                      slices: tuple[int, int] = (3, 6), seed: int = 0) -> Path:
    """A minimal MRNet-v1.0 folder: noise volumes, positives carry a bright square.

    Labels alternate so every task has both classes in both splits; the square makes the
    task learnable in an epoch or two, which keeps training tests short.
    """
    rng = np.random.default_rng(seed)
    ids = {"train": range(0, n_train), "valid": range(n_train, n_train + n_valid)}
    for split, cases in ids.items():
        rows = []
        for case in cases:
            label = case % 2
            for plane in PLANES:
                folder = root / split / plane
                folder.mkdir(parents=True, exist_ok=True)
                s = int(rng.integers(slices[0], slices[1] + 1))
                volume = rng.integers(0, 90, size=(s, size, size), dtype=np.uint8)
                if label:
                    lo, hi = size // 3, size // 3 + size // 4
                    volume[:, lo:hi, lo:hi] = 240
                np.save(folder / f"{case:04d}.npy", volume)
            rows.append(f"{case:04d},{label}")
        for task in TASKS:
            (root / f"{split}-{task}.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_tiny_layout(tmp_path / "MRNet-v1.0")


def folder_snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file below a folder: shows whether a command wrote anything."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}
