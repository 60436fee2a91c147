"""Work handed to threads ahead of the one who uses it, the results taken in order.

    with worked_ahead(prepare, stems, threads=2, name="mix-stem") as prepared:
        for result in prepared:      # prepare(stems[0]), prepare(stems[1]), … in that order
            ...

Used where a stage is alone in its wave and its items are independent (the mix's stems, the
vocals' phrases): the second core works on the next item while the first is used, and since
each item's result is its own and they are used in order, the output is what one at a time
gives. Threads help only where the work leaves the GIL (numpy, scipy, onnxruntime, torch).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


@contextlib.contextmanager
def worked_ahead(work: Callable[[T], R], items: Sequence[T], *, threads: int, ahead: int | None = None, name: str = "ahead") -> Iterator[Iterator[R]]:
    """`work(item)` for each item, yielded in order, with up to `ahead` items (default:
    `threads`) worked on or waiting ahead of the one being used, so at most that many results
    wait in memory. The first failure in order is raised when its turn comes; items not yet
    started are then never started."""
    ahead = threads if ahead is None else ahead
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name) as pool:
        pending: collections.deque[Future[R]] = collections.deque()

        def results() -> Iterator[R]:
            upcoming = iter(items)
            for item in itertools.islice(upcoming, ahead):
                pending.append(pool.submit(work, item))
            while pending:
                done = pending.popleft().result()
                for item in itertools.islice(upcoming, 1):
                    pending.append(pool.submit(work, item))
                yield done
                del done  # the caller has it: not held here while the next one is waited for

        try:
            yield results()
        finally:
            for future in pending:
                future.cancel()
