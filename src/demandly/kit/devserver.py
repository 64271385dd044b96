"""A Demandly server in a subprocess on 127.0.0.1: what the tests and benchmarks talk to over
real HTTP (one way to start it, for both)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(env: dict[str, str], log_path: Path | None = None) -> ServerProcess:
    """``uvicorn`` serving ``demandly.app:create_app`` with ``env`` over the current
    environment (``DEMANDLY_BASE_URL`` set to its own address); returns once it is ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = log_path.open("wb") if log_path else None
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "demandly.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, "DEMANDLY_BASE_URL": url, "DEMANDLY_LOG_LEVEL": "WARNING", **env},
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
    )
    for _ in range(300):
        if process.poll() is not None:
            tail = log_path.read_text()[-2000:] if log_path else ""
            raise RuntimeError(f"server exited: {tail}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return ServerProcess(url=url, process=process, log_path=log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not become ready")
