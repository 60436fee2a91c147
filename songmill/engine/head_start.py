"""Head starts: the part of a later stage's work that can begin before the stage can.

The gate's slowest measurement, the dry lead vocal against the score's melody (about 6.5 CPU
seconds for the demo), needs the vocals and the score, not the masters. So once the vocals have
run, the runner begins it while the mix and the master are made, and the gate reads back what
it kept (`StageContext.remembered`) instead of measuring the voice after them.

A head start runs in a process of its own (`python -m songmill.engine.head_start`, its work as JSON on stdin), not on a
thread: WORLD's analysis (DIO, Harvest) holds the GIL for seconds at a time, so on a thread it
would stall the master's threads instead of using the core they leave idle. The process starts
niced (HEAD_START_NICENESS, through `nice`), so on a busy machine the stages it runs beside, and
an edit's audition, take the CPU first. It writes what it makes into the artifact store only;
the runner waits for it before the stage's own wave begins, so the stage finds it there. One
that fails costs only time: the stage measures for itself, and the render logs a warning.

The runner begins none when stages run one at a time (`SONGMILL_OVERLAP_STAGES=0`, and so in a
render with `--jobs` > 1, whose cores already each render a track); none begins in a render the
cache serves whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from models.registry import ModelRegistry
from songmill.core.paths import PROJECT_ROOT
from songmill.core.store import ArtifactRef, ArtifactStore
from songmill.engine.stage import Stage, TrackJob, head_start_needed, run_head_start
from songmill.engine.task_data import TrackOutcome

log = logging.getLogger("songmill.engine.head_start")

HEAD_START_NICENESS = 19  # over the render's (the most there is): the stages it runs beside, and an edit's audition (10), come first
HEAD_START_GRACE_S = 10.0  # how long a stage's turn waits for its head start before stopping it (a busy machine starves a niced process)


class HeadStarts:
    """The head starts (`songmill.engine.stage.HeadStart`) of one render of a track, each begun
    once its inputs exist. `head_starts()` makes one, and stops what is left of them at the end."""

    def __init__(self, job: TrackJob, store_spec: str, *, store: ArtifactStore, registry: ModelRegistry) -> None:
        self.job, self.store_spec, self.store, self.registry = job, store_spec, store, registry
        self.begun: dict[str, Future] = {}  # stage name → its process's outcome
        self.decided: set[str] = set()  # stages whose head start was begun or found not needed
        self._processes: dict[str, subprocess.Popen] = {}
        self._watchers = ThreadPoolExecutor(thread_name_prefix=f"track{job.number}-head-start")  # each waits for one process

    def begin_due(self, outcome: TrackOutcome, later: Sequence[Stage]) -> list[str]:
        """Begin the head start of each of the `later` stages (those after the wave about to run)
        whose inputs all exist; the names begun. None before this render has computed a stage: a
        render the cache serves whole needs none."""
        if all(result.cached for result in outcome.results):
            return []
        refs = outcome.refs
        ready = [s for s in later if s.head_start is not None and s.name not in self.decided and all(name in refs for name in s.head_start.inputs)]
        self.decided.update(s.name for s in ready)
        due = [s for s in ready if self._needed(s, refs)]
        for stage in due:
            work = _work(stage.name, self.job, refs, self.store_spec)
            self._processes[stage.name] = process = _started()
            self.begun[stage.name] = self._watchers.submit(_finished, process, work)
        return [stage.name for stage in due]

    def wait_for(self, stages: Sequence[Stage]) -> None:
        """Wait for the head starts of `stages` (those begun), each at most HEAD_START_GRACE_S
        before it is stopped. One that failed costs only time: its stage does the work itself
        (and says what is wrong, if anything is)."""
        for stage in stages:
            future = self.begun.get(stage.name)
            if future is None:
                continue
            try:
                error = future.exception(timeout=HEAD_START_GRACE_S)
            except TimeoutError:
                self._processes[stage.name].kill()
                future.exception()
                error = RuntimeError(f"it was still running {HEAD_START_GRACE_S:g} s after its stage's turn came, and was stopped")
            if error is not None:
                log.warning("track %d: the head start of %s failed (%s); the stage does that work itself", self.job.number, stage.name, error)

    def _needed(self, stage: Stage, refs: dict) -> bool:
        """Whether the head start has work to do (`HeadStart.needed`), asked here before a
        process is started for it; an input it cannot read is left to the stage to report."""
        try:
            return head_start_needed(stage, self.job, refs, store=self.store, registry=self.registry)
        except Exception as err:  # noqa: BLE001 - the stage itself reads the same inputs and says what is wrong
            log.warning("track %d: no head start for %s (%s); the stage does that work itself", self.job.number, stage.name, err)
            return False

    def close(self) -> None:
        """Stop the head starts still running (the render ended before their stages: a stage
        failed, or it was interrupted) and wait for their processes to end."""
        for process in self._processes.values():
            if process.poll() is None:
                process.kill()
        self._watchers.shutdown(wait=True)


@contextlib.contextmanager
def head_starts(job: TrackJob, store_spec: str, *, store: ArtifactStore, registry: ModelRegistry) -> Iterator[HeadStarts]:
    """A `HeadStarts` for one render of `job` (`store` is the store `store_spec` names, opened);
    no process it started outlives the block."""
    early = HeadStarts(job, store_spec, store=store, registry=registry)
    try:
        yield early
    finally:
        early.close()


def _work(stage_name: str, job: TrackJob, refs: dict[str, ArtifactRef], store_spec: str) -> bytes:
    """What a head start process reads on its stdin (`main`): JSON, never a pickle."""
    job_fields = {"spec": job.spec.model_dump(mode="json"), "index": job.index, "seed": job.seed, "commercial": job.commercial}
    return json.dumps({"stage": stage_name, "job": job_fields, "refs": {name: ref.to_dict() for name, ref in refs.items()}, "store": store_spec}).encode()


def _started() -> subprocess.Popen:
    """A head start process, niced from its first instruction (its start-up, too, yields to the
    render), reading its work on stdin. `-P`: the working folder's own `models` or `qc` never
    shadow the project's; PYTHONPATH finds songmill, installed or not."""
    command = [sys.executable, "-P", "-m", "songmill.engine.head_start"]
    nice = shutil.which("nice")
    if nice is not None:
        command = [nice, "-n", str(HEAD_START_NICENESS), *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _finished(process: subprocess.Popen, work: bytes) -> None:
    """Give `process` its work and wait for it; raises RuntimeError with its last word if it fails."""
    _, said = process.communicate(work)
    if process.returncode < 0:
        raise RuntimeError(f"its process was killed by {_signal_name(-process.returncode)}")
    if process.returncode != 0:
        lines = [line for line in said.decode(errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"its process exited with status {process.returncode}: {lines[-1] if lines else 'nothing said'}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name
        return f"signal {number}"


def main() -> None:
    """The head start process: reads its work (`_work`: the stage, the track's job, the artifacts
    and the store) on stdin from the render that began it, and runs that stage's head start."""
    from songmill.core.spec import ReleaseSpec
    from songmill.core.store import open_store
    from songmill.engine.track_stages import TRACK_STAGES

    work = json.load(sys.stdin)
    fields = work["job"]
    job = TrackJob(ReleaseSpec.model_validate(fields["spec"]), fields["index"], fields["seed"], fields["commercial"])
    refs = {name: ArtifactRef.from_dict(ref) for name, ref in work["refs"].items()}
    stage = next(s for s in TRACK_STAGES.stages if s.name == work["stage"])
    run_head_start(stage, job, refs, store=open_store(work["store"]), registry=ModelRegistry.load())


if __name__ == "__main__":
    main()
