"""A LocalExecutor whose task processes start warm: the stages' libraries imported once.

    AIRFLOW__CORE__EXECUTOR=operators.local_executor.WarmLocalExecutor   # scripts/airflow_local.py sets it

Where processes start by fork (Linux, Python's default there), Airflow's LocalExecutor forks its
worker processes from the scheduler when it starts, and each worker forks a process per task
(the task SDK's supervisor). A task therefore starts with what the scheduler had imported.
This executor imports the stages' libraries and loads the watermark model in the scheduler just
before the workers are forked (`operators.preload.preload`, the warm-up the Celery workers do),
so no task pays for them again: on these machines that is most of what a task spent before its
stage (librosa's numba functions, Great Expectations, torch and PerthNet in the gate and the
master; music21 in compose; ONNX Runtime in the vocals). Where processes start by spawn (macOS;
AIRFLOW__CORE__MP_START_METHOD=spawn) nothing is inherited, and it warms nothing up.

What it costs: the scheduler starts about 10 s later and holds about 0.7 GB more, shared page by
page with the workers and their tasks. `SONGMILL_PRELOAD=0` turns the warm-up off (the executor
is then Airflow's LocalExecutor). Once started it logs STARTED_MESSAGE, which `make airflow`
waits for before it says the scheduler is ready.
"""

from __future__ import annotations

from airflow.executors.local_executor import LocalExecutor

from operators.preload import preload, preload_enabled

STARTED_MESSAGE = "songmill: the LocalExecutor has started"


class WarmLocalExecutor(LocalExecutor):
    """Airflow's LocalExecutor, with the stages' libraries imported before its workers fork."""

    def start(self) -> None:
        # only where the workers are forked (Linux): a spawned worker would import everything again
        warm = self.is_mp_using_fork and preload_enabled()
        if warm:
            preload()
        super().start()
        self.log.info("%s (warmed up: %s)", STARTED_MESSAGE, warm)
