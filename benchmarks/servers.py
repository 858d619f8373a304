"""Processes the load harness runs on loopback: redis-server and the API under gunicorn."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = Path(__file__).resolve().parent / "gunicorn_conf.py"

__all__ = ["ROOT", "Gunicorn", "RedisServer", "free_port", "redis_server", "wait_for_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, deadline: float, proc: subprocess.Popen[bytes] | None = None, host: str = "127.0.0.1"
) -> None:
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


def _stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class RedisServer:
    """A throw-away ``redis-server`` on a free loopback port, which a fault
    scenario can stop and start again on the same port (empty: no persistence).

    :raises FileNotFoundError: if no ``redis-server`` binary is on PATH.
    """

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (Debian: apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._args += ["--dir", str(workdir), "--daemonize", "no", "--loglevel", "warning"]
        self._log_path = workdir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self._log_path, "ab") as log:
            self.proc = subprocess.Popen(self._args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        wait_for_port(self.port, deadline, self.proc)
        while time.monotonic() < deadline:  # listening is not yet loaded
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, 5)
            self.proc = None


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A throw-away ``redis-server`` on a free loopback port; yields its URL.

    :raises FileNotFoundError: if no ``redis-server`` binary is on PATH.
    """
    with running_redis(workdir) as server:
        yield server.url


@contextlib.contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped on exit."""
    server = RedisServer(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Gunicorn:
    """The API under gunicorn (gthread workers) on a free loopback port.

    :param app: a gunicorn app spec such as ``example_app:create_app()``.
    :param env: extra environment (the ``CCGUARD_*`` settings).
    :param workdir: where ready files, stats and the log go.
    """

    def __init__(
        self, app: str, env: Mapping[str, str], workdir: Path, *, workers: int, threads: int, host: str = "127.0.0.1"
    ) -> None:
        self.port = free_port()
        #: The loopback address it listens on (127.0.0.2 stands for a second host).
        self.host = host
        self.url = f"http://{host}:{self.port}"
        self.workers = workers
        self.workdir = workdir
        self.statedir = workdir / "workers"
        self.statedir.mkdir()
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["LOADTEST_DIR"] = str(self.statedir)
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        args = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
        args += ["-w", str(workers), "--threads", str(threads), "-b", f"{host}:{self.port}", app]
        self._log = open(workdir / "gunicorn.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=full_env, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> list[int]:
        """Wait until every worker has warmed its keys; returns their warm-up statuses."""
        deadline = time.monotonic() + timeout
        wait_for_port(self.port, deadline, self.proc, self.host)
        while time.monotonic() < deadline:
            ready = sorted(self.statedir.glob("ready-*"))
            if len(ready) >= self.workers:
                return [int(p.read_text() or 0) for p in ready]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"gunicorn workers not ready; see {self.workdir / 'gunicorn.log'}:\n{self.log_tail()}")

    def stop(self) -> list[dict[str, Any]]:
        """Stop gracefully; returns the ``stats()`` each worker wrote on exit."""
        _stop(self.proc, 20)
        self._log.close()
        return [json.loads(p.read_text()) for p in sorted(self.statedir.glob("stats-*.json"))]

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.workdir / "gunicorn.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
