"""`make airflow`: Airflow for one machine, every component its own process.

    python scripts/airflow_local.py            # api-server, scheduler, dag-processor, triggerer
    python scripts/airflow_local.py --port 8081

LocalExecutor, warmed (operators/local_executor.py: the scheduler imports the stages' libraries
before it forks the workers, so tasks start without importing them; `SONGMILL_PRELOAD=0` turns
that off); the metadata database is AIRFLOW__DATABASE__SQL_ALCHEMY_CONN when set (PostgreSQL
for anything beyond a try-out), else SQLite in var/airflow/. The home (var/airflow/ or
$AIRFLOW_HOME) keeps a generated JWT secret and the admin password (Airflow's simple auth
manager) so a restart keeps its login. Ctrl-C stops every process by its PID. The live tests
start the same processes through `start()`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
WARM_LOCAL_EXECUTOR = "operators.local_executor.WarmLocalExecutor"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


@dataclass
class LocalAirflow:
    home: Path
    port: int
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    log_offsets: dict[str, int] = field(default_factory=dict)  # where each process log stood when it started (logs append)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def password(self) -> str:
        return json.loads((self.home / "passwords.json").read_text())["admin"]

    def stop(self) -> None:
        """SIGTERM every process (then SIGKILL after 20 s), by PID; children included."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def airflow_environment(home: Path, port: int, *, executor: str = WARM_LOCAL_EXECUTOR, extra: dict | None = None) -> dict[str, str]:
    """The settings every component shares (one JWT secret: the api-server signs the tokens the
    task processes present)."""
    home.mkdir(parents=True, exist_ok=True)
    secret_file = home / "jwt-secret"
    if not secret_file.exists() or len(secret_file.read_bytes()) < 64:  # the api-server asks for 64 bytes or more (SHA512)
        secret_file.write_text(secrets.token_urlsafe(64))
        secret_file.chmod(0o600)
    passwords = home / "passwords.json"
    if not passwords.exists():
        passwords.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
        passwords.chmod(0o600)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",  # unpause in the UI (the nightly would start at once)
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        # one task more than cores: a task's first and last moments (its fork, its XCom, the
        # scheduler seeing it end) leave its core idle, and a task waiting beside it fills them
        # (a batch of four songs on two cores: 133.9 s with three slots against 141.0 s with two)
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", str((os.cpu_count() or 1) + 1)),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # the scheduler looks for the next task twice a second when idle (Airflow: once): a song's
        # twelve tasks start sooner. Each look weighs every task of the run not yet done (a batch
        # of four songs: 39), so looking 4 times a second cost that batch 20 CPU-s of the scheduler
        # (0.5 s: 12.7; 1 s: 8.6) on the cores the stages need: 133.8 s, against 129.3 s and 127.9 s
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": os.environ.get("AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME", "0.5"),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        # a task's supervisor waits on its sockets at most this long at a time (Airflow: 5 s); when
        # the task closes them before it has fully exited (a busy machine), the supervisor only sees
        # the exit when that wait ends, and the worker stays taken meanwhile
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": os.environ.get("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", "1"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        # Celery workers warm up before their first task (operators/preload.py); unused otherwise
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "operators.celery_config.CELERY_CONFIG",
    }
    if not os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    env.update(extra or {})
    return env


def airflow_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "airflow"), *args]


def component_command(name: str) -> tuple[str, ...]:
    """The `airflow` arguments that start a component here. The scheduler and the triggerer run
    no log server: Airflow's binds every interface with no setting to narrow it, and here the
    api-server reads the task logs from the shared log folder, so nothing needs one."""
    return (name, "--skip-serve-logs") if name in ("scheduler", "triggerer") else (name,)


def gpu_slots(env: dict[str, str], *, devices: Path = Path("/dev")) -> int:
    """How many tasks of the `gpu` pool run at once: SONGMILL_GPU_SLOTS when set; else one where
    this machine has a GPU the tasks can see (`devices`/nvidia0, … unless CUDA_VISIBLE_DEVICES
    hides them: the neural stages run on the first GPU, `cuda`, and take turns on its memory);
    else, with none, the executor's parallelism: those stages then run on the CPU cores like
    every other stage, and a pool of one made a night's songs wait for each other's vocals (a
    batch of four songs on two cores: 127.9 s, against 130.2 s with one slot).

    Raises RuntimeError (`make airflow` prints it) when SONGMILL_GPU_SLOTS is not a whole number
    of slots."""
    asked = env.get("SONGMILL_GPU_SLOTS", "").strip()
    if asked:
        if not asked.isdecimal() or not asked.isascii() or int(asked) < 1:
            raise RuntimeError(f"SONGMILL_GPU_SLOTS is {asked!r}; set it to how many neural-stage tasks may run at once (1 or more), or unset it")
        return int(asked)
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        has_gpu = visible.strip() not in ("", "-1")
    else:
        has_gpu = any(path.name[len("nvidia") :].isdecimal() for path in devices.glob("nvidia*"))
    return 1 if has_gpu else max(1, int(env["AIRFLOW__CORE__PARALLELISM"]))


def prepare(env: dict[str, str], *, gpu_slots: int = 1) -> None:
    """Migrate the metadata database and create the `gpu` pool the neural stages use."""
    for args in (("db", "migrate"), ("pools", "set", "gpu", str(gpu_slots), "songmill stages with neural backends")):
        result = subprocess.run(airflow_command(*args), env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed: {result.stderr[-2000:]}")


def start_process(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> subprocess.Popen:
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as log:
        # its own process group: stopping it stops the task processes it forked too
        return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start(
    home: Path,
    *,
    port: int | None = None,
    executor: str = WARM_LOCAL_EXECUTOR,
    extra_env: dict | None = None,
    components: tuple[str, ...] = COMPONENTS,
    timeout_s: float = 120,
) -> LocalAirflow:
    port = port or _free_port()
    env = airflow_environment(home, port, executor=executor, extra=extra_env)
    prepare(env, gpu_slots=gpu_slots(env))
    airflow = LocalAirflow(home, port, env)
    try:
        for name in components:
            log = home / "process-logs" / f"{name}.log"
            airflow.log_offsets[name] = log.stat().st_size if log.exists() else 0
            airflow.processes[name] = start_process(name, airflow_command(*component_command(name)), env, home / "process-logs")
        _wait_healthy(airflow, timeout_s)
    except BaseException:
        airflow.stop()
        raise
    return airflow


def _project_importable() -> None:
    """The project's packages importable: run as a script, its own folder is on the path, not the project's."""
    if str(PROJECT) not in sys.path:
        sys.path.insert(0, str(PROJECT))


def _warm_execution_api(url: str) -> None:
    """The execution API's routes built before the first task needs them (operators/execution_api.py)."""
    _project_importable()
    from operators.execution_api import warm

    warm(url)


def _wait_healthy(airflow: LocalAirflow, timeout_s: float) -> None:
    deadline, answered = time.monotonic() + timeout_s, False
    while time.monotonic() < deadline:
        for name, process in airflow.processes.items():
            if process.poll() is not None:
                log = (airflow.home / "process-logs" / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {name} exited with {process.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"{airflow.url}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    if not answered:
                        _warm_execution_api(airflow.url)
                    answered = True
                    if executor_ready(airflow):
                        return
        except OSError:
            pass
        time.sleep(1)
    if answered:
        raise RuntimeError(f"the Airflow scheduler did not start its executor within {timeout_s:.0f} s (logs: {airflow.home / 'process-logs'})")
    raise RuntimeError(f"the Airflow api-server did not answer on {airflow.url} within {timeout_s:.0f} s (logs: {airflow.home / 'process-logs'})")


def executor_ready(airflow: LocalAirflow) -> bool:
    """Whether the scheduler's warm executor has started (its STARTED_MESSAGE in the scheduler's
    log since this start): the scheduler reports healthy before it starts its executor, and the
    warm executor imports for about 10 s first (a run triggered earlier waits for that). Other
    executors, or no scheduler here: ready."""
    if "scheduler" not in airflow.processes or airflow.env["AIRFLOW__CORE__EXECUTOR"] != WARM_LOCAL_EXECUTOR:
        return True
    _project_importable()
    from operators.local_executor import STARTED_MESSAGE

    log = airflow.home / "process-logs" / "scheduler.log"
    if not log.exists():
        return False
    offset = airflow.log_offsets.get("scheduler", 0)
    with open(log, "rb") as lines:
        lines.seek(offset if log.stat().st_size >= offset else 0)  # a log cut short since: read it all
        return STARTED_MESSAGE.encode() in lines.read()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("SONGMILL_AIRFLOW_PORT", 8080)))
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("AIRFLOW_HOME") or PROJECT / "var" / "airflow"))
    args = parser.parse_args()
    try:
        airflow = start(args.home.resolve(), port=args.port)
    except RuntimeError as err:
        print(f"make airflow: {err}", file=sys.stderr)
        return 1
    print(f"Airflow is up: {airflow.url}  (login: admin / {airflow.password()})")
    print(f"  home {airflow.home}; logs {airflow.home / 'process-logs'}; Ctrl-C stops every process")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    try:
        while not stop and all(p.poll() is None for p in airflow.processes.values()):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    dead = [name for name, p in airflow.processes.items() if p.poll() is not None]
    airflow.stop()
    if dead:
        print(f"make airflow: {', '.join(dead)} stopped on its own; see {airflow.home / 'process-logs'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
