"""The Docker images built and the compose stack run on this machine (`make test-docker`).

dockerd is the one running, or one the test starts as root and stops by PID. No registry is
reachable here, so the base is Debian bookworm made by debootstrap and `docker import`
(scripts/docker_stack.py); pip and apt use the host network during the build. The stack is
docker-compose.yaml with deploy/docker/compose.local-images.yaml (PostgreSQL, Redis and SeaweedFS
from a Debian-built image): the api-server, scheduler, dag-processor, triggerer, a cpu and a gpu
Celery worker. The nightly DAG is triggered through the REST API for a two-track night; the gpu
worker's container is killed in the middle of a vocals task and started again; the task is
retried and every track delivered exactly once. Every container, network and volume the test
made is removed (the images stay: they are the build cache). Figures go to
benchmarks/results/docker.json.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT
from tests.servers import free_port
from tests.test_airflow_live import Rest, _verify_delivery

sys.path.insert(0, str(PROJECT / "scripts"))
import docker_stack  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.docker]
RESULTS = PROJECT / "benchmarks" / "results" / "docker.json"
figures: dict = {}


@pytest.fixture(scope="module")
def engine():
    engine = docker_stack.Engine.start()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def images(engine):
    figures["base_s"] = round(docker_stack.build_local_base(engine), 1)
    built = docker_stack.build_images(engine, docker_stack.LOCAL_BASE)
    figures["images"] = {i.name: {"build_s": round(i.seconds, 1), "size_gb": round(i.bytes / 1e9, 2), "user": i.user} for i in built}
    return {i.name: i for i in built}


def _docker_config(folder: Path, test_config_dir: Path) -> Path:
    """The test config for the containers: a two-track night of 30-second songs, fast retries,
    the test signing key copied in and named by its path inside the container."""
    config = folder / "config"
    shutil.copytree(test_config_dir, config)
    signing = config / "signing"
    shutil.copytree(test_config_dir.parent / "signing", signing)
    delivery = yaml.safe_load((config / "delivery.yaml").read_text())
    delivery["signing"] = {key: f"/opt/songmill/config/signing/{Path(value).name}" for key, value in delivery["signing"].items()}
    (config / "delivery.yaml").write_text(yaml.safe_dump(delivery, sort_keys=False))
    plan = (config / "catalogue.yaml").read_text()
    plan = re.sub(r"tracks_per_night: \d+", "tracks_per_night: 2", plan)
    plan = re.sub(r"target_duration_s: \d+", "target_duration_s: 30", plan)
    plan = re.sub(r'schedule: "[^"]*"', "schedule: null", plan)  # the night runs when the test triggers it, not on unpausing
    (config / "catalogue.yaml").write_text(plan)
    settings = (config / "airflow.yaml").read_text().replace("retry_delay_s: 30", "retry_delay_s: 2").replace("retries: 3", "retries: 2")
    (config / "airflow.yaml").write_text(settings)
    for path in config.rglob("*"):  # the containers' user (uid 50000) reads it
        path.chmod(0o755 if path.is_dir() else 0o644)
    return config


@pytest.fixture(scope="module")
def stack(engine, images, tmp_path_factory, test_config_dir):
    tmp = tmp_path_factory.mktemp("docker")
    dist = tmp / "dist"
    dist.mkdir()
    dist.chmod(0o777)  # written by the containers' user
    port = free_port()
    env_file = tmp / ".env"
    env_file.write_text(
        "\n".join(
            [
                f"POSTGRES_PASSWORD={secrets.token_hex(16)}",
                f"AIRFLOW_FERNET_KEY={base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}",
                f"AIRFLOW_JWT_SECRET={secrets.token_hex(32)}",
                f"AIRFLOW_ADMIN_PASSWORD={secrets.token_hex(12)}",
                f"SONGMILL_S3_ACCESS_KEY={secrets.token_hex(8)}",
                f"SONGMILL_S3_SECRET_KEY={secrets.token_hex(16)}",
                f"SONGMILL_API_PORT={port}",
                f"SONGMILL_CONFIG_DIR={_docker_config(tmp, test_config_dir)}",
                f"SONGMILL_DIST_DIR={dist}",
            ]
        )
        + "\n"
    )
    # the scheduler notices a lost worker within a minute (the deployment default is two)
    faster = tmp / "compose.test.yaml"
    faster.write_text('version: "3.8"\nservices:\n  airflow-scheduler:\n    environment:\n      AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT: "60"\n')
    stack = docker_stack.Stack(engine, f"songmill-test-{secrets.token_hex(3)}", env_file, extra_files=(faster,))
    try:
        start = time.monotonic()
        stack.up()
        healthy = stack.wait_healthy(f"http://127.0.0.1:{port}/api/v2/monitor/health")
        figures["stack_up_s"] = round(time.monotonic() - start, 1)
        figures["api_healthy_after_s"] = round(healthy, 1)
        password = dict(line.split("=", 1) for line in env_file.read_text().splitlines())["AIRFLOW_ADMIN_PASSWORD"]
        yield stack, Rest(f"http://127.0.0.1:{port}", password), dist, env_file
    finally:
        stack.down()
        left = stack.leftovers()
        figures["leftovers"] = left
        RESULTS.write_text(json.dumps(figures, indent=1) + "\n")
        assert left == {"containers": [], "networks": [], "volumes": []}, left


def test_every_native_library_the_stages_load_is_in_the_image(engine, images):
    modules = "pedalboard pyworld onnxruntime torch soundfile librosa c2pa pocketsphinx great_expectations music21 pretty_midi soxr perth diffusers"
    probe = f"import importlib\nfor m in {modules.split()!r}: importlib.import_module(m)\nprint('ok')"
    result = engine.docker("run", "--rm", "--entrypoint", "python", docker_stack.AIRFLOW_IMAGE, "-W", "ignore", "-c", probe, check=False)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
    for tool in ("ffmpeg -version", "fluidsynth --version", "espeak-ng --version", "fpcalc -version"):
        assert engine.docker("run", "--rm", "--entrypoint", tool.split()[0], docker_stack.AIRFLOW_IMAGE, *tool.split()[1:], check=False).returncode == 0, tool


def test_the_images_run_as_a_non_root_user_with_no_secret_baked_in(engine, images):
    for image in images.values():
        if image.name == docker_stack.AIRFLOW_IMAGE:
            assert image.user == "airflow"
            assert engine.docker("run", "--rm", image.name, "id", "-u").stdout.strip() == "50000"
        probe = "ls /opt/songmill/.env /opt/songmill/var/demo-signing /usr/local/share/ca-certificates/*.crt /opt/songmill/docker 2>/dev/null | wc -l"
        assert engine.docker("run", "--rm", "--entrypoint", "/bin/sh", image.name, "-c", probe).stdout.strip() == "0", image.name
        inspected = json.loads(engine.docker("image", "inspect", image.name).stdout)[0]
        names = {entry.split("=", 1)[0] for entry in inspected["Config"]["Env"] or []}
        assert not {n for n in names if re.search(r"PASSWORD|SECRET|FERNET|TOKEN|ACCESS_KEY", n)}, names


def test_a_base_that_does_not_exist_is_one_sentence(engine):
    with pytest.raises(docker_stack.StackError) as err:
        docker_stack.build_image(engine, "songmill-never:test", base="local/no-such-base:1", dockerfile=PROJECT / "Dockerfile")
    assert "the base image local/no-such-base:1 does not exist on this Docker engine and cannot be pulled" in str(err.value)


def test_a_container_that_exits_is_named_with_its_last_words(engine, images, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("POSTGRES_PASSWORD=x\n")
    stack = docker_stack.Stack(engine, f"songmill-exit-{secrets.token_hex(3)}", env_file)
    try:
        engine.docker("run", "-d", "--label", f"com.docker.compose.project={stack.project}", "--label", "com.docker.compose.service=airflow-scheduler",
                      "--name", f"{stack.project}-scheduler", docker_stack.AIRFLOW_IMAGE, "sh", "-c", "echo the metadata database is unreachable; exit 3")  # fmt: skip
        time.sleep(3)
        with pytest.raises(docker_stack.StackError) as err:
            stack.check_running()
        assert str(err.value) == f"container {stack.project}-scheduler exited with code 3: the metadata database is unreachable"
    finally:
        engine.docker("rm", "-f", f"{stack.project}-scheduler", check=False)
    assert stack.leftovers()["containers"] == []


def test_the_nightly_batch_survives_a_killed_gpu_worker_and_delivers_each_track_once(stack):
    stack, rest, dist, _ = stack
    dag_id = "songmill_nightly_catalogue"
    rest.unpause(dag_id)
    start = time.monotonic()
    run_id = rest.trigger(dag_id)
    victim, deadline = None, time.monotonic() + 1200
    while victim is None and time.monotonic() < deadline:
        stack.check_running()
        for ti in rest.task_instances(dag_id, run_id):
            if ti["task_id"] == "track.vocals" and ti["state"] == "running":
                victim = ti
        time.sleep(1)
    assert victim is not None, "no vocals task ran"
    assert victim["hostname"] == "gpu-worker" and victim["queue"] == "gpu"
    time.sleep(2)  # inside the stage
    worker = stack.container("airflow-worker-gpu")
    stack.engine.docker("kill", worker["id"])
    figures["killed"] = {"task": victim["task_id"], "map_index": victim["map_index"], "try": victim["try_number"]}
    time.sleep(2)
    if stack.container("airflow-worker-gpu")["state"] != "running":
        stack.engine.docker("start", worker["id"])  # the worker comes back, as an orchestrator would bring it
    state = rest.wait(dag_id, run_id, timeout_s=2400)
    figures["night_s"] = round(time.monotonic() - start, 1)
    tis = rest.task_instances(dag_id, run_id)
    assert state == "success", [(t["task_id"], t["map_index"], t["state"]) for t in tis]
    killed = next(t for t in tis if t["task_id"] == "track.vocals" and t["map_index"] == victim["map_index"])
    assert killed["state"] == "success" and killed["try_number"] > victim["try_number"]
    figures["killed"]["retried_as_try"] = killed["try_number"]

    release = next(p.name for p in dist.iterdir() if p.name.startswith("nightly-"))
    report = json.loads((dist / release / "run-report.json").read_text())
    assert report["status"] == "succeeded" and report["runner"] == "airflow"
    delivered = [t for t in report["tracks"] if t["qc"] and t["qc"]["passed"]]
    assert len(report["tracks"]) == 2 and delivered
    rows = stack.psql(f"SELECT profile, destination, run_id FROM deliveries WHERE release_id = '{release}'")
    assert sorted(r[0] for r in rows) == sorted(report["release"]["profiles"])  # one delivery per profile: nothing twice
    for _, destination, _ in rows:
        local = dist / Path(destination).relative_to("/opt/songmill/dist")
        files = _verify_delivery(local)
        flacs = [f for f in files if f.endswith(".flac")]
        assert len(flacs) == len(delivered), files  # each track once
    isrcs = [r[0] for r in stack.psql(f"SELECT isrc FROM tracks WHERE release_id = '{release}' AND isrc IS NOT NULL")]
    assert len(set(isrcs)) == len(isrcs) == len(delivered)
    figures["tracks"] = len(report["tracks"])
    figures["delivered_tracks"] = len(delivered)
