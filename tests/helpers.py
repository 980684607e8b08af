"""Helpers shared by the tests: tiny datasets on disk, training configs, running the real commands, folder snapshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mrnet import PLANES, TASKS
from mrnet.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

# Options that make training commands quick on the CPU: from scratch, a learning rate that moves.
FAST = ["--no-pretrained", "--lr", "1e-4", "--weight-decay", "1e-4", "--device", "cpu"]


def fast_and(*args: str) -> list[str]:
    """`args`, then the FAST options they do not give themselves (the commands refuse an option given twice)."""
    given = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    quick, index = [], 0
    while index < len(FAST):
        takes_value = index + 1 < len(FAST) and not FAST[index + 1].startswith("--")
        option = FAST[index : index + (2 if takes_value else 1)]
        if option[0] not in given:
            quick += option
        index += len(option)
    return [*args, *quick]


def train_config(data: Path, out: Path, **overrides) -> TrainConfig:
    """A quick CPU recipe for the ACL sagittal model (from scratch, one epoch); keyword arguments override fields."""
    values = dict(
        task="acl",
        plane="sagittal",
        data_dir=str(data),
        models_dir=str(out),
        epochs=1,
        lr=1e-4,
        weight_decay=1e-4,
        pretrained=False,
        seed=0,
        device="cpu",
    )
    values.update(overrides)
    return TrainConfig(**values)


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}


def run_python(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run this interpreter with `args` in a new process and capture what it prints; `env` adds variables."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=python_env(env),
        timeout=timeout,
    )


def run_script(script: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """Run scripts/<script> as a user would, from the clone, and capture what it prints."""
    return run_python(str(ROOT / "scripts" / script), *args, **kwargs)


def start_script(script: str, *args: str) -> subprocess.Popen:
    """Start scripts/<script> without waiting for it (to interrupt it, or to run two at once)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )


def run_training(script: str, data: Path, models: Path, *args: str) -> subprocess.CompletedProcess:
    """A training command (train_plane.py, train_all.py) on `data` into `models`, with the quick CPU options."""
    return run_script(script, *fast_and("--data-dir", str(data), "--output-dir", str(models), *args))


def write_tiny_layout(
    root: Path, n_train: int = 12, n_valid: int = 8, size: int = 64, slices: tuple[int, int] = (3, 6), seed: int = 0
) -> Path:
    """A minimal MRNet-v1.0 folder: noise volumes, positives carry a bright square.

    Labels alternate so every task has both classes in both splits; the square makes the
    task learnable in an epoch or two, which keeps training tests short.
    """
    rng = np.random.default_rng(seed)
    ids = {"train": range(0, n_train), "valid": range(n_train, n_train + n_valid)}
    for split, cases in ids.items():
        for plane in PLANES:
            (root / split / plane).mkdir(parents=True, exist_ok=True)
        rows = []
        for case in cases:
            label = case % 2
            for plane in PLANES:
                folder = root / split / plane
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


def folder_snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file below a folder: shows whether a command wrote anything."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def known_probabilities(n: int, seed: int) -> pd.DataFrame:
    """Sagittal carries the signal, coronal a little, axial none; each plane's logit beside its probability."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    table = pd.DataFrame(
        {
            "case": [f"{i:04d}" for i in range(n)],
            "label": labels,
            "axial": rng.random(n),
            "coronal": np.clip(0.3 * labels + 0.7 * rng.random(n), 0, 1),
            "sagittal": np.clip(0.8 * labels + 0.2 * rng.random(n), 0, 1),
        }
    )
    return with_logits(table)


def with_logits(table: pd.DataFrame) -> pd.DataFrame:
    """The planes' logits as inference gives them beside the probabilities (<plane>_logit), from the probabilities."""
    for plane in ("axial", "coronal", "sagittal"):
        p = np.clip(table[plane].to_numpy(dtype=np.float64), 1e-12, 1 - 1e-12)
        table[f"{plane}_logit"] = np.log(p / (1 - p))
    return table


def valid_input_csv(run, path: Path) -> Path:
    """The competition's input CSV for every valid exam of a tiny run's data: three rows per exam."""
    cases = sorted(p.stem for p in (run.data_dir / "valid" / "axial").glob("*.npy"))
    rows = [str(run.data_dir / "valid" / plane / f"{case}.npy") for case in cases for plane in PLANES]
    path.write_text("\n".join(rows) + "\n")
    return path
