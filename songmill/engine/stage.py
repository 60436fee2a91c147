"""Stages: plain functions from input artifacts + parameters to output artifacts.

A `Stage` declares its name, version, the artifacts it reads and writes, the spec values it
depends on (`params`) and the models it loads. Its **cache key** is the sha256 of all of those
plus the input artifacts' hashes and the models' hashes; a stage whose key is already in the
store is not run again (`run_stage` returns the stored outputs, `cached=True`).

Bump `version` whenever a stage's code changes what it writes.

A part of a stage's work that depends on less than the whole stage does can be kept on its own
(`StageContext.remembered`): the gate's reading of the dry vocal does not change when only the
mix does, so an edit of the mix reads it back instead of measuring the voice again.

Such a part can also begin before the stage can (a `HeadStart`): the gate's reading of the dry
vocal needs the vocals, not the masters, so the runner begins it in a process of its own beside
the mix and the master (`songmill.engine.head_start`), and the gate reads back what it kept.
"""

from __future__ import annotations

import contextlib
import ctypes
import fnmatch
import functools
import hashlib
import json
import logging
import platform
import resource
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import psutil
from pydantic.dataclasses import dataclass as pydantic_dataclass

from models.registry import ModelRegistry
from songmill.core.errors import SongmillError
from songmill.core.seeds import derive_seed
from songmill.core.spec import ReleaseSpec, TrackSpec
from songmill.core.store import ArtifactRef, ArtifactStore, LocalStore, file_sha256

log = logging.getLogger("songmill.engine.stage")


@dataclass(frozen=True)
class TrackJob:
    """One track of one release, as a stage sees it."""

    spec: ReleaseSpec
    index: int  # 0-based position in the release
    seed: int
    commercial: bool  # True if any delivery profile of the release is commercial

    @property
    def track(self) -> TrackSpec:
        return self.spec.tracks[self.index]

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass(frozen=True)
class HeadStart:
    """The part of a stage's work that can begin once some of its inputs exist, before the rest
    do. `run(ctx)` gets a `StageContext` holding those `inputs` alone and keeps what it makes with
    `ctx.remembered`, which the stage itself then reads back: a head start writes no outputs, and
    a stage never depends on one (a head start that fails or is skipped costs only time)."""

    inputs: tuple[str, ...]  # the artifacts it reads (earlier stages' outputs): it begins once they all exist
    run: Callable[["StageContext"], None]
    needed: Callable[["StageContext"], bool] | None = None  # False when what it would make is kept already (checked before it begins)


@dataclass(frozen=True)
class Stage:
    name: str
    version: str
    inputs: tuple[str, ...]  # artifact names written by earlier stages
    outputs: tuple[str, ...]  # file names this stage always writes into its work folder
    params: Callable[[TrackJob], dict[str, Any]]  # the spec values the output depends on (JSON-able)
    run: Callable[["StageContext"], None]
    models: tuple[str, ...] = ()  # model registry names it always loads
    optional_models: Callable[[TrackJob], tuple[str, ...]] | None = None  # chosen by the config (e.g. a lyrics LM)
    queue: str = "default"  # "gpu" for stages that always run neural backends (Airflow routes them)
    description: str = ""
    gpu_when: Callable[[TrackJob], bool] | None = None  # e.g. when the config names a diffusion model
    output_glob: str | None = None  # files the stage may also write, as many as the song needs (e.g. "stem-*.wav")
    input_globs: tuple[str, ...] = ()  # earlier stages' output_globs this stage also reads (e.g. every stem)
    head_start: HeadStart | None = None  # work it can begin early (the gate's reading of the dry vocal)

    def queue_for(self, job: TrackJob) -> str:
        """The worker queue this stage wants for this track ("gpu" or "default")."""
        return "gpu" if self.gpu_when is not None and self.gpu_when(job) else self.queue

    def declares(self, name: str) -> bool:
        return name in self.outputs or (self.output_glob is not None and fnmatch.fnmatch(name, self.output_glob))

    def model_names(self, job: TrackJob) -> tuple[str, ...]:
        return self.models + (self.optional_models(job) if self.optional_models else ())


@dataclass
class StageContext:
    """What a stage function gets: its parameters, input files, a folder to write outputs into."""

    stage: Stage
    job: TrackJob
    params: dict[str, Any]
    inputs: dict[str, Path]
    workdir: Path
    registry: ModelRegistry
    store: ArtifactStore | None = None  # where `remembered` keeps its results (None: computed every time)
    refs: dict[str, ArtifactRef] = field(default_factory=dict)  # the inputs' refs: their hashes, without reading them again

    def input(self, name: str) -> Path:
        return self.inputs[name]

    def output(self, name: str) -> Path:
        if not self.stage.declares(name):
            raise ValueError(f"stage {self.stage.name} does not declare output {name!r}")
        return self.workdir / name

    def model(self, name: str) -> Path:
        if name not in self.stage.model_names(self.job):
            raise ValueError(f"stage {self.stage.name} does not declare model {name!r}")
        return self.registry.resolve(name, commercial=self.job.commercial)

    def sha256(self, name: str) -> str:
        """An input's sha256: from its ref (already known), else hashed from the file."""
        return self.refs[name].sha256 if name in self.refs else file_sha256(self.input(name))

    def remembered(self, what: str, depends_on: dict[str, Any], compute: Callable[[], dict]) -> dict:
        """`compute()`, a JSON-able result that depends only on `depends_on` (hashes of the
        inputs it reads, the values it uses), kept in the store under a key made of those, `what`
        and the stage's name and version; read back instead of computed when the key is known."""
        identity = self._memo(what, depends_on)
        key = _memo_key(identity)
        record = self.store.get_record(key) if self.store is not None else None
        if record is not None:
            return record["result"]
        result = compute()
        if self.store is not None:
            self.store.put_record(key, {**identity, "result": result})
        return result

    def is_remembered(self, what: str, depends_on: dict[str, Any]) -> bool:
        """Whether `remembered(what, depends_on, …)` would read its result back (not compute it)."""
        return self.store is not None and self.store.get_record(_memo_key(self._memo(what, depends_on))) is not None

    def _memo(self, what: str, depends_on: dict[str, Any]) -> dict[str, Any]:
        return {"stage": self.stage.name, "version": self.stage.version, "what": what, "depends_on": depends_on}

    def rng(self) -> np.random.Generator:
        """A generator seeded by the track seed and the stage name: same seed, same output."""
        return np.random.default_rng(derive_seed(self.job.seed, self.stage.name, bits=64))


def _memo_key(identity: dict[str, Any]) -> str:
    return "memo-" + hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@pydantic_dataclass
class StageResult:
    """What one stage did for one track: its cache key, the artifacts it read and wrote, its cost."""

    stage: str
    version: str
    cache_key: str
    cached: bool
    outputs: dict[str, ArtifactRef]
    inputs: dict[str, ArtifactRef]
    models: list[dict]
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0

    def to_dict(self) -> dict:
        return {
            "stage": self.stage,
            "version": self.version,
            "cache_key": self.cache_key,
            "cached": self.cached,
            "wall_s": round(self.wall_s, 4),
            "cpu_s": round(self.cpu_s, 4),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "inputs": {k: v.sha256 for k, v in self.inputs.items()},
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "models": self.models,
        }


def cache_key(stage: Stage, params: dict, inputs: dict[str, ArtifactRef], models: list[dict], seed: int) -> str:
    material = {
        "stage": stage.name,
        "version": stage.version,
        "params": params,
        "seed": seed,  # ctx.rng() draws from it
        "inputs": {name: ref.sha256 for name, ref in sorted(inputs.items())},
        "models": sorted((m["name"], m["version"], m["sha256"]) for m in models),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


class PeakMemory:
    """Samples this process's resident memory every 20 ms while a block runs: `peak` (bytes),
    and `grew`, how far it rose above where it started."""

    def __init__(self):
        self._process, self._stop, self.peak, self.start = psutil.Process(), threading.Event(), 0, 0

    def __enter__(self):
        self.start = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def grew(self) -> int:
        return self.peak - self.start


def cpu_seconds() -> float:
    """CPU seconds of this process and of the programs it ran and waited for (FluidSynth, ffmpeg…)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


M_ARENA_MAX = -8  # glibc's mallopt parameter: how many heaps threads may spread their allocations over
MALLOC_ARENAS = 2  # glibc's own limit is 8 per core


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (Linux), else None (musl, macOS: nothing to do)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)  # once, before a stage's threads make heaps of their own
    return libc


def return_freed_memory() -> bool:
    """Give the heap's freed pages back to the system (glibc's `malloc_trim`); False where the C
    library is not glibc. A stage frees hundreds of MB of audio arrays; glibc keeps such pages in
    its heaps, scattered between what is still in use, and a worker that renders track after
    track grew by about 260 MB a track (Python's own objects stayed flat: tracemalloc). Trimmed
    after each stage, with threads sharing two heaps, the third track of a batch worker peaked
    at 2.65 GB instead of 3.06 GB and each track started where the second did, for no measurable
    CPU (161.5 against 161.4 CPU s for three songs)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


# glibc's fenv_t on x86-64 (bits/fenv.h): the x87 environment, 28 bytes, then the SSE unit's MXCSR
FENV_T_BYTES, MXCSR_OFFSET = 32, 28
MXCSR_FLUSH_TO_ZERO, MXCSR_DENORMALS_ARE_ZERO = 0x8000, 0x0040


@functools.cache
def _libm() -> ctypes.CDLL | None:
    """glibc's maths library on x86-64 Linux, else None (elsewhere denormals are left alone)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        libm = ctypes.CDLL("libm.so.6")
        libm.fegetenv, libm.fesetenv  # noqa: B018 - both must be there
    except (OSError, AttributeError):
        return None
    return libm


def flush_denormals() -> bool:
    """Have this thread's floating point treat denormal numbers as zero (the SSE unit's
    flush-to-zero and denormals-are-zero flags); False where it cannot (not x86-64 glibc).

    A denormal is a float below 1.2e-38 in float32 (about 750 dB under full scale; 2.2e-308 in
    float64), and the CPU works on one 10 to 100 times slower than on any other number. An IIR filter running over digital silence
    decays into them: stems rest a lot, so the K-weighting of a lead vocal that is silent a quarter
    of the time took 0.52 s instead of 0.06 s, and the mix of the demo song 10 CPU s instead of 5.
    Only results below those bounds can change: every file of the demo came out the same to the
    byte. Threads (and forked processes) started afterwards inherit the flags; `run_stage` and
    `render` set them for what they run (`denormals_flushed`), the CLI and each Airflow task for
    their whole process."""
    libm = _libm()
    if libm is None:
        return False
    env = ctypes.create_string_buffer(FENV_T_BYTES)
    if libm.fegetenv(env) != 0:
        return False
    mxcsr = int.from_bytes(env.raw[MXCSR_OFFSET : MXCSR_OFFSET + 4], "little") | MXCSR_FLUSH_TO_ZERO | MXCSR_DENORMALS_ARE_ZERO
    ctypes.memmove(ctypes.addressof(env) + MXCSR_OFFSET, mxcsr.to_bytes(4, "little"), 4)
    return libm.fesetenv(env) == 0


@contextlib.contextmanager
def denormals_flushed() -> Iterator[bool]:
    """`flush_denormals` for the block (or the decorated function); then this thread's floating point as it was, so a library
    caller's thread (a test process, a notebook) keeps its own. Threads started inside inherit
    the flags."""
    libm = _libm()
    saved = ctypes.create_string_buffer(FENV_T_BYTES)
    restore = libm is not None and libm.fegetenv(saved) == 0
    try:
        yield flush_denormals()
    finally:
        if restore:
            cast(ctypes.CDLL, libm).fesetenv(saved)


# Set by the command line's Ctrl-C (songmill.engine.cli): no stage starts after it, on any thread.
# The KeyboardInterrupt Ctrl-C raises reaches only the main thread, which may be waiting for
# stages already queued on others (they would run to the end first), and Python drops one
# raised inside a finaliser; this makes the next stage to start stop the render either way.
STOP = threading.Event()


def stop_if_asked(before: str) -> None:
    """KeyboardInterrupt when Ctrl-C was pressed (`STOP`): called before each stage and before a
    render's release steps."""
    if STOP.is_set():
        raise KeyboardInterrupt(f"interrupted (Ctrl-C) before {before}")


@dataclass(frozen=True)
class _StageCall:
    """What a stage would run on: its inputs (from what earlier stages made), params, models and cache key."""

    inputs: dict[str, ArtifactRef]
    params: dict
    models: list[dict]
    key: str


def _stage_call(stage: Stage, job: TrackJob, inputs: dict[str, ArtifactRef], registry: ModelRegistry) -> _StageCall:
    missing = [name for name in stage.inputs if name not in inputs]
    if missing:
        raise SongmillError(f"stage {stage.name} needs {', '.join(missing)}, which no earlier stage produced")
    stage_inputs = {name: inputs[name] for name in stage.inputs}
    stage_inputs.update({name: ref for name, ref in inputs.items() if any(fnmatch.fnmatch(name, pattern) for pattern in stage.input_globs)})
    params = stage.params(job)
    registry = registry.pinned(job.spec.release.model_versions)  # an experiment's arm may pin a version
    models = [registry.get(name).provenance() for name in stage.model_names(job)]
    return _StageCall(stage_inputs, params, models, cache_key(stage, params, stage_inputs, models, job.seed))


def is_kept(stage: Stage, job: TrackJob, inputs: dict[str, ArtifactRef], *, store: ArtifactStore, registry: ModelRegistry) -> bool:
    """Whether the store keeps this stage's outputs for these inputs (its cache key has a record),
    so `run_stage` would very likely not run it (it still checks the files are whole first)."""
    return store.get_record(_stage_call(stage, job, inputs, registry).key) is not None


def run_stage(stage: Stage, job: TrackJob, inputs: dict[str, ArtifactRef], *, store: ArtifactStore, registry: ModelRegistry) -> StageResult:
    """Run one stage for one track, or return its stored outputs if its cache key is known."""
    stop_if_asked(f"stage {stage.name}")
    call = _stage_call(stage, job, inputs, registry)
    stage_inputs, params, models, key = call.inputs, call.params, call.models, call.key
    result = StageResult(stage.name, stage.version, key, False, {}, stage_inputs, models)

    record = store.get_record(key)
    if record and all(store.intact(ref["sha256"]) for ref in record["outputs"].values()):  # a changed blob: run again
        result.cached = True
        result.outputs = {name: ArtifactRef.from_dict(ref) for name, ref in record["outputs"].items()}
        return result

    with in_scratch(stage, job, params, stage_inputs, store=store, registry=registry) as ctx:
        workdir = ctx.workdir
        wall0, cpu0 = time.perf_counter(), cpu_seconds()
        _glibc()  # caps glibc's heaps before this stage's threads start
        with PeakMemory() as memory, denormals_flushed():  # in the stage's thread: its own threads inherit it
            stage.run(ctx)
        result.wall_s, result.cpu_s = time.perf_counter() - wall0, cpu_seconds() - cpu0
        result.peak_rss_mib = memory.peak / 2**20
        return_freed_memory()
        for name in stage.outputs:
            path = workdir / name
            if not path.is_file():
                raise RuntimeError(f"stage {stage.name} finished without writing its declared output {name}")
            result.outputs[name] = store.put_file(path, name)
        if stage.output_glob:
            for path in sorted(workdir.glob(stage.output_glob)):
                result.outputs[path.name] = store.put_file(path, path.name)
    store.put_record(
        key,
        {
            "stage": stage.name,
            "version": stage.version,
            "params": params,
            "inputs": {k: v.to_dict() for k, v in stage_inputs.items()},
            "outputs": {k: v.to_dict() for k, v in result.outputs.items()},
            "models": models,
            "wall_s": result.wall_s,
        },
    )
    return result


def run_head_start(stage: Stage, job: TrackJob, refs: dict[str, ArtifactRef], *, store: ArtifactStore, registry: ModelRegistry) -> None:
    """Run `stage`'s head start (`HeadStart`) on its inputs, which `refs` holds. It keeps what it
    makes in the store (`StageContext.remembered`) and writes no outputs."""
    with (
        head_start_context(stage, job, refs, store=store, registry=registry) as ctx,
        denormals_flushed(),
    ):  # as the stage itself runs: the same figures to the last bit
        cast(HeadStart, stage.head_start).run(ctx)


def head_start_needed(stage: Stage, job: TrackJob, refs: dict[str, ArtifactRef], *, store: ArtifactStore, registry: ModelRegistry) -> bool:
    """Whether `stage`'s head start has anything to do (`HeadStart.needed`): a render checks
    before it starts a process for one (an edit of the mix finds the vocal's figures kept).
    Asked where the store is a folder, whose blobs are read in place; another store's inputs
    would be downloaded just to ask, so there the head start's process asks (and finds them)."""
    needed = cast(HeadStart, stage.head_start).needed
    if needed is None or not isinstance(store, LocalStore):
        return True
    with head_start_context(stage, job, refs, store=store, registry=registry) as ctx:
        return needed(ctx)


@contextlib.contextmanager
def head_start_context(stage: Stage, job: TrackJob, refs: dict[str, ArtifactRef], *, store: ArtifactStore, registry: ModelRegistry) -> Iterator[StageContext]:
    """The `StageContext` a head start gets: its inputs alone, and a scratch folder."""
    if stage.head_start is None:
        raise ValueError(f"stage {stage.name} has no head start")
    available = {name: refs[name] for name in stage.head_start.inputs}
    with in_scratch(stage, job, stage.params(job), available, store=store, registry=registry.pinned(job.spec.release.model_versions)) as ctx:
        yield ctx


@contextlib.contextmanager
def in_scratch(
    stage: Stage, job: TrackJob, params: dict[str, Any], inputs: dict[str, ArtifactRef], *, store: ArtifactStore, registry: ModelRegistry
) -> Iterator[StageContext]:
    """A `StageContext` on `inputs` (a folder store's blobs read in place, any other store's
    fetched) with an empty output folder, all in a scratch folder removed on leaving."""
    with tempfile.TemporaryDirectory(prefix=f"songmill-{stage.name}-") as scratch:
        scratch_dir = Path(scratch)
        workdir = scratch_dir / "out"
        workdir.mkdir()
        local_inputs = {name: local_copy(store, ref, scratch_dir / "in") for name, ref in inputs.items()}
        yield StageContext(stage, job, params, local_inputs, workdir, registry, store=store, refs=inputs)


def local_copy(store: ArtifactStore, ref: ArtifactRef, folder: Path) -> Path:
    """A file holding the artifact's bytes: a folder store's blob, read in place; any other
    store's copy in `folder` (checked against the sha256 as it is fetched)."""
    if isinstance(store, LocalStore):
        return store.local_path(ref)  # read in place: blobs are immutable
    return store.get_file(ref, folder / ref.name)


@dataclass
class StageGraph:
    """The per-track stages in the order they run (each reads only earlier outputs)."""

    stages: list[Stage] = field(default_factory=list)

    def add(self, stage: Stage) -> Stage:
        produced = {out for s in self.stages for out in s.outputs}
        unknown = [name for name in stage.inputs if name not in produced]
        unknown += [pattern for pattern in stage.input_globs if all(s.output_glob != pattern for s in self.stages)]
        early = stage.head_start.inputs if stage.head_start else ()  # named outputs, or files an earlier stage writes by pattern
        unknown += [name for name in early if name not in produced and not any(s.output_glob and fnmatch.fnmatch(name, s.output_glob) for s in self.stages)]
        if unknown:
            raise ValueError(f"stage {stage.name} reads {unknown}, which no earlier stage writes")
        if any(s.name == stage.name for s in self.stages):
            raise ValueError(f"stage {stage.name} is registered twice")
        self.stages.append(stage)
        return stage

    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def through(self, name: str) -> list[Stage]:
        """The stages up to and including `name` (a track's stages through its gate: what an
        editor's version is made of, and what a scheduler runs again when the gate says no)."""
        return self.stages[: self.names().index(name) + 1]

    def waves(self, stages: list[Stage] | None = None) -> list[list[Stage]]:
        """`stages` (all, by default) in order, neighbours that read none of each other's outputs
        grouped into one wave: a wave's stages may run at the same time (instruments beside
        vocals; the gate beside export)."""
        waves: list[list[Stage]] = []
        for stage in stages or self.stages:
            if waves and not any(reads_from(stage, earlier) for earlier in waves[-1]):
                waves[-1].append(stage)
            else:
                waves.append([stage])
        return waves


def reads_from(stage: Stage, earlier: Stage) -> bool:
    """`stage` reads something `earlier` writes (a named output, or its files by pattern)."""
    if set(stage.inputs) & set(earlier.outputs) or earlier.output_glob in stage.input_globs:
        return True
    return any(fnmatch.fnmatch(out, pattern) for out in earlier.outputs for pattern in stage.input_globs)
