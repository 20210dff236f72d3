"""The bank's roles as real processes (`microbank serve`, `microbank dev`): started, probed,
killed and started again, for drills, benchmarks and the tests that need a process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

MICROBANK = Path(sys.executable).parent / "microbank"
READY_TIMEOUT = 60.0


class RoleFailed(RuntimeError):
    """A role process exited, or did not become ready in time; the message holds its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RoleProcess:
    """`microbank serve` (or `dev`) for one role as a real process on a fixed port, so that it can
    be SIGKILLed and started again on the same address."""

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

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True, **extra_env: str) -> RoleProcess:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [str(MICROBANK), self.command], env={**self.env, **extra_env}, stdout=output, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_ready()
        return self

    def first_answer(self, path: str, timeout: float = READY_TIMEOUT) -> httpx.Response:
        """The first answer to GET `path`, whatever its status, within `timeout` seconds;
        RoleFailed if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RoleFailed(f"{self.role} exited:\n{self.log.read_text()}")
            try:
                return httpx.get(f"{self.url}{path}", timeout=2)
            except httpx.TransportError:
                time.sleep(0.1)
        raise RoleFailed(f"{self.role} did not answer {path} within {timeout}s:\n{self.log.read_text()}")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> httpx.Response:
        """The first 200 answer of /readyz, within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (response := self.first_answer("/readyz", timeout)).status_code != 200:
            if time.monotonic() > deadline:
                raise RoleFailed(f"{self.role} not ready within {timeout}s: {response.text}\n{self.log.read_text()}")
            time.sleep(0.1)
        return response

    def wait_exit(self, timeout: float = 10) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not go."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
