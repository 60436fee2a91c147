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

Not begun when stages run one at a time (`SONGMILL_OVERLAP_STAGES=0`, and so in a render with
`--jobs` > 1, whose cores already each render a track), nor in a render the cache serves whole.
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
from pathlib import Path

from models.registry import ModelRegistry
from songmill.core.store import ArtifactRef, ArtifactStore
from songmill.engine.stage import Stage, TrackJob, head_start_needed, run_head_start
from songmill.engine.task_data import TrackOutcome

log = logging.getLogger("songmill.engine.head_start")

HEAD_START_NICENESS = 19  # over the render's (the most there is): the stages it runs beside, and an edit's audition (10), come first
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where the process finds songmill, installed or not


class HeadStarts:
    """The head starts (`songmill.engine.stage.HeadStart`) of one render of a track, each begun
    once the stage it waits for has run. `head_starts()` makes one and waits for them all."""

    def __init__(self, job: TrackJob, store_spec: str, *, store: ArtifactStore, registry: ModelRegistry) -> None:
        self.job, self.store_spec, self.store, self.registry = job, store_spec, store, registry
        self.begun: dict[str, Future] = {}
        self._watchers = ThreadPoolExecutor(thread_name_prefix=f"track{job.number}-head-start")  # each waits for one process

    def begin_due(self, outcome: TrackOutcome, upcoming: Sequence[Stage]) -> list[str]:
        """Begin the head start of each of `upcoming` whose inputs all exist; the names begun. None
        before this render has computed a stage: a render the cache serves whole needs none."""
        from songmill.engine.runner import overlapping_stages

        if not overlapping_stages() or all(result.cached for result in outcome.results):
            return []
        refs = outcome.refs
        due = [s for s in upcoming if s.head_start is not None and s.name not in self.begun and all(name in refs for name in s.head_start.inputs)]
        due = [s for s in due if self._needed(s, refs)]
        for stage in due:
            work = _work(stage.name, self.job, refs, self.store_spec)
            self.begun[stage.name] = self._watchers.submit(_in_a_process, work)
        return [stage.name for stage in due]

    def wait_for(self, stages: Sequence[Stage]) -> None:
        """Wait for the head starts of `stages` (those begun). One that failed costs only time:
        its stage does the work itself (and says what is wrong, if anything is)."""
        for stage in stages:
            future = self.begun.get(stage.name)
            error = future.exception() if future is not None else None  # waits for it
            if error is not None:
                log.warning("track %d: the head start of %s failed (%s); the stage does that work itself", self.job.number, stage.name, error)

    def _needed(self, stage: Stage, refs: dict) -> bool:
        """Whether the head start has work to do (`HeadStart.needed`), asked here before a
        process is started for it; an input it cannot read is left to the stage to report."""
        try:
            return head_start_needed(stage, self.job, refs, store=self.store, registry=self.registry)
        except Exception as err:  # noqa: BLE001 - the stage itself reads the same inputs and says what is wrong
            log.info("track %d: no head start for %s (%s)", self.job.number, stage.name, err)
            return False

    def close(self) -> None:
        """Wait for every head start begun (none outlives the render that began it)."""
        self._watchers.shutdown(wait=True)


@contextlib.contextmanager
def head_starts(job: TrackJob, store_spec: str, *, store: ArtifactStore, registry: ModelRegistry) -> Iterator[HeadStarts]:
    """A `HeadStarts` for one render of `job` (`store` is the store `store_spec` names, opened);
    every head start it began has ended on leaving."""
    early = HeadStarts(job, store_spec, store=store, registry=registry)
    try:
        yield early
    finally:
        early.close()


def _work(stage_name: str, job: TrackJob, refs: dict[str, ArtifactRef], store_spec: str) -> bytes:
    """What a head start process reads on its stdin (`main`): JSON, never a pickle."""
    job_fields = {"spec": job.spec.model_dump(mode="json"), "index": job.index, "seed": job.seed, "commercial": job.commercial}
    return json.dumps({"stage": stage_name, "job": job_fields, "refs": {name: ref.to_dict() for name, ref in refs.items()}, "store": store_spec}).encode()


def _in_a_process(work: bytes) -> None:
    """Run one head start (`work`: what `main` reads) in a niced process of its own and wait for
    it; raises RuntimeError with the process's last word if it fails."""
    command = [sys.executable, "-m", "songmill.engine.head_start"]
    nice = shutil.which("nice")
    if nice is not None:  # niced from its first instruction: its start-up, too, yields to the render
        command = [nice, "-n", str(HEAD_START_NICENESS), *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run(command, input=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
    if done.returncode < 0:
        raise RuntimeError(f"its process was killed by {signal.Signals(-done.returncode).name}")
    if done.returncode != 0:
        said = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"its process exited with status {done.returncode}: {said[-1] if said else 'nothing said'}")


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
