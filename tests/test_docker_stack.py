"""scripts/docker_stack.py without a Docker engine: what a user without one is told, in one
sentence each, and the compose environment it hands over (programs on PATH replaced by small
scripts here; the real engine is `make test-docker`'s)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT

sys.path.insert(0, str(PROJECT / "scripts"))
import docker_stack  # noqa: E402


def program(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def bare_path(tmp_path, monkeypatch) -> Path:
    """A PATH holding only a folder of our own (plus the shell's basics for the scripts)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("sh", "cat", "env"):
        os.symlink(f"/bin/{tool}", folder / tool)
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return folder


def test_no_docker_client_says_what_to_install(bare_path):
    with pytest.raises(docker_stack.StackError) as err:
        docker_stack.Engine.start()
    assert str(err.value) == "the docker client is not installed; install Debian's docker.io (apt-get install docker.io)"


def test_no_engine_and_no_dockerd_says_what_to_do(bare_path):
    program(bare_path, "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    with pytest.raises(docker_stack.StackError) as err:
        docker_stack.Engine.start()
    assert "no Docker engine answers and dockerd is not installed" in str(err.value) and "\n" not in str(err.value)


def test_a_failing_command_is_its_last_line(bare_path):
    program(bare_path, "docker", "echo 'step 3/30' ; echo 'pull access denied for local/nothing' >&2; exit 1")
    with pytest.raises(docker_stack.StackError) as err:
        docker_stack.Engine(env=dict(os.environ)).docker("pull", "local/nothing", what="pulling local/nothing")
    assert str(err.value) == "pulling local/nothing failed: pull access denied for local/nothing"


def test_the_env_file_wins_over_the_callers_environment(bare_path, tmp_path, monkeypatch):
    program(bare_path, "docker-compose", 'echo "$SONGMILL_CONFIG_DIR|$KEEP_ME"')
    env_file = tmp_path / ".env"
    env_file.write_text("# the stack's settings\nSONGMILL_CONFIG_DIR=/from/the/env/file\n")
    monkeypatch.setenv("SONGMILL_CONFIG_DIR", "/from/this/shell")
    monkeypatch.setenv("KEEP_ME", "kept")
    stack = docker_stack.Stack(docker_stack.Engine(env=dict(os.environ)), "songmill-unit", env_file)
    assert stack.compose("config").stdout.strip() == "|kept"  # compose reads it from the env file itself
