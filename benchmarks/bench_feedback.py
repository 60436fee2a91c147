"""`make bench` (feedback): import speed and memory, the simulation's curve, the refinement's figures.

    python benchmarks/bench_feedback.py [--mb 1024] [--nights 30] [--skip-import]

1. **Import**: play-log exports of 64 MB and of `--mb` MB (default 1 GB) are generated and imported
   into a throw-away SQLite catalogue, each in a child process whose peak resident memory is
   read from the kernel (wait4). Bounded memory means the two peaks are about the same.
2. **Planning simulation** (`songmill feedback simulate`): the share of planned choices the
   hidden population prefers, night by night, against the share without feedback.
3. **Refinement**: one cycle from simulated listening, as a full fine-tune and as LoRA (PEFT) on
   the linear head: the preferred feature (step share) before and after, every gate figure,
   the verdict, CPU seconds and trainable parameters.

Writes `benchmarks/results/feedback.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMPORT_CHILD = """
import sys, time, json
from pathlib import Path
from songmill.catalogue import Catalogue
from songmill.feedback.ingest import import_file
catalogue = Catalogue.open(sys.argv[2])
started = time.perf_counter()
result = import_file(Path(sys.argv[1]), catalogue)
print(json.dumps({"rows": result.rows, "imported": result.imported, "rejected": result.rejected_count, "seconds": round(time.perf_counter() - started, 1)}))
"""


def write_play_log(path: Path, megabytes: int) -> int:
    """A play log of about `megabytes` MB: 50 ISRCs, plays spread over November 2026."""
    header = "ts,isrc,listener,conn_country,ms_played,reason_start,reason_end,skipped,saved\n"
    target, rows, written = megabytes * 1_000_000, 0, 0
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header)
        while written < target:
            lines = []
            for _ in range(10_000):
                n = rows
                done = n % 3 != 0
                lines.append(
                    f"2026-11-{1 + n % 30:02d}T{n % 24:02d}:{n % 60:02d}:{(n // 60) % 60:02d}Z,QZSGM26{n % 50:05d},listener-{n:09d},GB,"
                    f"{180000 if done else 12000 + n % 17000},clickrow,{'trackdone' if done else 'fwdbtn'},{str(not done).lower()},{str(n % 11 == 0).lower()}\n"
                )
                rows += 1
            chunk = "".join(lines)
            handle.write(chunk)
            written += len(chunk)
    return rows


def bench_import(megabytes: int, work: Path) -> dict:
    path = work / f"plays-{megabytes}mb.csv"
    started = time.perf_counter()
    generated = write_play_log(path, megabytes)
    generate_s = time.perf_counter() - started
    env = {**os.environ, "SONGMILL_VAR_DIR": str(work / f"var-{megabytes}"), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", IMPORT_CHILD, str(path), f"sqlite:///{work / f'c-{megabytes}.db'}"], stdout=subprocess.PIPE, env=env, text=True
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    out = json.loads(child.stdout.read().strip().splitlines()[-1])
    size = path.stat().st_size
    path.unlink()
    return {
        "file_mb": round(size / 1e6, 1),
        "rows": generated,
        **out,
        "rows_per_s": round(out["rows"] / max(out["seconds"], 1e-9)),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "generate_s": round(generate_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="size of the large import (MB)")
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--skip-import", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results: dict = {"machine": {"cpus": os.cpu_count()}}
    with tempfile.TemporaryDirectory(prefix="songmill-bench-feedback-") as folder:
        work = Path(folder)
        os.environ["SONGMILL_VAR_DIR"] = str(work / "var")
        if not args.skip_import:
            results["import"] = [bench_import(64, work), bench_import(args.mb, work)]
            for row in results["import"]:
                print(f"import {row['file_mb']} MB: {row['rows']} rows in {row['seconds']} s ({row['rows_per_s']} rows/s), peak RSS {row['peak_rss_mib']} MiB")
        from songmill.feedback.simulate import simulate_nights, simulate_refinement

        started = time.perf_counter()
        planning = simulate_nights(args.nights, tracks=12)
        planning["seconds"] = round(time.perf_counter() - started, 1)
        results["planning"] = planning
        print(
            f"planning: {args.nights} nights in {planning['seconds']} s; preferred share prior {planning['prior_share']}, "
            f"first {planning['window']} nights {planning['first_nights_share']}, last {planning['window']} nights {planning['last_nights_share']}"
        )
        print("curve: " + " ".join(f"{c['preferred_share']:.2f}" for c in planning["curve"]))
        results["refinement"] = {}
        for method in ("full", "lora"):
            started = time.perf_counter()
            refined = simulate_refinement(method=method)
            refined["seconds"] = round(time.perf_counter() - started, 1)
            results["refinement"][method] = refined
            ev = refined["evaluation"]
            print(
                f"refinement ({method}): step share {refined['step_share']['in_use']} → {refined['step_share']['refined']}; "
                f"preference {ev['in_use']['preference']} → {ev['candidate']['preference']}; NLL {ev['in_use']['heldout_nll']} → {ev['candidate']['heldout_nll']}; "
                f"{refined['training']['trainable_parameters']} trainable parameters, {refined['training']['cpu_s']} CPU-s; verdict {ev['verdict']}"
                + (f" ({'; '.join(ev['reasons'])})" if ev["reasons"] else "")
            )
    out = ROOT / "benchmarks" / "results" / "feedback.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
