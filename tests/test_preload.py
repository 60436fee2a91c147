"""Warm Celery workers (operators/preload.py): only `airflow celery worker` warms up, and a task
forked from a warmed process finds the stages' libraries and the watermark model loaded."""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import pytest

from operators.preload import is_celery_worker, preload_if_worker

PROJECT = Path(__file__).resolve().parents[1]


def test_only_a_celery_worker_warms_up(monkeypatch):
    assert is_celery_worker(["/venv/bin/airflow", "celery", "worker", "--queues", "gpu"])
    assert not is_celery_worker(["/venv/bin/airflow", "scheduler"]) and not is_celery_worker(["airflow", "celery", "flower"])
    monkeypatch.setenv("SONGMILL_PRELOAD", "0")
    assert preload_if_worker(["airflow", "celery", "worker"]) is None


@pytest.mark.long
def test_a_task_forked_from_a_warm_worker_starts_with_everything_loaded():
    """A child process, warmed and then forked as Airflow forks a task: the grandchild imports
    nothing the stages need (sys.modules already has them) and finds the watermark model cached."""
    import subprocess

    probe = (
        "import os, sys\n"
        "from operators.preload import preload_if_worker, STAGE_LIBRARIES\n"
        "took = preload_if_worker(['airflow', 'celery', 'worker'])\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    from models.watermark import perth\n"
        "    missing = [m for m in STAGE_LIBRARIES if m not in sys.modules]\n"
        "    os._exit(0 if not missing and perth._loaded else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(sorted(took), os.waitstatus_to_exitcode(status))\n"
    )
    env = {**os.environ, "SONGMILL_PRELOAD": "1"}
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith(" 0") and "perth-implicit" in result.stdout and "great_expectations" in result.stdout, result.stdout


@pytest.mark.long
@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="the warm-up is inherited only where processes fork")
def test_the_warm_local_executor_loads_the_stages_libraries_before_it_forks_its_workers(tmp_path, monkeypatch):
    """`make airflow`'s executor (scripts/airflow_local.py), loaded by Airflow from its path: its
    start() warms up while it has no worker yet, then forks them (they and their tasks inherit
    the imports); with SONGMILL_PRELOAD=0 it is the plain LocalExecutor."""
    import subprocess

    monkeypatch.syspath_prepend(str(PROJECT / "scripts"))
    from airflow_local import WARM_LOCAL_EXECUTOR

    probe = (
        "import operators.local_executor as warm\n"
        "from airflow.executors.executor_loader import ExecutorLoader\n"
        "executor = ExecutorLoader.get_default_executor()\n"
        "seen = []\n"
        "warm.preload = lambda: seen.append(len(getattr(executor, 'workers', {})))\n"
        "executor.start()\n"
        # one write: the workers just forked log to the same stdout, and print's pieces let their lines in between
        "import os\n"
        "os.write(1, f'RESULT {type(executor).__name__} {seen} {len(executor.workers)}\\n'.encode())\n"
        "executor.end()\n"
    )
    for preload, expected in (("1", "RESULT WarmLocalExecutor [0] 2"), ("0", "RESULT WarmLocalExecutor [] 2")):
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__CORE__EXECUTOR": WARM_LOCAL_EXECUTOR,
            "AIRFLOW__CORE__PARALLELISM": "2",
            "SONGMILL_PRELOAD": preload,
        }
        result = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, env=env, timeout=120, cwd=PROJECT)
        assert result.returncode == 0, result.stderr[-2000:]
        assert [line for line in result.stdout.splitlines() if line.startswith("RESULT")] == [expected], result.stdout[-1000:]


def test_make_airflow_waits_for_the_executor_this_start_began(tmp_path, monkeypatch):
    """The scheduler answers healthy before its executor has warmed up: `make airflow` is ready
    only once the scheduler's log, since this start, says the executor started (a line from an
    earlier start in the same home does not count; a log cut short is read from its beginning)."""
    monkeypatch.syspath_prepend(str(PROJECT / "scripts"))
    from airflow_local import WARM_LOCAL_EXECUTOR, LocalAirflow, executor_ready

    from operators.local_executor import STARTED_MESSAGE

    log = tmp_path / "process-logs" / "scheduler.log"
    log.parent.mkdir()
    log.write_text(f"earlier start: {STARTED_MESSAGE}\n")
    airflow = LocalAirflow(
        tmp_path, 8080, {"AIRFLOW__CORE__EXECUTOR": WARM_LOCAL_EXECUTOR}, processes={"scheduler": None}, log_offsets={"scheduler": log.stat().st_size}
    )
    assert not executor_ready(airflow)
    with open(log, "a") as lines:
        lines.write("importing the stages' libraries\n")
    assert not executor_ready(airflow)
    with open(log, "a") as lines:
        lines.write(f"[info] {STARTED_MESSAGE} (warmed up: True)\n")
    assert executor_ready(airflow)
    log.write_text(f"{STARTED_MESSAGE}\n")  # rotated: shorter than the offset
    assert executor_ready(airflow)
    assert executor_ready(LocalAirflow(tmp_path, 8080, {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}, processes={"scheduler": None}))


def test_make_airflow_gives_the_gpu_pool_one_slot_with_a_gpu_or_every_slot_without_one(tmp_path, monkeypatch):
    """The `gpu` pool `make airflow` creates: one slot where the tasks see a GPU; with none, as
    many as the executor's slots (the vocals then run on the cores like any stage, and a pool
    of one made a batch's songs queue for each other's vocals); SONGMILL_GPU_SLOTS overrides both,
    and a value that is not a whole number of slots is refused in one sentence naming it."""
    monkeypatch.syspath_prepend(str(PROJECT / "scripts"))
    for name in ("SONGMILL_GPU_SLOTS", "AIRFLOW__CORE__PARALLELISM", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    from airflow_local import airflow_environment, gpu_slots

    devices = tmp_path / "dev"
    devices.mkdir()
    env = airflow_environment(tmp_path / "home", 8080, extra={"AIRFLOW__CORE__PARALLELISM": "3"})
    assert gpu_slots(env, devices=devices) == 3
    (devices / "nvidiactl").touch()  # the driver's control device is not a GPU
    assert gpu_slots(env, devices=devices) == 3
    for name in ("nvidia0", "nvidia1"):
        (devices / name).touch()
    assert gpu_slots(env, devices=devices) == 1  # the neural stages run on the first GPU, one at a time
    assert gpu_slots({**env, "CUDA_VISIBLE_DEVICES": ""}, devices=devices) == 3  # GPUs hidden from the tasks
    assert gpu_slots({**env, "CUDA_VISIBLE_DEVICES": "1"}, devices=tmp_path) == 1
    assert gpu_slots({**env, "SONGMILL_GPU_SLOTS": "4"}, devices=devices) == 4
    for wrong in ("two", "0", "-1", "²"):
        with pytest.raises(RuntimeError, match=rf"^SONGMILL_GPU_SLOTS is '{wrong}'; set it to how many"):
            gpu_slots({**env, "SONGMILL_GPU_SLOTS": wrong}, devices=devices)
    # one task slot more than cores (the launcher says why)
    assert airflow_environment(tmp_path / "home", 8080)["AIRFLOW__CORE__PARALLELISM"] == str((os.cpu_count() or 1) + 1)


def test_every_songmill_task_flushes_denormals_before_it_executes():
    """Airflow's task runner calls an operator's own `pre_execute` before `execute`, in the same
    thread; SongmillOperator's sets the flags `flush_denormals` sets, so a task's steps outside
    its stages (a delivery's read-backs) get them too. In a fresh process."""
    import platform
    import subprocess

    if platform.machine() != "x86_64" or platform.libc_ver()[0] != "glibc":
        pytest.skip("denormals are flushed on x86-64 with glibc only")
    probe = (
        "import numpy as np\n"
        "from operators.hooks import SongmillOperator\n"
        "class Probe(SongmillOperator):\n"
        "    def execute(self, context):\n"
        "        return None\n"
        "tiny = np.array([1e-39], np.float32)\n"
        "before = float((tiny * np.float32(1))[0])\n"
        "Probe(task_id='probe').pre_execute({})\n"
        "print(before > 0, float((tiny * np.float32(1))[0]))\n"
    )
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, cwd=PROJECT, timeout=300)
    assert done.returncode == 0 and done.stdout.split() == ["True", "0.0"], done.stdout + done.stderr[-2000:]
