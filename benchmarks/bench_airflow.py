"""`make bench` (second part): what Airflow costs over `songmill render` for the same release.

Renders the demo single three ways, each cold (its own empty store and catalogue):
1. `songmill render` in-process (the embedded runner);
2. `dag.test()` of its release DAG: every task in this process, one after another;
3. a live Airflow (scripts/airflow_local.py: api-server, scheduler, dag-processor, triggerer,
   LocalExecutor, SQLite), triggered through the REST API: every task its own process.
Reports wall seconds end to end, the stages' own compute (from the run report), the overhead
(wall minus the stages' wall), and how long parsing every DAG takes. Writes
`benchmarks/results/airflow.json`. Never part of the test suite.
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


def bench_live(work: Path) -> dict:
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
    }
    airflow = launcher.start(work / "live-home", extra_env=env)
    try:
        rest = Rest(airflow.url, airflow.password(), airflow)
        rest.unpause("songmill_release_demo")
        start = time.perf_counter()
        run_id = rest.trigger("songmill_release_demo")
        state = rest.wait("songmill_release_demo", run_id, timeout_s=1800)
        wall = time.perf_counter() - start
        assert state == "success", state
        tasks = rest.task_instances("songmill_release_demo", run_id)
    finally:
        airflow.stop()
    row = _row("Airflow LocalExecutor (live)", wall, json.loads((work / "dist-live" / "demo-single" / "run-report.json").read_text()))
    row["tasks"] = len(tasks)
    row["task_duration_s"] = round(sum(t["duration"] or 0 for t in tasks), 2)
    return row


def bench_parse(work: Path) -> float:
    import subprocess

    script = (
        "import time\nfrom airflow.dag_processing.dagbag import DagBag\nfrom airflow.sdk import DAG, BaseOperator, Param\n"
        "t=time.perf_counter(); b=DagBag(dag_folder=%r); print(time.perf_counter()-t, len(b.dags), len(b.import_errors))" % str(ROOT / "dags")
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()[-1].split()
    return round(float(out[0]), 3)


def main() -> None:
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
        parse_s = bench_parse(work)
        rows = [bench_render(work), bench_dag_test(work), bench_live(work)]
    same = all(r["delivered"] == rows[0]["delivered"] for r in rows)
    for r in rows[1:]:  # which files differ from the embedded render's, when any do
        r["differs_from_render"] = sorted(
            name for name in set(r["delivered"]) | set(rows[0]["delivered"]) if r["delivered"].get(name) != rows[0]["delivered"].get(name)
        )
    base = rows[0]["wall_s"]
    for r in rows:
        r["vs_render"] = round(r["wall_s"] / base, 3)
        r["delivered"] = len(r["delivered"])
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "config": str(CONFIG.relative_to(ROOT)),
        "dag_parse_s": parse_s,
        "same_files_delivered": same,
        "runs": rows,
    }
    out = ROOT / "benchmarks/results/airflow.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"Airflow overhead, demo single, cold, {os.cpu_count()} cores; parsing every DAG {parse_s} s; same files delivered by all three: {same}")
    print(f"{'runner':30} {'wall s':>8} {'stages s':>9} {'release s':>10} {'overhead s':>11} {'x render':>9}")
    for r in rows:
        print(f"{r['runner']:30} {r['wall_s']:8.1f} {r['stages_wall_s']:9.1f} {r['release_steps_wall_s']:10.1f} {r['overhead_s']:11.1f} {r['vs_render']:9.3f}")
    print(out)


if __name__ == "__main__":
    main()
