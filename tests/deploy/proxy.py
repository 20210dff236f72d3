"""The rendered Ingress in a real proxy: an nginx configuration made from the Ingress objects as
ingress-nginx reads them (host, Prefix paths, the buffering and timeout annotations), and Debian's
nginx run with it on loopback, unprivileged, in a directory of its own."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from microbank.routes import ProxiedPath, nginx_locations
from tests.deploy.kube import Obj, of_kind

ANNOTATION = "nginx.ingress.kubernetes.io/"
INGRESS_NGINX_READ_TIMEOUT = 60  # ingress-nginx's default proxy-read-timeout


def _proxied_paths(ingress: Obj, upstream_of: Mapping[str, str]) -> dict[str, list[ProxiedPath]]:
    annotations = ingress["metadata"].get("annotations", {})
    buffering = annotations.get(f"{ANNOTATION}proxy-buffering", "on") != "off"
    timeout = int(annotations.get(f"{ANNOTATION}proxy-read-timeout", INGRESS_NGINX_READ_TIMEOUT))
    by_host: dict[str, list[ProxiedPath]] = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["pathType"] == "Prefix", "only Prefix paths are translated"
            upstream = upstream_of[path["backend"]["service"]["name"]]
            by_host.setdefault(rule["host"], []).append(ProxiedPath(path["path"], upstream, buffering, timeout))
    return by_host


def nginx_conf_from_ingresses(objects: list[Obj], upstream_of: Mapping[str, str], *, port: int, prefix: Path) -> str:
    """One server per host, merging every Ingress of that host as ingress-nginx does, behind a
    default server that answers 404 to any other host."""
    by_host: dict[str, list[ProxiedPath]] = {}
    for ingress in of_kind(objects, "Ingress"):
        for host, paths in _proxied_paths(ingress, upstream_of).items():
            by_host.setdefault(host, []).extend(paths)
    servers = "".join(
        f"server {{\n    listen 127.0.0.1:{port};\n    server_name {host};\n    client_max_body_size 1m;\n"
        f"{nginx_locations(paths)}}}\n"
        for host, paths in by_host.items()
    )
    temp = {name: prefix / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return (
        f"pid {prefix / 'nginx.pid'};\n"
        "worker_processes 1;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    access_log {prefix / 'access.log'};\n"
        + "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
        + f"    server {{\n        listen 127.0.0.1:{port} default_server;\n        return 404;\n    }}\n"
        + servers
        + "}\n"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    """Debian's nginx in the foreground with a configuration and prefix of its own."""

    def __init__(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise RuntimeError("nginx is not installed: apt-get install nginx-light (or nginx)")
        self.binary = binary
        self.prefix = Path(tempfile.mkdtemp(prefix="mbnginx-"))
        # Workers drop to an unprivileged user when nginx starts as root; they must reach the temp paths.
        os.chmod(self.prefix, 0o755)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: str) -> Nginx:
        conf = self.prefix / "nginx.conf"
        conf.write_text(config)
        command = [self.binary, "-p", str(self.prefix), "-c", str(conf), "-e", "stderr"]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr + config
        log = (self.prefix / "error.log").open("wb")
        self.process = subprocess.Popen([*command, "-g", "daemon off;"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError((self.prefix / "error.log").read_text()) from None
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on {self.port}: {(self.prefix / 'error.log').read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.prefix, ignore_errors=True)
