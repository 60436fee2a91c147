"""The soak run (`make test-all`): a nightly batch of 24 songs rendered against a PostgreSQL
catalogue of its own while the render's processes are SIGKILLed at random moments and the
database is stopped and started again once; the render is retried until it completes, as a
scheduler would. Then every song that passed the gate is delivered exactly once, every
manifest verifies, no identifier is allocated twice, and `songmill catalogue check` is clean
once `--repair` has closed the killed runs. The counts go to benchmarks/results/soak.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

from tests import servers

PROJECT = Path(__file__).resolve().parent.parent
SONGS = 24
KILLS = 4  # SIGKILLs, each at a random moment of an attempt
KEYS = ["A minor", "C major", "E minor", "G major", "D major", "F major"]
VOICES = ["ava", "cleo", "ben", "dean"]


def soak_release(folder: Path) -> Path:
    """A nightly batch: the debug song's 12-bar form, 24 tracks of different keys, tempos, voices and seeds."""
    debug = yaml.safe_load((PROJECT / "config/releases/debug.yaml").read_text())
    template = debug["tracks"][0]
    tracks = []
    for n in range(SONGS):
        track = {**template, "title": f"Soak Song {n + 1}", "seed": 100 + n, "key": KEYS[n % len(KEYS)], "tempo": 96 + 4 * (n % 9)}
        track["voice"] = {"identity": VOICES[n % len(VOICES)], "style": "bright"}
        tracks.append(track)
    release = {**debug["release"], "id": "soak-nightly", "title": "Soak Nightly", "type": "album", "allow_partial": True}
    path = folder / "soak.yaml"
    path.write_text(yaml.safe_dump({"release": release, "tracks": tracks}, sort_keys=False))
    return path


def kill_tree(pid: int) -> int:
    """SIGKILL a render and every process it started (its worker pool); how many were killed."""
    try:
        family = psutil.Process(pid).children(recursive=True) + [psutil.Process(pid)]
    except psutil.NoSuchProcess:
        return 0
    for process in family:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    return len(family)


@pytest.mark.slow
def test_a_nightly_batch_survives_random_kills_and_a_database_restart(tmp_path):
    rng = np.random.default_rng(23)
    config, out, var = soak_release(tmp_path), tmp_path / "dist", tmp_path / "var"
    counts = {"songs": SONGS, "attempts": 0, "kills": 0, "processes_killed": 0, "database_restarts": 0}
    started = time.monotonic()
    with servers.embedded_postgres(restartable=True) as database:
        env = {**os.environ, "SONGMILL_VAR_DIR": str(var), "SONGMILL_DATABASE_URL": database.url}
        command = [sys.executable, "-m", "songmill", "render", str(config), "--out", str(out), "--jobs", "2"]
        restart_in = int(rng.integers(1, KILLS + 1))  # the attempt during which the database goes down
        while True:
            counts["attempts"] += 1
            attempt = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT)
            if counts["kills"] < KILLS:
                wait_s = float(rng.uniform(8, 60))
                try:
                    attempt.wait(timeout=wait_s)
                except subprocess.TimeoutExpired:
                    if counts["attempts"] == restart_in:
                        database.stop()  # PostgreSQL's fast shutdown, mid-render
                        counts["database_restarts"] += 1
                        time.sleep(2)
                        database.start()
                    counts["processes_killed"] += kill_tree(attempt.pid)
                    counts["kills"] += 1
            stdout, stderr = attempt.communicate(timeout=1800)
            if attempt.returncode == 0:
                break
            assert attempt.returncode in (-9, 1), stderr[-3000:]  # killed, or a clear failure (a dead database) to retry
            assert "Traceback" not in stderr, stderr[-3000:]
            assert counts["attempts"] < KILLS + 4, stderr[-3000:]
        report = json.loads(Path(stdout.strip().splitlines()[-1]).read_text())
        check = subprocess.run([sys.executable, "-m", "songmill", "catalogue", "check", "--json"], env=env, capture_output=True, text=True, cwd=PROJECT)
        repaired = subprocess.run(
            [sys.executable, "-m", "songmill", "catalogue", "check", "--repair", "--json"], env=env, capture_output=True, text=True, cwd=PROJECT
        )
        final = subprocess.run([sys.executable, "-m", "songmill", "catalogue", "check", "--json"], env=env, capture_output=True, text=True, cwd=PROJECT)
        deliveries = json.loads(
            subprocess.run(
                [sys.executable, "-m", "songmill", "catalogue", "deliveries", "soak-nightly", "--json"], env=env, capture_output=True, text=True, cwd=PROJECT
            ).stdout
        )
    from songmill.release.deliver import verify_folder

    statuses = [t["status"] for t in report["tracks"]]
    [folder] = [p for p in (out / "streaming").iterdir() if p.is_dir()]
    flacs = sorted(p.name for p in folder.rglob("*.flac"))
    passed = sum(1 for s in statuses if s == "delivered" or s == "rendered")
    assert verify_folder(folder) == []
    assert len(flacs) == len(set(flacs)) == passed  # every passing song once, none twice
    isrcs = [isrc for isrc in report["isrcs"].values() if isrc]
    assert len(isrcs) == len(set(isrcs)) == passed  # an ISRC each, none twice
    assert [d["replaces"] for d in deliveries] == [None] + [d["id"] for d in deliveries[:-1]]  # one chain, never side by side
    findings = json.loads(check.stdout)["findings"]
    assert {f["kind"] for f in findings} <= {"interrupted-run", "leftover-staging", "leftover-upload"}, findings
    assert json.loads(final.stdout)["left"] == 0 and final.returncode == 0, final.stdout
    counts.update(
        {
            "delivered": len(flacs),
            "isrcs": len(isrcs),
            "not_delivered": SONGS - passed,
            "deliveries_recorded": len(deliveries),
            "findings_before_repair": {k: sum(1 for f in findings if f["kind"] == k) for k in sorted({f["kind"] for f in findings})},
            "repaired": sum(1 for f in json.loads(repaired.stdout)["findings"] if f["repaired"]),
            "check_after_repair": "clean",
            "wall_s": round(time.monotonic() - started, 1),
        }
    )
    (PROJECT / "benchmarks/results").mkdir(exist_ok=True)
    (PROJECT / "benchmarks/results/soak.json").write_text(json.dumps(counts, indent=1) + "\n")
