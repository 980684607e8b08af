"""Writing files so that a crash, a kill or a full disk never leaves a half-written one.

Every output of the project (checkpoints, tables, configs, reports) goes through
atomic_write: a temporary file in the same folder, then an atomic rename.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import MRNetError

TEMP_SUFFIX = ".tmp"


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


def write_json(path: str | Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def temporary_leftovers(folder: str | Path) -> list[Path]:
    """Temporary files atomic_write left behind when its process was killed mid-write."""
    return sorted(Path(folder).glob(f".*{TEMP_SUFFIX}"))


def remove_temporary_leftovers(folder: str | Path) -> int:
    """Delete them before a resumed run writes again; returns how many there were."""
    leftovers = temporary_leftovers(folder)
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)


def check_writable(folder: Path, option: str = "--models-dir") -> None:
    """Fail before hours of work, not after them, when outputs cannot be saved."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise MRNetError(f"output folder {folder} is not writable ({err.strerror or err}); set {option}") from None


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
