"""Warnings silenced for a block of code, one thread at a time.

`warnings.catch_warnings` is process-wide: it saves the process's filter list on entry and puts
it back on exit. Two threads inside at once put back each other's lists: one thread's silence is
lifted while it still runs (under `python -W error` its library's DeprecationWarning is then
raised), or left on for good after both have left. Stages run side by side on threads (the
instruments beside the vocals, the gate beside export), so every block of ours that silences
warnings takes its turn. What it cannot order: a library's own `catch_warnings` on another
thread; and while a block runs, every thread's warnings are silenced, as with the plain one.

    with warnings_silenced():
        import pyworld  # imports the deprecated pkg_resources
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_ONE_AT_A_TIME = threading.RLock()  # re-entrant: a silenced block may call another


@contextmanager
def warnings_silenced() -> Iterator[None]:
    """Ignore every warning inside the block; other threads wanting the same wait their turn
    (warnings raised by threads outside any such block are still shown as usual)."""
    with _ONE_AT_A_TIME, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
