"""Warm Celery workers: the libraries the stages load, imported once in the worker's own process.

On Linux, Airflow forks every task from the worker process that runs it (the task SDK's
supervisor), so whatever the worker has imported, a task starts with. Without this each task
imports again what its stage needs: the gate's libraries and the watermark model cost about 9 s
a task on these machines (librosa's numba functions, Great Expectations, torch and PerthNet),
measured in a forked child of a cold and of a warmed process (0.02 s). The worker pays it once
at start and holds about 0.7 GB more, shared with its tasks page by page.

A Celery worker warms up (`airflow celery worker …`); the scheduler, which reads the same
Celery settings, does not, unless its executor is `make airflow`'s LocalExecutor, which forks its
workers from the scheduler (operators/local_executor.py). `SONGMILL_PRELOAD=0` turns both off.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence

log = logging.getLogger("songmill.preload")

# What the stages import when they run (songmill/engine/track_stages.py and the rooms below it).
STAGE_LIBRARIES = (
    "numpy",
    "scipy.signal",
    "soundfile",
    "torch",
    "onnxruntime",
    "pyworld",
    "pedalboard",
    "music21",
    "librosa.beat",
    "librosa.onset",
    "librosa.feature",
    "great_expectations",
    "c2pa",
    "songmill.engine.tasks",
    "songmill.engine.track_stages",
)
# Imported through a loader of ours: librosa's beat tracker then reads its numba code from the cache.
IMPORTED_BY = {"librosa.beat": ("qc.musical", "import_librosa")}
WATERMARK_MODEL = "perth-implicit"


def is_celery_worker(argv: Sequence[str]) -> bool:
    """`airflow celery worker …` (the process that forks the tasks), not the scheduler or a CLI."""
    words = [os.path.basename(a) for a in argv]
    return "celery" in words and "worker" in words


def preload(modules: Sequence[str] = STAGE_LIBRARIES) -> dict[str, float]:
    """Import `modules` and load the watermark model; seconds each took. A library that fails
    to import is logged and left to the task that needs it (which then says why in its own log)."""
    from songmill.core.quiet import warnings_silenced

    took: dict[str, float] = {}
    with warnings_silenced():  # pyworld's pkg_resources notice, numba's: the tasks log theirs
        for name in modules:
            start = time.perf_counter()
            try:
                if name in IMPORTED_BY:
                    module, loader = IMPORTED_BY[name]
                    getattr(importlib.import_module(module), loader)()
                else:
                    importlib.import_module(name)
            except Exception as err:  # noqa: BLE001 - a warm-up never stops the worker
                log.warning("preloading %s failed (%s); tasks will import it themselves", name, err)
                continue
            took[name] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        try:
            from models.registry import ModelRegistry
            from models.watermark.perth import load_watermarker

            load_watermarker(ModelRegistry.load().resolve(WATERMARK_MODEL, commercial=False))
            took[WATERMARK_MODEL] = round(time.perf_counter() - start, 2)
        except Exception as err:  # noqa: BLE001
            log.warning("preloading the watermark model failed (%s); the master and qc tasks will load it", err)
    log.info("songmill worker warmed in %.1f s: %s", sum(took.values()), took)
    return took


def preload_enabled() -> bool:
    """Whether warm-ups happen at all (`SONGMILL_PRELOAD=0` turns them off)."""
    return os.environ.get("SONGMILL_PRELOAD", "1") != "0"


def preload_if_worker(argv: Sequence[str] | None = None) -> dict[str, float] | None:
    if not preload_enabled() or not is_celery_worker(sys.argv if argv is None else argv):
        return None
    return preload()
