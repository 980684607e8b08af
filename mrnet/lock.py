"""One writer per run folder: a lock held for the whole run, released by the OS on any exit.

`fcntl.flock` on `<run>/run.lock`: the kernel drops the lock when the holding process ends,
however it ends (an exception, SIGTERM, SIGKILL, a power cut), so a lock left by a dead
process never blocks a new run. The holder writes its PID into the file only so that a
refused second run can say which process holds the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from .errors import MRNetError


class RunLock:
    """Exclusive, non-blocking lock on a folder; a second holder is refused with the first one's PID."""

    def __init__(self, folder: str | Path, name: str = "run.lock", what: str = "run") -> None:
        self.folder = Path(folder)
        self.path = self.folder / name
        self.what = what
        self._fd: int | None = None
        self._made_folder = False

    def acquire(self) -> RunLock:
        self._made_folder = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise MRNetError(
                        f"{self.folder} is in use by another {self.what} (PID {self._holder()}); "
                        "wait for it to finish or stop it, then try again"
                    ) from None
                # The previous holder may have removed the file between our open and flock: lock the current one.
                if _same_file(fd, self.path):
                    break
                os.close(fd)
        except OSError as err:
            raise MRNetError(
                f"output folder {self.folder} is not writable ({err.strerror or err}); set --models-dir"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as err:  # a full disk or a quota: give the lock up and leave nothing behind
            self._fd = fd
            self.release()
            raise MRNetError(
                f"cannot take the lock {self.path} ({err.strerror or err}); free some space and try again"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock; remove the file, and the folder if this lock created it and nothing else was written."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked, so no other process holds this inode
        os.close(self._fd)
        self._fd = None
        if self._made_folder:
            with contextlib.suppress(OSError):
                self.folder.rmdir()

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        held, current = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)


def lock_holder(folder: str | Path, name: str = "run.lock") -> str | None:
    """The PID (as text) of the live process holding `<folder>/<name>`, or None when no process holds it.

    Probes with a shared lock taken and dropped at once, without creating the file: a lock
    file left by a dead process is not held, so it blocks nothing.
    """
    path = Path(folder) / name
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            return path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"
    finally:
        os.close(fd)  # closing drops the probe's lock too
    return None
