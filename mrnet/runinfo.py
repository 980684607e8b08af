"""What a run was made with: its config, package versions and the project's git revision."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .files import write_json

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "joblib", "tensorboardX")


def git_revision(root: Path = PROJECT_ROOT) -> str:
    """The commit the code came from, with '+dirty' when it has uncommitted changes."""
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment(device: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "mrnet": __version__,
        "git_revision": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "command": shlex.join(sys.argv),  # quoted, so it can be pasted back into a shell
    }
    if device is not None:
        info["device"] = device
    return info


def plain(config: Any) -> dict[str, Any]:
    return asdict(config) if is_dataclass(config) and not isinstance(config, type) else dict(config)


def save_run_info(folder: Path, config: Any, device: str | None = None) -> None:
    """config.json and environment.json next to a run's outputs."""
    write_json(folder / "config.json", plain(config))
    write_json(folder / "environment.json", environment(device))
