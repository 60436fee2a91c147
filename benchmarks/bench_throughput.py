"""`make bench` (throughput): the per-song cost and the songs per hour of one worker, each
against the goal it has (the scale-out issue), on this machine.

1. The demo, cold, alone: `songmill render --jobs 1` in a fresh process (imports included, as a
   worker that starts for one song pays them). Wall RTF (wall seconds per second of song),
   CPU seconds per three-minute song by stage and for the release steps (package, tags,
   Content Credentials, the delivered files' checks), and the peak resident memory of the
   process and the programs it ran.
2. A nightly batch: ten three-minute songs planned as `config/catalogue.yaml` plans a night,
   rendered with `--jobs 2` (one process per core, each kept for its next track): songs per
   hour and CPU seconds per song in the steady state of a worker.

Writes `benchmarks/results/throughput.json` (`--label before|after` keeps both sides of a
change in the file). Never part of the test suite: timings belong here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "throughput.json"
GOALS = {
    "cpu_s_per_3min_song": 20.0,  # at most
    "peak_rss_gb": 1.2,  # at most
    "cold_wall_rtf": 0.12,  # at most, 2 cores
    "batch_songs_per_hour": 300.0,  # at least, one 2-core worker, 10 songs or more
}
BATCH_SONGS = 10


def _children_usage() -> tuple[float, float]:
    """CPU seconds and peak RSS (GB) of the finished children so far (the render and its programs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2


def _render(config: Path, work: Path, jobs: int) -> tuple[dict, float, float, float]:
    """(run report, wall s, CPU s, peak RSS GB) of `songmill render` in a fresh process."""
    env = {**os.environ, "SONGMILL_VAR_DIR": str(work / "var"), "OMP_NUM_THREADS": "1"}
    env.pop("SONGMILL_STORE", None)
    env.pop("SONGMILL_DATABASE_URL", None)
    cpu0, _ = _children_usage()
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "songmill", "render", str(config), "--out", str(work / "dist"), "--jobs", str(jobs)], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"the render failed:\n{result.stderr[-3000:]}")
    cpu1, rss = _children_usage()
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    return report, wall, cpu1 - cpu0, rss


def single_song(work: Path) -> dict:
    report, wall, cpu, rss = _render(ROOT / "config/releases/demo.yaml", work / "single", jobs=1)
    song_s = sum(t["duration_s"] or 0 for t in report["tracks"])
    per_3min = 180.0 / song_s
    stages = {name: round(total["cpu_s"] * per_3min, 2) for name, total in report["stage_totals"].items()}
    stages["release steps"] = round(report["release_steps"]["cpu_s"] * per_3min, 2)
    accounted = sum(stages.values())
    return {
        "song_s": round(song_s, 1),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cold_wall_rtf": round(wall / song_s, 3),
        "cpu_s_per_3min_song": round(cpu * per_3min, 1),
        "cpu_s_per_3min_song_by_stage": {**stages, "imports and the rest": round(cpu * per_3min - accounted, 2)},
        "peak_rss_gb": round(rss, 2),
    }


def batch_config(folder: Path) -> Path:
    """Ten three-minute songs, planned by the nightly planner for a fixed date."""
    from songmill.engine.planning import ThemeIdea, load_catalogue_plan, nightly_release, write_release_config

    plan = load_catalogue_plan()
    themes = list(plan.themes) + [
        ThemeIdea(title=f"Benchmark {i}", theme="a long walk home along the river at the end of summer") for i in range(BATCH_SONGS - len(plan.themes))
    ]
    plan = plan.model_copy(update={"tracks_per_night": BATCH_SONGS, "themes": themes, "mix": plan.mix.model_copy(update={"target_duration_s": 180})})
    config = nightly_release(plan, dt.date(2026, 11, 30))
    config["release"]["id"] = "bench-batch"
    return write_release_config(config, folder / "bench-batch.yaml")


def batch(work: Path) -> dict:
    config = batch_config(work)
    report, wall, cpu, rss = _render(config, work / "batch", jobs=2)
    songs = len(report["tracks"])
    song_s = sum(t["duration_s"] or 0 for t in report["tracks"])
    return {
        "songs": songs,
        "passed_gate": sum(1 for t in report["tracks"] if t["qc"] and t["qc"]["passed"]),
        "song_s": round(song_s, 1),
        "wall_s": round(wall, 1),
        "batch_songs_per_hour": round(songs * 3600 / wall, 1),
        "cpu_s_per_song": round(cpu / songs, 1),
        "cpu_s_per_3min_song": round(cpu * 180 / song_s, 1),
        "peak_rss_gb": round(rss, 2),
    }


def verdicts(single: dict, many: dict) -> dict:
    measured = {
        "cpu_s_per_3min_song": many["cpu_s_per_3min_song"],
        "peak_rss_gb": max(single["peak_rss_gb"], many["peak_rss_gb"]),
        "cold_wall_rtf": single["cold_wall_rtf"],
        "batch_songs_per_hour": many["batch_songs_per_hour"],
    }
    met = {k: (measured[k] >= goal if k == "batch_songs_per_hour" else measured[k] <= goal) for k, goal in GOALS.items()}
    return {k: {"measured": measured[k], "goal": GOALS[k], "met": met[k]} for k in GOALS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="latest", help="where the figures go in throughput.json (e.g. before, after)")
    parser.add_argument("--single-only", action="store_true", help="the single song only; the batch figures stay as the label had them")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    with tempfile.TemporaryDirectory(prefix="songmill-throughput-") as tmp:
        work = Path(tmp)
        single = single_song(work)
        if args.single_only and args.label in results:
            many = {**results[args.label]["batch"], "from": results[args.label]["when"]}
        else:
            many = batch(work)
    figures = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "single": single, "batch": many, "goals": verdicts(single, many)}
    results[args.label] = figures
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"single song (demo, {single['song_s']} s, cold, --jobs 1): wall {single['wall_s']} s, CPU {single['cpu_s']} s")
    for stage, seconds in single["cpu_s_per_3min_song_by_stage"].items():
        print(f"  {stage:22} {seconds:6.2f} CPU s per 3-minute song")
    print(f"batch ({many['songs']} songs, --jobs 2): wall {many['wall_s']} s, {many['cpu_s_per_song']} CPU s per song, {many['passed_gate']} passed the gate")
    for name, v in figures["goals"].items():
        print(f"  {name:22} {v['measured']:>8} goal {v['goal']:>6}  {'met' if v['met'] else 'NOT met'}")
    print(RESULTS)


if __name__ == "__main__":
    main()
