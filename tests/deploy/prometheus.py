"""Debian's Prometheus on loopback, in a directory of its own, with a configuration of the test's
making, asked through its HTTP API as Grafana and an operator would ask it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from microbank.drills.processes import free_port

START_TIMEOUT = 30.0


class Prometheus:
    def __init__(self, config: dict[str, Any]) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="mbprometheus-"))
        self.port = free_port()
        self.config = self.home / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = self.home / "prometheus.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not installed (apt-get install prometheus)"
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.home / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.wait(lambda: httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200, START_TIMEOUT, "ready")
        return self

    def wait(self, condition: Any, timeout: float, what: str) -> Any:
        """Until `condition()` is truthy; its value. Fails, with Prometheus' log, after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None and self.process.poll() is None, (
                f"prometheus exited:\n{self.log.read_text()}"
            )
            try:
                if result := condition():
                    return result
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus not {what} within {timeout}s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{path} {params}: {body.get('errorType')}: {body.get('error')}"
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        return self.api("query", query=promql)["result"]

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets", state="active")["activeTargets"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.home, ignore_errors=True)
