"""The thread policy: the CPUs a process may use, the user's variables, a busy machine, worker shares."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from mrnet.errors import MRNetError
from mrnet.threads import cgroup_cpus, env_threads, parse_threads, plan_threads, quota_cpus, usable_cpus


def test_quota_lines_of_cgroup_v2() -> None:
    assert quota_cpus("max 100000\n") is None
    assert quota_cpus("50000 100000\n") == 0.5
    assert quota_cpus("200000 100000") == 2.0


def test_cgroup_v2_file_and_v1_files(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpus(tmp_path) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpus(v1) == 0.5
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # no limit
    assert cgroup_cpus(v1) is None
    assert cgroup_cpus(tmp_path / "absent") is None


def test_usable_cpus_is_the_affinity_cut_to_the_quota() -> None:
    assert usable_cpus({0}) == 1
    assert usable_cpus({0, 1, 2, 3}, quota=None) == 4
    assert usable_cpus({0, 1, 2, 3}, quota=0.5) == 1  # half a core: one thread, never zero
    assert usable_cpus({0, 1, 2, 3}, quota=2.5) == 2


def test_auto_on_one_cpu_picks_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    plan = plan_threads("auto", environ={}, busy=None)
    assert plan.threads == 1
    assert plan.describe() == "1 thread: 1 CPU"


def test_environment_variables_win_over_auto() -> None:
    assert env_threads({"OMP_NUM_THREADS": "3"}) == ("OMP_NUM_THREADS", 3)
    assert env_threads({"OMP_NUM_THREADS": "", "MKL_NUM_THREADS": "2"}) == ("MKL_NUM_THREADS", 2)
    assert env_threads({"OMP_NUM_THREADS": "zero"}) is None
    plan = plan_threads("auto", environ={"OMP_NUM_THREADS": "3"}, cpus=8, busy=0.0)
    assert (plan.threads, plan.reason) == (3, "OMP_NUM_THREADS=3")
    assert plan_threads("2", environ={"OMP_NUM_THREADS": "3"}).threads == 2  # an explicit --threads wins over both


def test_busy_cpus_are_left_to_their_work() -> None:
    assert plan_threads("auto", environ={}, cpus=2, busy=0.2).threads == 2
    assert plan_threads("auto", environ={}, cpus=2, busy=1.0).describe() == "1 thread: 2 CPUs, load 1.0"
    assert plan_threads("auto", environ={}, cpus=2, busy=4.8).threads == 1
    assert plan_threads("auto", environ={}, cpus=16, busy=6.0).threads == 10


def test_threads_are_shared_among_workers() -> None:
    plan = plan_threads("auto", workers=2, environ={}, cpus=8, busy=0.0)
    assert plan.threads == 4 and plan.reason.endswith("shared by 2 workers")
    assert plan_threads("auto", workers=4, environ={}, cpus=2, busy=0.0).threads == 1
    assert plan_threads("6", workers=2).threads == 3


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_thread_counts_are_refused(bad: str) -> None:
    with pytest.raises(MRNetError, match=f"--threads {bad}"):
        parse_threads(bad)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset is not installed")
def test_auto_under_taskset_uses_one_thread() -> None:
    """A process pinned to one core by its launcher (taskset, Slurm) runs one thread."""
    code = "from mrnet.threads import apply_threads, plan_threads; import torch; apply_threads(plan_threads()); "
    code += "print(torch.get_num_threads())"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
