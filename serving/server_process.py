"""A scoring server in a subprocess: start it, wait until it is ready, stop it and everything it started.

Used by ``kycrisk demo`` (``serving.demo``) and ``kycrisk bench serve`` (``serving.bench.serve``),
and by tests: the real ``bentoml serve serving.service:KycRiskService`` (or the bare Starlette
reference ``serving.bench.bare_app``) on 127.0.0.1, its own process group, its output in a log file.
BentoML's worker runs in a process group of its own, so ``stop`` kills the whole process tree it
saw, not only the leader's group.

Each start of the BentoML server gets a fresh ``BENTOML_HOME`` (a temporary folder, removed by
``stop``) unless the environment names one: BentoML keeps its Prometheus multiprocess files in
``$BENTOML_HOME/prometheus_multiproc_dir`` (``bentoml.serving.ensure_prometheus_dir``, which also
empties the folder at every start), so two servers sharing a home would count each other's requests
in ``/metrics`` and wipe each other's counters.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 600.0  # loading a big state (millions of events) takes minutes on a busy machine


class ServerError(RuntimeError):
    """The server exited during start-up or was not ready in time (the message holds its log's tail)."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (asked of the kernel)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One server subprocess in its own process group, with its log file.

    Args:
        name: ``bentoml`` (the product service) or ``bare`` (``serving.bench.bare_app``, the benchmark
            reference).
        env: the whole environment of the server (``KYCRISK_STATE_DIR``, keys, ...).
        log_path: file that receives the server's stdout and stderr.
    """

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path):
        if name not in ("bentoml", "bare"):
            raise ValueError(f"unknown server {name!r}: bentoml or bare")
        self.name, self.env, self.log_path = name, dict(env), Path(log_path)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.tree: list[Any] = []  # psutil.Process of the leader and its descendants, when ready
        self.home: Path | None = None  # the temporary BENTOML_HOME of this start, removed by stop()

    def argv(self) -> list[str]:
        if self.name == "bare":
            return [
                sys.executable,
                "-m",
                "serving.bench.bare_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ]
        bentoml = Path(sys.executable).with_name("bentoml")
        command = [str(bentoml)] if bentoml.is_file() else [sys.executable, "-m", "bentoml"]
        return [*command, "serve", "serving.service:KycRiskService", "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip

    def start(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Start and wait for ``GET /readyz`` to answer 200; returns the start-up time in seconds."""
        started = time.perf_counter()
        env = dict(self.env)
        if self.name == "bentoml" and "BENTOML_HOME" not in env:
            self.home = Path(tempfile.mkdtemp(prefix="kycrisk-bentoml-home-"))
            env["BENTOML_HOME"] = str(self.home)  # its own Prometheus multiprocess folder (docstring)
        with self.log_path.open("wb") as log_file:
            self.proc = subprocess.Popen(
                self.argv(), cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} server exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    conn.close()
                    self.tree = self.processes()
                    return time.perf_counter() - started
                conn.close()
            except OSError:
                pass
            if time.perf_counter() - started > timeout:
                raise ServerError(f"{self.name} server not ready in {timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.25)

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def processes(self) -> list[Any]:
        """The server's processes now (``psutil.Process``): the leader and all its descendants.

        BentoML's worker runs in a process group of its own (circus starts it in a new session),
        so killing the leader's group alone is not enough when the leader dies without stopping it.
        """
        import psutil

        if self.proc is None:
            return []
        try:
            leader = psutil.Process(self.proc.pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 20 s, then SIGKILL to any descendant left."""
        import psutil

        if self.proc is None:
            return
        tree = {p.pid: p for p in [*self.tree, *self.processes()]}
        for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        for proc in tree.values():  # psutil checks that the pid still names the same process
            with contextlib.suppress(psutil.Error):
                if proc.pid != self.proc.pid:
                    proc.kill()
                    proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    def alive(self) -> list[int]:
        """Pids of the server's processes (as seen when it was ready) still running."""
        import psutil

        left = []
        for proc in self.tree:
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(proc.pid)
        return left


__all__ = ["Server", "ServerError", "free_port"]
