"""What hostile or outsized input costs: `songmill qc` on a 19-minute file (the longest it reads is
20 minutes) with and without the musical checks, and on six hours of audio (refused), each as
its own process: wall seconds and peak resident memory against the 1 GB bound of the fuzzing
issue. Writes benchmarks/results/reliability.json.

    python benchmarks/bench_reliability.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
GOAL_RSS_MIB = 1024


def run_measured(command: list[str]) -> dict:
    """Run a command as a child; its exit code, wall seconds and peak resident memory (MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"exit": done.returncode, "wall_s": round(time.perf_counter() - started, 2), "peak_rss_mib": round(max(peak, before) / 1024, 1)}


def main() -> None:
    songmill = [sys.executable, "-m", "songmill"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="songmill-bench-") as folder:
        long, hours = Path(folder) / "nineteen-minutes.flac", Path(folder) / "six-hours.flac"
        tone = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi"]
        subprocess.run([*tone, "-i", "sine=f=440:d=1140:r=48000", "-ac", "2", "-c:a", "flac", str(long)], check=True)
        subprocess.run([*tone, "-i", "anullsrc=r=8000:cl=mono", "-t", "21600", "-c:a", "flac", str(hours)], check=True)
        # each in a fresh child so ru_maxrss is its own (RUSAGE_CHILDREN keeps the largest child so far: the order runs small to large)
        results["six_hours_refused"] = run_measured([*songmill, "qc", str(hours), "--profile", "streaming"])
        results["nineteen_minutes_technical"] = run_measured([*songmill, "qc", str(long), "--profile", "streaming"])
        results["nineteen_minutes_with_tempo_and_key"] = run_measured(
            [*songmill, "qc", str(long), "--profile", "streaming", "--tempo", "120", "--key", "A minor"]
        )
    for name, figures in results.items():
        verdict = "ok" if figures["peak_rss_mib"] <= GOAL_RSS_MIB else "OVER"
        print(f"{name:38s} exit {figures['exit']}  {figures['wall_s']:7.2f} s  peak {figures['peak_rss_mib']:7.1f} MiB  (goal ≤ {GOAL_RSS_MIB} MiB: {verdict})")
    out = PROJECT / "benchmarks/results/reliability.json"
    out.write_text(json.dumps({"goal_rss_mib": GOAL_RSS_MIB, **results}, indent=1) + "\n")
    print(f"wrote {out.relative_to(PROJECT)}")


if __name__ == "__main__":
    main()
