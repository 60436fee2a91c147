"""Instrument stems kept for the next render of the same song (the song editor's section edits).

FluidSynth gives equal bytes for an equal MIDI file (`models.instruments.soundfont`), so a part
whose notes, program and tempo map did not change sounds exactly as before: a new melody for
verse 2 changes the parts that follow the melody and leaves the drums, bass and chords alone.
After the instruments stage writes its stems, this module keeps, for each part it rendered, a
store record under the part's key (`soundfont.part_key`) pointing at the stem's blob. The next
render looks each part's key up and reads the stem back instead of rendering it: the same
float32 samples, so the stems are byte-identical to rendering them all again (tested). A record
that is damaged, or whose blob is gone or damaged, counts as not found and the part is rendered.

Records are a few hundred bytes a part; the audio is the stems the store keeps anyway.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

import numpy as np

from songmill.core.audio import read_wav
from songmill.core.errors import SongmillError
from songmill.core.store import ArtifactRef, ArtifactStore

log = logging.getLogger(__name__)

RECORD_PREFIX = "stem-"


class StoredStems:
    """`models.instruments.soundfont.StemMemo` over an artifact store. Parts render on two threads,
    so what it notes is guarded by a lock."""

    def __init__(self, store: ArtifactStore):
        self.store = store
        self.found = 0  # parts read back rather than rendered (the stage reports it)
        self._rendered: dict[str, str] = {}  # part name → its key, for the parts rendered now
        self._lock = threading.Lock()
        self._scratch = tempfile.TemporaryDirectory(prefix="songmill-stems-")

    def stem(self, key: str, frames: int) -> np.ndarray | None:
        try:
            record = self.store.get_record(RECORD_PREFIX + key)
            if record is None:
                return None
            ref = ArtifactRef.from_dict(record["stem"])
            if not self.store.intact(ref.sha256):
                return None
            path = self.store.get_file(ref, Path(self._scratch.name) / f"{key}.wav")  # checks the bytes against the sha256
            audio, _ = read_wav(path)
            path.unlink()
        except (SongmillError, OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            # a damaged record, a blob gone or damaged, a store out of reach: only a speed-up is lost
            log.warning("instrument stem %s… not read back (%s); the part is rendered again", key[:12], err)
            return None
        if audio.shape != (frames, 1):
            return None
        with self._lock:
            self.found += 1
        return np.ascontiguousarray(audio[:, 0])

    def rendered(self, part: str, key: str) -> None:
        with self._lock:
            self._rendered[part] = key

    def keep(self, stems: dict[str, Path]) -> int:
        """Keep the stems of the parts rendered now (`stems`: part name → the WAV file written);
        returns how many were kept. Best effort: a store that refuses costs only the speed-up."""
        kept = 0
        for part, key in sorted(self._rendered.items()):
            if part not in stems:
                continue
            try:
                ref = self.store.put_file(stems[part])
                self.store.put_record(RECORD_PREFIX + key, {"stem": ref.to_dict()})
            except (SongmillError, OSError) as err:
                log.warning("the stem of part %s was not kept for later renders (%s)", part, err)
                continue
            kept += 1
        return kept

    def close(self) -> None:
        self._scratch.cleanup()
