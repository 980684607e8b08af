"""One writer per run folder: a second run is refused with the first one's PID; dead holders do not block."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST, folder_snapshot, run_script

from mrnet.errors import MRNetError
from mrnet.lock import RunLock


def test_second_holder_is_refused_with_the_pid(tmp_path):
    with (
        RunLock(tmp_path / "run"),
        pytest.raises(MRNetError, match=rf"in use by another run \(PID {os.getpid()}\)"),
    ):
        RunLock(tmp_path / "run").acquire()
    with RunLock(tmp_path / "run"):  # released on exit
        pass


def test_a_lock_file_left_by_a_dead_process_does_not_block(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.lock").write_text("999999\n")  # what a killed run leaves: the file, but no lock
    with RunLock(folder) as lock:
        assert lock.path.read_text().strip() == str(os.getpid())
    assert not (folder / "run.lock").exists()


def test_a_folder_made_only_for_the_lock_is_removed_again(tmp_path):
    with RunLock(tmp_path / "models" / "acl-sagittal"):
        assert (tmp_path / "models" / "acl-sagittal").is_dir()
    assert not (tmp_path / "models" / "acl-sagittal").exists()


HOLD = """
import sys, time
from mrnet.lock import RunLock
lock = RunLock(sys.argv[1], what="training run").acquire()
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_a_second_train_plane_on_the_same_folder_is_refused(tiny_data, tmp_path):
    models = tmp_path / "models"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(models / "acl-sagittal")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        before = folder_snapshot(models)
        result = run_script(
            "train_plane.py", "--task", "acl", "--plane", "sagittal", "--data-dir", str(tiny_data),
            "--models-dir", str(models), "--epochs", "1", *FAST,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert f"is in use by another training run (PID {holder.pid})" in result.stderr
        assert folder_snapshot(models) == before
    finally:
        holder.kill()
        holder.wait()


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.slow
def test_sigterm_to_train_all_stops_its_workers(tiny_data, tmp_path):
    models = tmp_path / "models"
    sweep = subprocess.Popen(
        [sys.executable, "scripts/train_all.py", "--data-dir", str(tiny_data), "--models-dir", str(models),
         "--tasks", "acl", "--epochs", "50", "--patience", "0", "--devices", "cpu", "cpu", *FAST],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            workers = children_of(sweep.pid)
        assert len(workers) == 2, "the two workers did not start"
        time.sleep(3)  # let them get into training
        sweep.send_signal(signal.SIGTERM)
        _, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 128 + signal.SIGTERM, err
    assert "continue with --resume" in err
    assert not [pid for pid in workers if alive(pid)]
    assert "training on cpu" not in "".join(
        (models / f"acl-{p}" / "train.log").read_text()
        for p in ("axial", "coronal", "sagittal")
        if (models / f"acl-{p}" / "train.log").exists()
    )


def test_a_full_disk_while_taking_the_lock_is_a_message_and_leaves_no_file(tmp_path, monkeypatch):
    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(MRNetError, match=r"cannot take the lock .*No space left on device"):
        RunLock(tmp_path / "run").acquire()
    monkeypatch.undo()
    assert not (tmp_path / "run" / "run.lock").exists()
    with RunLock(tmp_path / "run"):  # nothing left behind blocks the next run
        pass
