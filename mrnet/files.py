"""Writing files so that a crash, a kill or a full disk never leaves a half-written one.

Every output of the project (checkpoints, tables, configs, reports) goes through
atomic_write: a temporary file in the same folder, then an atomic rename.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MRNetError

TEMP_SUFFIX = ".tmp"


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder, then rename over `path`.

    A crash or a full disk mid-write leaves the previous file untouched: os.replace is
    atomic on POSIX, and the temporary file is removed when writing fails.
    """
    atomic_write_many({Path(path): write})


def save_figure(figure: Any, path: str | Path) -> Path:
    """A matplotlib figure written atomically in the format its suffix names, its folder made first.

    A report or heatmap cut short by a crash or a full disk keeps the previous picture.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: figure.savefig(tmp, format=path.suffix.lstrip(".") or "png"))
    return path


def atomic_write_many(writes: Mapping[Path, Callable[[Path], object]]) -> None:
    """Write every file to its temporary first, then rename them all: outputs that belong together change together.

    A failure while writing (a full disk, a bad value) removes every temporary and leaves
    all previous files as they were; only the renames, which do not need disk space, come after.
    """
    temps: dict[Path, Path] = {}
    try:
        for path, write in writes.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
            os.close(fd)
            temps[path] = Path(tmp_name)
            write(temps[path])
            os.chmod(temps[path], 0o666 & ~_current_umask())  # mkstemp makes 0600; give the file normal permissions
            with open(temps[path], "rb") as handle:
                os.fsync(handle.fileno())
    except BaseException as err:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        failure = write_failure(err)
        if failure is None:
            raise
        failed = next(reversed(temps), None) or next(iter(writes))
        raise MRNetError(
            f"could not write {failed} ({failure}); the previous version of the file, if any, is intact"
        ) from None
    for path, tmp in temps.items():
        os.replace(tmp, path)
    for folder in {path.parent for path in temps}:
        _fsync_folder(folder)


def write_failure(err: BaseException) -> str | None:
    """Why a write failed, when `err` is (or wraps) an I/O error; None for anything else.

    torch.save reports a full disk as a RuntimeError from its C++ stream writer; the
    OSError of the Python file object it wrote to is kept as the error's context.
    """
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError):
            return seen.strerror or str(seen)
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, RuntimeError) and any(k in str(err) for k in ("PytorchStreamWriter", "inline_container")):
        return f"the checkpoint writer failed: {str(err).splitlines()[0]}"
    return None


def json_text(data: Any) -> str:
    """Strict JSON (no bare NaN, which other readers reject): an undefined number is written as null."""
    return json.dumps(finite_or_null(data), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"


def finite_or_null(data: Any) -> Any:
    """The same data with every NaN or infinite float (numpy's included) replaced by None."""
    if isinstance(data, dict):
        return {key: finite_or_null(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite_or_null(value) for value in data]
    if isinstance(data, float | np.floating):
        return float(data) if math.isfinite(data) else None
    if isinstance(data, np.ndarray):
        return finite_or_null(data.tolist())
    return data


def write_json(path: str | Path, data: Any) -> None:
    text = json_text(data)
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
    """Fail before hours of work, not after them, when outputs cannot be saved.

    Leaves no trace: folders it had to create for the probe are removed again, so a command
    that fails later on its inputs has written nothing.
    """
    created = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise MRNetError(f"output folder {folder} is not writable ({err.strerror or err}); set {option}") from None
    finally:
        for made in created:  # deepest first; a folder someone else has written into meanwhile stays
            with contextlib.suppress(OSError):
                made.rmdir()


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
