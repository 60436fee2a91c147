"""Python's garbage collector paused for work that only makes objects which stay.

    with collector_paused():
        import great_expectations   # about 200,000 objects, every one of them kept

The cyclic collector runs a full collection each time the objects that survived its younger
collections grow by a quarter, and a full collection walks every object it tracks. Importing a
big library (torch, librosa, Great Expectations) or loading the CMU dictionary grows that
count by hundreds of thousands, so the collector ran full collections in the middle of them,
about 0.15 s each once a command has imported the stages' libraries, and found nothing to free:
11 of them in a mix-only edit, 1.65 s (2026-12-05). Paused, the new objects are walked once
afterwards instead.

Pausing is process-wide (`gc.disable`), as the collector is: while an import runs, the cycles
other threads leave wait for the first collection after it (what they make in a second or
so). Pauses may overlap (threads, or one inside another); the collector runs again when the
last ends, unless it was off before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.Lock()
_pauses = 0  # how many blocks are paused now
_was_enabled = True  # whether the collector ran before the first of them


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (reference counting still frees as usual)."""
    global _pauses, _was_enabled
    counted = False
    try:
        with _LOCK:  # counted before the collector is touched: an interrupt in between cannot leave it off for good
            _pauses, counted = _pauses + 1, True
            if _pauses == 1:
                _was_enabled = gc.isenabled()
                gc.disable()
        yield
    finally:
        if counted:
            with _LOCK:
                _pauses -= 1
                if _pauses == 0 and _was_enabled:
                    gc.enable()
