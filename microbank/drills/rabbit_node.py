"""A throwaway RabbitMQ node of its own: its own name, ports, data and cookie, so that a drill or
a test can stop and start its broker without touching the RabbitMQ anyone else uses."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

RABBITMQ_BIN = Path(os.environ.get("RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
BOOT_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RabbitNode:
    """`rabbitmq-server` as a separate node in a temporary directory, with the Prometheus plugin
    on a port of its own. Use it as a context manager, or call start() and delete()."""

    def __init__(self, *, prometheus: bool = True, config: str = "") -> None:
        self.home = Path(tempfile.mkdtemp(prefix="mbrabbit-"))
        self.amqp_port, self.dist_port, self.prometheus_port = _free_port(), _free_port(), _free_port()
        self.name = f"mb{self.amqp_port}@localhost"
        self.prometheus = prometheus
        # More rabbitmq.conf lines, e.g. load_definitions, for a node set up as a deployment sets it up.
        self.config = config

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}/metrics"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),  # where the node and its CLI find their Erlang cookie
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_PID_FILE": str(self.home / "pid"),
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",
        }

    def start(self) -> RabbitNode:
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.amqp_port}\n"
            f"prometheus.tcp.port = {self.prometheus_port}\n"
            "prometheus.return_per_object_metrics = true\n" + self.config
        )
        (self.home / "enabled_plugins").write_text("[rabbitmq_prometheus]." if self.prometheus else "[].")
        subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"], env=self._env(), check=True, capture_output=True
        )
        self.wait_running()
        return self

    def ctl(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, "-q", *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name}: {result.stderr or result.stdout}")
        return result.stdout

    def wait_running(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Until the node's app accepts AMQP connections (after start() or start_app())."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl("await_startup", "--timeout", "5", timeout=15)
                socket.create_connection(("127.0.0.1", self.amqp_port), timeout=2).close()
                return
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"RabbitMQ node {self.name} did not start; logs in {self.home / 'log'}") from exc
                time.sleep(0.5)

    def stop_app(self) -> None:
        """The broker goes away for every client; the node stays, so start_app() brings it back."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.wait_running()

    def delete(self) -> None:
        try:
            self.ctl("stop", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pid = (self.home / "pid").read_text().strip() if (self.home / "pid").exists() else ""
            if pid.isdigit():
                subprocess.run(["kill", "-9", pid], check=False)
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> RabbitNode:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.delete()
