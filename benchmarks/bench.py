"""`make bench`: time every stage and the whole render of the demo on this machine.

Renders `config/releases/demo.yaml` twice into a throw-away store and catalogue: cold (every
stage computes) and warm (every stage cached). Reports per stage wall and CPU seconds, peak
resident memory, and the real-time factor (compute seconds per second of song), and writes
`benchmarks/results/latest.json`. Never part of the test suite: timings belong here.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_render(config: Path, work: Path, label: str) -> dict:
    from songmill.runner import render

    wall0, cpu0 = time.perf_counter(), _cpu_s()
    report = json.loads(render(config, out_dir=work / label, jobs=1).read_text())
    wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    song_s = sum(t["duration_s"] or 0 for t in report["tracks"])
    stages = {}
    for name, total in report["stage_totals"].items():
        stages[name] = {**total, "rtf": round(total["cpu_s"] / song_s, 6) if song_s else None}
    return {"label": label, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "song_s": song_s,
            "rtf": round(cpu / song_s, 5) if song_s else None, "all_cached": all(
                s["cached"] for t in report["tracks"] for s in t["stages"]), "stages": stages}


def main() -> None:
    config = ROOT / "config/releases/demo.yaml"
    with tempfile.TemporaryDirectory(prefix="songmill-bench-") as tmp:
        work = Path(tmp)
        os.environ["SONGMILL_VAR_DIR"] = str(work / "var")
        os.environ.pop("SONGMILL_STORE", None)
        os.environ.pop("SONGMILL_DATABASE_URL", None)
        import_t0 = time.perf_counter()
        import songmill.runner  # noqa: F401  (import cost reported on its own)
        import_s = time.perf_counter() - import_t0
        cold = bench_render(config, work, "cold")
        warm = bench_render(config, work, "warm")
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                                "platform": platform.platform()},
        "config": str(config.relative_to(ROOT)), "import_s": round(import_s, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "runs": [cold, warm],
    }
    out = ROOT / "benchmarks/results/latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"demo render on {os.cpu_count()} cores (song {cold['song_s']:.1f} s); import {import_s:.2f} s; peak RSS {result['peak_rss_mib']} MiB")
    print(f"{'run':6} {'stage':12} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9} {'RTF':>9} cached")
    for run in (cold, warm):
        for name, s in run["stages"].items():
            print(f"{run['label']:6} {name:12} {s['wall_s']:8.4f} {s['cpu_s']:8.4f} {s['peak_rss_mib']:9.1f} {s['rtf']:9.6f} {s['cached']}/{s['runs']}")
        print(f"{run['label']:6} {'(render)':12} {run['wall_s']:8.3f} {run['cpu_s']:8.3f} {'':9} {run['rtf']:9.5f} all={run['all_cached']}")
    print(out)


if __name__ == "__main__":
    main()
