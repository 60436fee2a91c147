"""songmill's images and compose stack on one Docker engine, each failure in one sentence.

    python scripts/docker_stack.py base                 # local/debian:bookworm by debootstrap (no registry needed)
    python scripts/docker_stack.py build [--base IMAGE] # songmill-airflow and songmill-services on that base
    python scripts/docker_stack.py up --env-file .env   # the compose stack, waited for until the api-server is healthy
    python scripts/docker_stack.py down                 # containers, networks and volumes of the stack removed

`make test-docker` (tests/test_docker.py) drives the same functions: it starts dockerd itself when
none answers, builds on a debootstrap base, runs the stack from docker-compose.yaml with
deploy/docker/compose.local-images.yaml, and stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
LOCAL_BASE = "local/debian:bookworm"
AIRFLOW_IMAGE, SERVICES_IMAGE = "songmill-airflow:latest", "songmill-services:latest"
COMPOSE_FILES = (PROJECT / "docker-compose.yaml", PROJECT / "deploy" / "docker" / "compose.local-images.yaml")


class StackError(RuntimeError):
    """A Docker step that failed, said in one sentence."""


def run(args: Sequence[str], *, env: dict | None = None, timeout: float = 600, what: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """A command's result; a missing program or a failure is a StackError naming `what`."""
    try:
        result = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise StackError(
            f"{args[0]} is not installed; install Debian's docker.io and docker-compose (apt-get install docker.io docker-compose debootstrap)"
        ) from None
    except subprocess.TimeoutExpired:
        raise StackError(f"{what or ' '.join(args[:3])} did not finish in {timeout:.0f} s") from None
    if check and result.returncode != 0:
        raise StackError(f"{what or ' '.join(args[:3])} failed: {last_line(result.stderr or result.stdout)}")
    return result


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:400] if lines else "(no output)"


# --- the engine ---------------------------------------------------------------------------------


def engine_answers(env: dict | None = None) -> bool:
    try:
        return subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], env=env, capture_output=True, timeout=20).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


@dataclass
class Engine:
    """A Docker engine to talk to: the one running already, or one this process started (and stops)."""

    env: dict = field(default_factory=lambda: dict(os.environ))
    process: subprocess.Popen | None = None
    folder: Path | None = None

    @classmethod
    def start(cls, timeout_s: float = 60, *, may_start: bool = True) -> Engine:
        """The engine that answers, else dockerd started here as root on its own socket.

        Raises
        ------
        StackError : no docker client, no dockerd, not root, or dockerd not answering in time.
        """
        if shutil.which("docker") is None:
            raise StackError("the docker client is not installed; install Debian's docker.io (apt-get install docker.io)")
        if engine_answers():
            return cls()
        if not may_start:
            raise StackError("no Docker engine answers; start it (systemctl start docker, or dockerd as root) before bringing the stack up or down")
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise StackError(
                "no Docker engine answers and dockerd is not installed; install Debian's docker.io (apt-get install docker.io) or start your engine"
            )
        if os.geteuid() != 0:
            raise StackError("no Docker engine answers and starting dockerd needs root; start the engine (systemctl start docker) or run as root")
        folder = Path(tempfile.mkdtemp(prefix="songmill-dockerd-"))
        socket = folder / "docker.sock"
        log = open(folder / "dockerd.log", "w")  # noqa: SIM115 - closed with the engine
        process = subprocess.Popen(
            [dockerd, f"--host=unix://{socket}", f"--pidfile={folder / 'dockerd.pid'}", f"--exec-root={folder / 'exec'}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        engine = cls(env={**os.environ, "DOCKER_HOST": f"unix://{socket}"}, process=process, folder=folder)
        deadline = time.monotonic() + timeout_s
        while not engine_answers(engine.env):
            if process.poll() is not None or time.monotonic() > deadline:
                engine.stop()
                raise StackError(f"dockerd did not start ({last_line((folder / 'dockerd.log').read_text())})")
            time.sleep(0.5)
        return engine

    def stop(self) -> None:
        """Stop the dockerd this process started (by PID); an engine found running is left alone."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def docker(self, *args: str, timeout: float = 600, what: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return run(["docker", *args], env=self.env, timeout=timeout, what=what, check=check)

    def image_exists(self, name: str) -> bool:
        return self.docker("image", "inspect", name, check=False).returncode == 0


# --- images ---------------------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (debootstrap fetches the base from it)."""
    for source in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        text = source.read_text(errors="replace") if source.is_file() else ""
        for line in text.splitlines():
            words = line.split()
            urls = [w for w in words[1:] if w.startswith("http") and "/debian" in w and "security" not in w]
            if words[:1] in (["deb"], ["URIs:"]) and urls:
                return urls[0]
    return "http://deb.debian.org/debian"


def build_local_base(engine: Engine, name: str = LOCAL_BASE) -> float:
    """A Debian bookworm base image made by debootstrap and `docker import`; seconds taken (0 when it exists)."""
    if engine.image_exists(name):
        return 0.0
    if shutil.which("debootstrap") is None:
        raise StackError("debootstrap is not installed; install it (apt-get install debootstrap) to build a base image without a registry")
    start = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="songmill-debootstrap-"))
    try:
        run(["debootstrap", "--variant=minbase", "bookworm", str(root), debian_mirror()], timeout=900, what="debootstrap of Debian bookworm")
        archive = root.with_suffix(".tar")
        run(["tar", "-C", str(root), "-cf", str(archive), "."], what="packing the debootstrap tree")
        try:
            engine.docker("import", str(archive), name, what="docker import of the debootstrap tree")
        finally:
            archive.unlink(missing_ok=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return time.monotonic() - start


def _stage_build_inputs() -> None:
    """The machine's CPU torch wheel and extra CA certificates into the build context (ignored by git)."""
    for folder in (os.environ.get("PIP_FIND_LINKS") or "").split():
        for wheel in Path(folder).glob("torch-*+cpu-*.whl") if Path(folder).is_dir() else []:
            target = PROJECT / "docker" / "wheels" / wheel.name
            if not target.exists():
                shutil.copy2(wheel, target)
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy2(cert, PROJECT / "docker" / "certs" / cert.name)


@dataclass
class BuiltImage:
    name: str
    seconds: float
    bytes: int
    user: str


def build_image(engine: Engine, name: str, *, base: str, dockerfile: Path, build_args: dict[str, str] | None = None, timeout: float = 3600) -> BuiltImage:
    """`docker build` of the project on `base`, pip and apt on the host network.

    Raises
    ------
    StackError : the base image does not exist, or the build failed (its last line said).
    """
    if not engine.image_exists(base) and engine.docker("pull", base, check=False, timeout=300).returncode != 0:
        raise StackError(
            f"the base image {base} does not exist on this Docker engine and cannot be pulled; build one with `python scripts/docker_stack.py base` ({LOCAL_BASE}) or name another with --base"
        )
    _stage_build_inputs()
    args = ["build", "--network", "host", "-f", str(dockerfile), "-t", name, "--build-arg", f"BASE_IMAGE={base}"]
    for key, value in (build_args or {}).items():
        args += ["--build-arg", f"{key}={value}"]
    start = time.monotonic()
    result = engine.docker(*args, str(PROJECT), timeout=timeout, check=False)
    if result.returncode != 0:
        raise StackError(f"building {name} on {base} failed: {last_line(result.stderr or result.stdout)}")
    seconds = time.monotonic() - start
    inspected = json.loads(engine.docker("image", "inspect", name).stdout)[0]
    return BuiltImage(name, seconds, int(inspected["Size"]), inspected["Config"].get("User") or "root")


def build_images(engine: Engine, base: str) -> list[BuiltImage]:
    torch_index = {} if base != LOCAL_BASE else {"TORCH_INDEX_URL": ""}  # the wheel from docker/wheels where download.pytorch.org is out of reach
    return [
        build_image(engine, SERVICES_IMAGE, base=base, dockerfile=PROJECT / "deploy" / "docker" / "services.Dockerfile"),
        build_image(engine, AIRFLOW_IMAGE, base=base, dockerfile=PROJECT / "Dockerfile", build_args=torch_index),
    ]


def env_settings(path: Path) -> dict[str, str]:
    """The NAME=value lines of a compose env file (comments and blank lines skipped)."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.lstrip().startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


# --- the compose stack ----------------------------------------------------------------------------


@dataclass
class Stack:
    """The compose project `project` on `engine`, from COMPOSE_FILES plus `extra_files`."""

    engine: Engine
    project: str
    env_file: Path
    extra_files: tuple[Path, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        files = [a for f in (*COMPOSE_FILES, *self.extra_files) for a in ("-f", str(f))]
        command = ["docker-compose", "--project-directory", str(PROJECT), "-p", self.project, "--env-file", str(self.env_file), *files, *args]
        # compose lets the caller's environment override the env file; here the env file is the
        # stack's whole configuration (a SONGMILL_CONFIG_DIR set for this shell must not leak in)
        if not self.env_file.is_file():
            raise StackError(f"{self.env_file} does not exist; create it with the stack's secrets (README, Deployment) or name another with --env-file")
        defined = set(env_settings(self.env_file))
        inherited = {k: v for k, v in self.engine.env.items() if k not in defined}
        return run(command, env={**inherited, **self.environment}, timeout=timeout, what=f"docker-compose {args[0]}", check=check)

    def up(self, services: Sequence[str] = (), timeout: float = 900) -> None:
        self.compose("up", "-d", "--no-build", *services, timeout=timeout)

    def containers(self, *, all_states: bool = True) -> list[dict]:
        """Every container of the project: name, service, state, exit code."""
        listed = self.engine.docker("ps", *(["-a"] if all_states else []), "-q", "--filter", f"label=com.docker.compose.project={self.project}").stdout.split()
        if not listed:
            return []
        found = []
        for item in json.loads(self.engine.docker("inspect", *listed).stdout):
            labels = item["Config"]["Labels"]
            found.append(
                {
                    "id": item["Id"],
                    "name": item["Name"].lstrip("/"),
                    "service": labels.get("com.docker.compose.service"),
                    "state": item["State"]["Status"],
                    "exit_code": item["State"]["ExitCode"],
                    "restarts": item["RestartCount"],
                }
            )
        return found

    def container(self, service: str) -> dict:
        return next(c for c in self.containers() if c["service"] == service)

    def check_running(self, allowed_to_exit: Sequence[str] = ("airflow-init",)) -> None:
        """Raises StackError for a service container that exited or keeps restarting (its last log line said)."""
        for c in self.containers():
            crashing = c["state"] == "restarting" or (c["restarts"] > 0 and c["exit_code"] != 0)  # restart: unless-stopped hides an exit
            if crashing or (c["state"] in ("exited", "dead") and not (c["service"] in allowed_to_exit and c["exit_code"] == 0)):
                log = self.engine.docker("logs", "--tail", "20", c["id"], check=False)
                raise StackError(f"container {c['name']} exited with code {c['exit_code']}: {last_line(log.stdout + log.stderr)}")

    def wait_healthy(self, url: str, timeout_s: float = 900) -> float:
        """Seconds until `url` answers 200, watching for containers that exit meanwhile."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            self.check_running()
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return time.monotonic() - start
            except OSError:
                pass
            time.sleep(3)
        raise StackError(f"{url} did not answer within {timeout_s:.0f} s; see docker-compose -p {self.project} logs")

    def psql(self, sql: str, database: str = "songmill") -> list[list[str]]:
        """Rows of a query run inside the postgres container (its port is not published)."""
        out = self.engine.docker("exec", self.container("postgres")["id"], "psql", "-U", "airflow", "-d", database, "-At", "-F", "\t", "-c", sql).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def down(self) -> None:
        """Containers, networks and volumes of the project removed (images kept: they are the build cache)."""
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300, check=False)

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.project}"
        return {
            "containers": self.engine.docker("ps", "-aq", "--filter", label).stdout.split(),
            "networks": self.engine.docker("network", "ls", "-q", "--filter", label).stdout.split(),
            "volumes": self.engine.docker("volume", "ls", "-q", "--filter", label).stdout.split(),
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("base", help=f"build {LOCAL_BASE} with debootstrap")
    build = commands.add_parser("build", help="build songmill-airflow and songmill-services")
    build.add_argument("--base", default="debian:bookworm-slim")
    for name in ("up", "down"):
        sub = commands.add_parser(name)
        sub.add_argument("--env-file", type=Path, default=PROJECT / ".env")
        sub.add_argument("--project", default="songmill")
    args = parser.parse_args(argv)
    engine = None
    try:
        # a stack lives on an engine that outlives this command; images may be built on one started for the build
        engine = Engine.start(may_start=args.command in ("base", "build"))
        if args.command == "base":
            print(f"{LOCAL_BASE}: {build_local_base(engine):.0f} s")
        elif args.command == "build":
            for image in build_images(engine, args.base):
                print(f"{image.name}: {image.seconds:.0f} s, {image.bytes / 1e9:.2f} GB, user {image.user}")
        else:
            stack = Stack(engine, args.project, args.env_file)
            if args.command == "up":
                stack.up()
                url = f"http://127.0.0.1:{env_settings(args.env_file).get('SONGMILL_API_PORT', '8080')}/api/v2/monitor/health"
                print(f"api-server healthy after {stack.wait_healthy(url):.0f} s")
            else:
                stack.down()
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if engine is not None:
            engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
