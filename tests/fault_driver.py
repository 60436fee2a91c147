"""`songmill render` with one fault injected at a chosen moment (tests/test_faults.py, the soak run).

    python tests/fault_driver.py kill-in STAGE -- render ARGS…       SIGKILL itself once STAGE has run, before its outputs are stored
    python tests/fault_driver.py fill-before STAGE FOLDER -- render ARGS…
                                                                      fill FOLDER's filesystem just before STAGE ("deliver": delivery)
    python tests/fault_driver.py pause-in STAGE FLAG -- render ARGS…  at STAGE, create FLAG and wait until it is removed

The stage is swapped in the registered graph (`TRACK_STAGES`) for one that does the same work and
then the fault, so the render is the real one up to that instant.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path


def fill(folder: Path) -> None:
    """Write zeros into `folder/filler` until its filesystem has no room left (unbuffered writes,
    so the last refused one is the only error, and it is expected)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)


def wrap_stage(name: str, before, after) -> None:
    from songmill.engine.track_stages import TRACK_STAGES

    [index] = [i for i, s in enumerate(TRACK_STAGES.stages) if s.name == name]
    stage = TRACK_STAGES.stages[index]

    def run(ctx):
        before()
        stage.run(ctx)
        after()

    TRACK_STAGES.stages[index] = dataclasses.replace(stage, run=run)


def wrap_delivery(before) -> None:
    import songmill.engine.runner as runner

    original = runner.package_and_deliver

    def deliver(*args, **kwargs):
        before()
        return original(*args, **kwargs)

    runner.package_and_deliver = deliver


def pause(flag: Path) -> None:
    flag.write_text(str(os.getpid()))
    while flag.exists():
        time.sleep(0.05)


def main(argv: list[str]) -> None:
    split = argv.index("--")
    fault, stage, *rest = argv[:split]
    nothing = lambda: None  # noqa: E731
    if fault == "kill-in":
        wrap_stage(stage, nothing, lambda: os.kill(os.getpid(), signal.SIGKILL))
    elif fault == "fill-before":
        action = lambda: fill(Path(rest[0]))  # noqa: E731
        wrap_delivery(action) if stage == "deliver" else wrap_stage(stage, action, nothing)
    elif fault == "pause-in":
        action = lambda: pause(Path(rest[0]))  # noqa: E731
        wrap_delivery(action) if stage == "deliver" else wrap_stage(stage, action, nothing)
    else:
        raise SystemExit(f"unknown fault {fault}")
    from songmill.engine.cli import main as songmill

    sys.argv = ["songmill", *argv[split + 1 :]]
    songmill()


if __name__ == "__main__":
    main(sys.argv[1:])
