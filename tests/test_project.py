"""Project contracts: pinned requirements, the compose file, the room layout of DESIGN.md."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import PROJECT


def test_every_requirement_is_pinned():
    lines = [line.split("#")[0].strip() for line in (PROJECT / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("-")]
    assert requirements and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.+\-]+", r) for r in requirements), requirements
    assert "torch==2.13.0" in requirements


def test_layout_matches_design():
    for room in ("songmill", "models", "qc", "operators", "plugins", "dags", "config", "tests", "benchmarks"):
        assert (PROJECT / room).is_dir(), room
    for contract in ("docker-compose.yaml", "Dockerfile", "requirements.txt", "README.md", "Makefile", ".ci/run"):
        assert (PROJECT / contract).is_file(), contract
    assert "make test" in (PROJECT / ".ci/run").read_text()
    readme = (PROJECT / "README.md").read_text()
    assert readme.index("make demo") < readme.index("make test") < readme.index("## ")


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="Debian's docker-compose is installed by make setup")
def test_compose_file_is_valid_and_has_no_default_secrets(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("POSTGRES_PASSWORD=pw\nSONGMILL_S3_ACCESS_KEY=ak\nSONGMILL_S3_SECRET_KEY=sk\n"
                        "AIRFLOW_FERNET_KEY=fk\nAIRFLOW_JWT_SECRET=js\nAIRFLOW_ADMIN_PASSWORD=ap\n")
    compose = ["docker-compose", "-f", str(PROJECT / "docker-compose.yaml")]
    clean_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    ok = subprocess.run([*compose, "--env-file", str(env_file), "config", "-q"], capture_output=True, text=True,
                        env=clean_env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "empty.env").touch()
    missing = subprocess.run([*compose, "--env-file", str(tmp_path / "empty.env"), "config", "-q"],
                             capture_output=True, text=True, env=clean_env, cwd=tmp_path)
    assert missing.returncode != 0 and "set POSTGRES_PASSWORD in .env" in missing.stderr
    for secret in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD"):  # each one required
        partial = tmp_path / f"without-{secret}.env"
        partial.write_text("".join(line + "\n" for line in env_file.read_text().splitlines() if not line.startswith(secret)))
        result = subprocess.run([*compose, "--env-file", str(partial), "config", "-q"], capture_output=True, text=True,
                                env=clean_env, cwd=tmp_path)
        assert result.returncode != 0 and f"set {secret} in .env" in result.stderr, secret
    services = subprocess.run([*compose, "--env-file", str(env_file), "config", "--services"], capture_output=True,
                              text=True, env=clean_env, cwd=tmp_path).stdout.split()
    assert {"postgres", "redis", "seaweedfs", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "airflow-worker", "airflow-worker-gpu"} <= set(services)
    resolved = subprocess.run([*compose, "--env-file", str(env_file), "config"], capture_output=True, text=True,
                              env=clean_env, cwd=tmp_path).stdout
    import yaml

    gpu_worker = yaml.safe_load(resolved)["services"]["airflow-worker-gpu"]
    assert "gpu" in gpu_worker["command"] and gpu_worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
