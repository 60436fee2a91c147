"""An edit's audition: the new version's sound as soon as its mix exists, before the gate.

    heard = Audition(job, store, to=Path("dist/demo-single/edits/track-01/auditions/v0002.wav"))
    heard.start(outcome.refs["mix.wav"])     # masters the new mix on a thread
    ...                                      # the edit's master and gate go on meanwhile
    heard.finish()                           # the file, or None when it could not be made (logged)

After the mix, an edit's version still needs its masters with the provenance watermark and the
gate's measurements: most of a mix-only edit's time, and none of it
changes what the song sounds like. So while those run, the new mix is mastered once more for the
release's first profile through the same chain, without the watermark (PerthNet's mark is meant
to go unheard; the README's *Provenance* says what it measurably changes), and written where the
listener can play it — as a DAW bounces a quick preview before the final export.

An audition is not a version: it is unwatermarked and ungated, and nothing delivers it. The
version the edit records is the gated one; when the gate turns the edit down, the audition stays
where it was written, so the listener can hear what failed (until the next edit of that version
number sets it aside). An audition that cannot be made
costs only the preview: the edit goes on, and the reason is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from songmill.core.audio import read_wav, write_wav
from songmill.core.store import ArtifactRef
from songmill.engine.stage import TrackJob, denormals_flushed, local_copy
from songmill.engine.track_stages import master_target, master_targets

log = logging.getLogger(__name__)


def audition_master(job: TrackJob, mix: Path, to: Path) -> Path:
    """Master `mix` (a mix stage's mix.wav) for the release's first profile as the master stage
    would, without the watermark, and write it to `to` (48 kHz float WAV, as the masters are).
    The file appears whole or not at all (written beside it, then renamed)."""
    from songmill.production.master import master

    spec = master_targets(job)[0]  # the release's first profile: the one the editor page plays
    samples, rate = read_wav(mix)
    result = master(samples, rate, master_target(spec, {}))
    to.parent.mkdir(parents=True, exist_ok=True)
    partial = to.with_name(f".{to.name}.partial")
    try:
        write_wav(partial, result.audio, rate)
        os.replace(partial, to)
    finally:
        partial.unlink(missing_ok=True)  # gone once renamed; a write that failed leaves nothing
    return to


AUDITION_NICENESS = 10  # the thread's nice value over the process's: the gated version's stages come first


def _yield_to_the_version() -> None:
    """Lower this thread's scheduling priority (Linux: a thread is a task with its own nice
    value), so that on a busy machine the audition takes the cycles the version's own stages
    leave: it must not make the gated version later. Elsewhere, or if refused, it runs as is."""
    import threading

    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + AUDITION_NICENESS)
    except (AttributeError, OSError):
        pass


class Audition:
    """An edit's audition made on a thread beside the rest of its render (see the module doc).
    `on_ready(path)` is called from that thread once the file is written."""

    def __init__(self, job: TrackJob, store, *, to: Path, on_ready: Callable[[Path], None] | None = None):  # noqa: ANN001 - an ArtifactStore
        self.job, self.store, self.to, self.on_ready = job, store, to, on_ready
        self.ready_at: dt.datetime | None = None  # when the file was written
        self.cpu_s: float | None = None  # the audition thread's own CPU seconds (the stages' figures include them: they are the process's)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audition")
        self._made: Future | None = None

    @property
    def started(self) -> bool:
        return self._made is not None

    def start(self, mix: ArtifactRef) -> None:
        self._made = self._pool.submit(self._make, mix)

    def finish(self) -> Path | None:
        """Wait for the audition; its file, or None when none was started or it failed."""
        self._pool.shutdown(wait=True)
        return self._made.result() if self._made is not None else None

    def _make(self, mix: ArtifactRef) -> Path | None:
        _yield_to_the_version()
        started = time.thread_time()
        try:
            with denormals_flushed(), tempfile.TemporaryDirectory(prefix="songmill-audition-") as folder:
                path = audition_master(self.job, local_copy(self.store, mix, Path(folder)), self.to)
        except Exception as err:  # noqa: BLE001 - a preview that fails costs only the preview; the gated version follows
            log.warning("track %d: the audition was not made (%s); the gated version follows", self.job.number, err)
            return None
        finally:
            self.cpu_s = round(time.thread_time() - started, 3)
        self.ready_at = dt.datetime.now(dt.UTC)
        if self.on_ready is not None:
            try:
                self.on_ready(path)
            except Exception as err:  # noqa: BLE001 - the caller's listener must not fail the edit (nor hide the render's own error)
                log.warning("track %d: the audition is at %s, but telling the caller failed (%s)", self.job.number, path, err)
        return path
