"""`microbank serve` and `microbank migrate` as real processes, the way a container runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from microbank.platform.migrations import head_revision
from microbank.roles import DOMAINS, ROLES
from tests.factories import PASSWORD
from tests.integration.conftest import create_database, drop_database

MICROBANK = Path(sys.executable).parent / "microbank"
READY_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """SIGTERM and wait; SIGKILL if it does not go."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`microbank serve` in the background on a free port: (base URL, process). Always stopped."""
    port = free_port()
    env = {**env, "PORT": str(port), "HOST": "127.0.0.1"}
    with log.open("wb") as output:
        process = subprocess.Popen([str(MICROBANK), "serve"], env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield f"http://127.0.0.1:{port}", process
        finally:
            stop(process)


def wait_until_up(base_url: str, process: subprocess.Popen, log: Path) -> httpx.Response:
    """The first answer of /readyz, within READY_TIMEOUT seconds of starting."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"microbank serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{base_url}/readyz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"microbank serve did not answer /readyz within {READY_TIMEOUT}s:\n{log.read_text()}")


def wait_until_ready(base_url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    response = wait_until_up(base_url, process, log)
    while response.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        response = httpx.get(f"{base_url}/readyz", timeout=2)
    assert response.status_code == 200, f"{response.text}\n{log.read_text()}"
    assert response.json() == {"status": "ready"}


@pytest.mark.parametrize("role", ["users", "accounts", "transactions", "notifications", "all"])
def test_each_role_boots_and_becomes_ready(role: str, role_env: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "ROLE": role}
    log = tmp_path / "serve.log"
    with serving(env, log) as (base_url, process):
        wait_until_ready(base_url, process, log)
        assert httpx.get(f"{base_url}/healthz", timeout=5).json() == {"status": "ok"}
        schema = "/api/schema" if role == "all" else f"/api/{role}/schema"
        openapi = httpx.get(f"{base_url}{schema}/openapi.json", timeout=5)
        assert openapi.status_code == 200, openapi.text
        assert openapi.json()["info"]["title"] == f"microbank {role}"
        assert httpx.get(f"{base_url}{schema}/swagger", timeout=5).status_code == 200
        assert "http_requests_total" in httpx.get(f"{base_url}/metrics", timeout=5).text
        if role == "users":
            email = f"{uuid.uuid4().hex[:8]}@example.com"
            signed_up = httpx.post(
                f"{base_url}/api/users",
                json={"name": "Ann Lee", "email": email, "password": PASSWORD},
                timeout=10,
            )
            assert signed_up.status_code == 201, signed_up.text
            assert signed_up.json()["email"] == email
            token = httpx.post(f"{base_url}/api/auth/token", json={"email": email, "password": PASSWORD}, timeout=10)
            assert token.status_code == 200, token.text
            assert token.json()["token_type"] == "bearer"
    # uvicorn shuts down gracefully, then re-raises the signal: exit status 0 or -SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()


@pytest.mark.parametrize("role", [None, "bogus"])
def test_serve_without_a_valid_role_exits_naming_the_valid_roles(role: str | None, tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name != "ROLE"}
    env |= {"PORT": str(free_port()), "DATA_DIR": str(tmp_path)}
    if role:
        env["ROLE"] = role
    started = time.monotonic()
    result = subprocess.run([str(MICROBANK), "serve"], env=env, capture_output=True, text=True, timeout=READY_TIMEOUT)
    assert result.returncode != 0
    assert time.monotonic() - started < 15
    for valid in ("users", "accounts", "transactions", "notifications", "all"):
        assert valid in ROLES
        assert valid in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def fresh_accounts_database(postgres: None) -> Iterator[str]:
    name = f"mbtest_serve_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)


def test_migrate_makes_a_served_role_ready(
    fresh_accounts_database: str, keypair: tuple[str, str], tmp_path: Path
) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", *(f"{d.upper()}_DATABASE_URL" for d in DOMAINS)}
    }
    env |= {
        "ROLE": "accounts",
        "ACCOUNTS_DATABASE_URL": fresh_accounts_database,
        "JWT_PUBLIC_KEY": keypair[1],
        "DATA_DIR": str(tmp_path),
    }
    log = tmp_path / "serve.log"
    with serving(env, log) as (base_url, process):
        before = wait_until_up(base_url, process, log)
        assert before.status_code == 503, before.text
        body = before.json()
        assert body["status"] == "unavailable"
        assert any("revision" in reason and head_revision("accounts") in reason for reason in body["reasons"])

        migrated = subprocess.run([str(MICROBANK), "migrate"], env=env, capture_output=True, text=True, timeout=60)
        assert migrated.returncode == 0, migrated.stderr

        wait_until_ready(base_url, process, log)
