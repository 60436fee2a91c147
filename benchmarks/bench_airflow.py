"""`make bench` (second part): what Airflow costs over `songmill render` for the same release.

Renders the demo single three ways, each cold (its own empty store and catalogue):
1. `songmill render` in-process (the embedded runner);
2. `dag.test()` of its release DAG: every task in this process, one after another;
3. a live Airflow (scripts/airflow_local.py: api-server, scheduler, dag-processor, triggerer,
   LocalExecutor, SQLite), triggered through the REST API: every task its own process.
Reports wall seconds end to end, the stages' own compute (from the run report), the overhead
(wall minus the stages' wall), and how long parsing every DAG takes. Writes
`benchmarks/results/airflow.json`. Never part of the test suite.

    python benchmarks/bench_airflow.py --batch 4    # and a night's batch: 4 songs

`--batch N` adds a batch: an EP of N copies of the demo's track (each its own title, theme and
seed), rendered by `songmill render --jobs 2` and by the live Airflow as `make airflow` sets it
up (on two cores: three task slots, and the `gpu` pool as wide, scripts/airflow_local.py says
why), each cold; goal ≤ 1.1× (issue 22).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "config" / "releases" / "demo.yaml"


def _stage_wall(report: dict) -> float:
    return round(sum(t["wall_s"] for t in report["stage_totals"].values()), 2)


def _row(label: str, wall_s: float, report: dict) -> dict:
    stages = _stage_wall(report)
    return {
        "runner": label,
        "wall_s": round(wall_s, 2),
        "stages_wall_s": stages,
        "stages_cpu_s": round(sum(t["cpu_s"] for t in report["stage_totals"].values()), 2),
        "release_steps_wall_s": report["release_steps"]["wall_s"],
        "overhead_s": round(wall_s - stages - report["release_steps"]["wall_s"], 2),
        # every delivered file but the DDEX message and the checksum manifest that lists it: a
        # message has its own MessageId and MessageCreatedDateTime, whoever runs it
        "delivered": {(d["profile"] + ":" + Path(d["path"]).name): d["sha256"] for d in report["delivered"] if d["format"] not in ("ddex", "manifest")},
    }


def bench_render(work: Path) -> dict:
    from songmill.engine.runner import render

    os.environ["SONGMILL_VAR_DIR"] = str(work / "var-render")
    start = time.perf_counter()
    report = json.loads(render(CONFIG, out_dir=work / "dist-render").read_text())
    return _row("songmill render", time.perf_counter() - start, report)


def bench_dag_test(work: Path) -> dict:
    import subprocess

    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    sys.path.insert(0, str(ROOT / "dags"))
    import songmill_releases

    os.environ["SONGMILL_VAR_DIR"] = str(work / "var-dagtest")
    os.environ["SONGMILL_OUT_DIR"] = str(work / "dist-dagtest")
    dag = songmill_releases.build_release_dags(CONFIG.parent)["songmill_release_demo"]
    start = time.perf_counter()
    run = dag.test()
    wall = time.perf_counter() - start
    assert run.state == "success", run.state
    return _row("dag.test()", wall, json.loads((work / "dist-dagtest" / "demo-single" / "run-report.json").read_text()))


def bench_live(
    work: Path,
    *,
    dag_id: str = "songmill_release_demo",
    release_id: str = "demo-single",
    extra_env: dict | None = None,
    label: str = "Airflow LocalExecutor (live)",
) -> dict:
    import importlib.util

    sys.path.insert(0, str(ROOT / "tests"))
    spec = importlib.util.spec_from_file_location("airflow_local", ROOT / "scripts" / "airflow_local.py")
    launcher = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = launcher
    spec.loader.exec_module(launcher)
    from tests.test_airflow_live import Rest

    env = {
        "SONGMILL_VAR_DIR": str(work / "var-live"),
        "SONGMILL_OUT_DIR": str(work / "dist-live"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'live-airflow.db'}",
        **(extra_env or {}),
    }
    work.mkdir(parents=True, exist_ok=True)
    airflow = launcher.start(work / "live-home", extra_env=env)
    try:
        rest = Rest(airflow.url, airflow.password(), airflow)
        rest.unpause(dag_id)
        scheduler = airflow.processes["scheduler"].pid
        cpu_before = {name: _tree_cpu_s(p.pid) for name, p in airflow.processes.items()} | {"scheduler loop": _tree_cpu_s(scheduler, own=True)}
        triggered = time.time()
        run_id = rest.trigger(dag_id)
        state = rest.wait(dag_id, run_id, timeout_s=3600)
        assert state == "success", state
        # read once the wait sees the run end (it looks every 3 s): up to 3 s of idle services more
        cpu_during = {name: round(_tree_cpu_s(p.pid) - cpu_before[name], 1) for name, p in airflow.processes.items()}
        cpu_during["scheduler loop"] = round(_tree_cpu_s(scheduler, own=True) - cpu_before["scheduler loop"], 1)  # part of the scheduler's
        # until Airflow recorded the run's end (its own clock, this machine's), not until the wait
        # next looked: it looks every 3 s, which added 0–3 s to every live figure before 2026-12-04 (late)
        wall = _ended_at(rest.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")) - triggered
        tasks = rest.task_instances(dag_id, run_id)
    finally:
        airflow.stop()
    row = _row(label, wall, json.loads((work / "dist-live" / release_id / "run-report.json").read_text()))
    row["tasks"] = len(tasks)
    row["task_duration_s"] = round(sum(t["duration"] or 0 for t in tasks), 2)
    slots = int(airflow.env["AIRFLOW__CORE__PARALLELISM"])  # what the scheduler was given (scripts/airflow_local.py)
    row["slots"] = slots
    row["gpu_pool_slots"] = launcher.gpu_slots(airflow.env)  # the vocals' pool (one per GPU; with none, as wide as the slots)
    # CPU seconds each Airflow process used while the run ran (the scheduler's: with its
    # LocalExecutor workers and every task they forked), and what of it was not the stages' own
    row["cpu_s_by_process"] = cpu_during
    row["cpu_s_outside_stages"] = round(sum(v for k, v in cpu_during.items() if k != "scheduler loop") - row["stages_cpu_s"], 1)
    row.update(_timeline(tasks, triggered, triggered + wall, slots))
    return row


def _timeline(tasks: list[dict], triggered: float, ended: float, slots: int) -> dict:
    """Where a live run's wall went besides its tasks: when each task was queued, started and
    ended (seconds after the trigger), and the task-slot seconds in which no task ran (the gaps
    between one task's end and the next one's start, summed over the `slots` slots)."""
    import datetime as dt

    def at(value: str | None) -> float | None:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - triggered if value else None

    rows = sorted(
        (
            {
                "task": t["task_id"] + (f"[{t['map_index']}]" if t.get("map_index", -1) >= 0 else ""),
                "queued_s": at(t.get("queued_when")),
                "start_s": at(t["start_date"]),
                "end_s": at(t["end_date"]),
            }
            for t in tasks
            if t.get("start_date")
        ),
        key=lambda r: r["start_s"],
    )
    edges = sorted([(r["start_s"], 1) for r in rows] + [(r["end_s"], -1) for r in rows if r["end_s"] is not None])
    idle, running, last = 0.0, 0, 0.0
    for moment, step in edges:
        idle += max(slots - running, 0) * (moment - last)
        running, last = running + step, moment
    idle += max(slots - running, 0) * max(ended - triggered - last, 0.0)
    return {
        "first_task_start_s": round(rows[0]["start_s"], 2) if rows else None,
        "idle_slot_s": round(idle, 1),
        "timeline": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    }


def _own_cpu_s() -> float:
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _tree_cpu_s(pid: int, *, own: bool = False) -> float:
    """CPU seconds (user + system) of a process and all its descendants, living or ended and
    waited for, from Linux's /proc (0.0 where there is none); `own`: the process's alone."""
    stats: dict[int, tuple[int, float]] = {}  # pid → (parent pid, its own and its ended children's CPU s)
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended while we looked
            continue
        stats[int(entry.parent.name)] = (int(fields[1]), sum(int(x) for x in fields[11 : 13 if own else 15]) / tick)
    if own:
        return stats.get(pid, (0, 0.0))[1]
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == current]
    return total


def _ended_at(dag_run: dict) -> float:
    """A DAG run's end as a POSIX timestamp, from the REST API's `end_date` (ISO 8601, UTC)."""
    import datetime as dt

    return dt.datetime.fromisoformat(dag_run["end_date"].replace("Z", "+00:00")).timestamp()


def batch_config(config_dir: Path, tracks: int) -> Path:
    """An EP of `tracks` copies of the demo's track in `config_dir`/releases/bench-batch.yaml (its DAG:
    songmill_release_bench-batch): what a night renders, in one release."""
    import yaml

    spec = yaml.safe_load(CONFIG.read_text())
    spec["release"].update(
        {"id": "bench-batch", "title": "Bench Batch", "type": "single" if tracks == 1 else "ep" if tracks <= 6 else "album", "profiles": ["streaming"]}
    )
    demo = spec["tracks"][0]
    themes = ["lanterns drifting over the river at night", "a harbour town at dawn", "the last train home", "a summer that would not end"]
    spec["tracks"] = [{**demo, "title": f"Batch Song {n + 1}", "theme": themes[n % len(themes)], "seed": demo["seed"] + 101 * n} for n in range(tracks)]
    path = config_dir / "releases" / "bench-batch.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def bench_batch(work: Path, tracks: int) -> list[dict]:
    """The batch rendered by `songmill render --jobs 2`, then by the live Airflow (each cold)."""
    import shutil

    from songmill.engine.runner import render

    config_dir = work / "config"
    shutil.copytree(ROOT / "config", config_dir)
    config = batch_config(config_dir, tracks)
    os.environ["SONGMILL_CONFIG_DIR"] = str(config_dir)
    os.environ["SONGMILL_VAR_DIR"] = str(work / "var-batch-render")
    start, cpu = time.perf_counter(), _own_cpu_s()
    report = json.loads(render(config, out_dir=work / "dist-batch-render", jobs=2).read_text())
    rows = [_row(f"songmill render --jobs 2 ({tracks} songs)", time.perf_counter() - start, report)]
    rows[0]["cpu_s"] = round(_own_cpu_s() - cpu, 1)  # this process and its track workers (ended and waited for)
    rows[0]["cpu_s_outside_stages"] = round(rows[0]["cpu_s"] - rows[0]["stages_cpu_s"], 1)
    rows.append(
        bench_live(
            work / "batch-live",
            dag_id="songmill_release_bench-batch",
            release_id="bench-batch",
            label=f"Airflow LocalExecutor (live, {tracks} songs)",
        )
    )
    return rows


def bench_parse(work: Path) -> float:
    import subprocess

    script = (
        "import time\nfrom airflow.dag_processing.dagbag import DagBag\nfrom airflow.sdk import DAG, BaseOperator, Param\n"
        "t=time.perf_counter(); b=DagBag(dag_folder=%r); print(time.perf_counter()-t, len(b.dags), len(b.import_errors))" % str(ROOT / "dags")
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()[-1].split()
    return round(float(out[0]), 3)


def compared(rows: list[dict]) -> dict:
    """Each row against the first (the embedded render): its ratio, and which delivered files differ."""
    same = all(r["delivered"] == rows[0]["delivered"] for r in rows)
    for r in rows[1:]:  # which files differ from the embedded render's, when any do
        r["differs_from_render"] = sorted(
            name for name in set(r["delivered"]) | set(rows[0]["delivered"]) if r["delivered"].get(name) != rows[0]["delivered"].get(name)
        )
    base = rows[0]["wall_s"]
    for r in rows:
        r["vs_render"] = round(r["wall_s"] / base, 3)
        r["delivered"] = len(r["delivered"])
    return {"same_files_delivered": same, "runs": rows}


def _print_rows(title: str, part: dict) -> None:
    print(f"{title}; same files delivered by all: {part['same_files_delivered']}")
    print(f"{'runner':44} {'wall s':>8} {'stages s':>9} {'release s':>10} {'overhead s':>11} {'x render':>9} {'CPU s not in stages':>20}")
    for r in part["runs"]:
        outside = f"{r['cpu_s_outside_stages']:20.1f}" if "cpu_s_outside_stages" in r else f"{'-':>20}"
        print(
            f"{r['runner']:44} {r['wall_s']:8.1f} {r['stages_wall_s']:9.1f} {r['release_steps_wall_s']:10.1f} {r['overhead_s']:11.1f} {r['vs_render']:9.3f} {outside}"
        )
    for r in part["runs"]:
        if "cpu_s_by_process" in r:
            print(f"  {r['runner']}: CPU s while it ran, by process: {r['cpu_s_by_process']}; task slots idle {r['idle_slot_s']} s")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=0, metavar="N", help="also a batch of N songs (goal ≤ 1.1×)")
    parser.add_argument("--batch-only", action="store_true", help="only the batch; the one-song figures are kept from the last run")
    args = parser.parse_args()
    out = ROOT / "benchmarks/results/airflow.json"
    result = json.loads(out.read_text()) if args.batch_only and out.exists() else {}
    with tempfile.TemporaryDirectory(prefix="songmill-bench-airflow-") as tmp:
        work = Path(tmp)
        os.environ.update(
            {
                "AIRFLOW_HOME": str(work / "airflow"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "SOURCE_DATE_EPOCH": "1790000000",
            }
        )
        for key in ("SONGMILL_STORE", "SONGMILL_DATABASE_URL"):
            os.environ.pop(key, None)
        if not args.batch_only:
            result.update({"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(), "config": str(CONFIG.relative_to(ROOT))})
            result["dag_parse_s"] = bench_parse(work)
            result.update(compared([bench_render(work), bench_dag_test(work), bench_live(work)]))
        if args.batch or args.batch_only:
            songs = args.batch or 4
            batch = compared(bench_batch(work, songs))
            result["batch"] = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "songs": songs, "goal_vs_render": 1.1, **batch}
    out.write_text(json.dumps(result, indent=1))
    if "runs" in result:
        _print_rows(f"Airflow overhead, demo single, cold, {os.cpu_count()} cores; parsing every DAG {result['dag_parse_s']} s", result)
    if "batch" in result:
        _print_rows(f"A batch of {result['batch']['songs']} songs, cold", result["batch"])
    print(out)


if __name__ == "__main__":
    main()
