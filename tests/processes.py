"""The bank's roles as real processes (`microbank serve`, `microbank dev`), for every test layer
that needs one: started, probed, killed, restarted."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

MICROBANK = Path(sys.executable).parent / "microbank"
READY_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RoleProcess:
    """`microbank serve` (or `dev`) for one role as a real process on a fixed port, which a test
    can SIGKILL and start again."""

    def __init__(self, role: str, env: dict[str, str], log_dir: Path, *, command: str = "serve") -> None:
        self.role = role
        self.command = command
        self.port = free_port()
        self.env = {**env, "ROLE": role, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self.log = log_dir / f"{role}-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True, **extra_env: str) -> RoleProcess:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [str(MICROBANK), self.command], env={**self.env, **extra_env}, stdout=output, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_ready()
        return self

    def first_answer(self, path: str) -> httpx.Response:
        """The first answer to GET `path`, whatever its status, within READY_TIMEOUT seconds;
        the test fails if the process exits first."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                pytest.fail(f"{self.role} exited:\n{self.log.read_text()}")
            try:
                return httpx.get(f"{self.url}{path}", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"{self.role} did not answer {path} within {READY_TIMEOUT}s:\n{self.log.read_text()}")

    def wait_ready(self) -> httpx.Response:
        """The first 200 answer of /readyz, within READY_TIMEOUT seconds."""
        deadline = time.monotonic() + READY_TIMEOUT
        while (response := self.first_answer("/readyz")).status_code != 200:
            if time.monotonic() > deadline:
                pytest.fail(f"{self.role} not ready within {READY_TIMEOUT}s: {response.text}\n{self.log.read_text()}")
            time.sleep(0.1)
        return response

    def wait_exit(self, timeout: float = 10) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not go."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
