"""`microbank serve` and `microbank migrate` as real processes, the way a container runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
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
from tests.processes import MICROBANK, READY_TIMEOUT, RoleProcess, free_port


@contextmanager
def serving(role: str, env: dict[str, str], log_dir: Path) -> Iterator[RoleProcess]:
    """`microbank serve` for `role` in the background on a free port, not yet answering; always stopped."""
    process = RoleProcess(role, env, log_dir).start(wait=False)
    try:
        yield process
    finally:
        process.stop()


def assert_ready(process: RoleProcess) -> None:
    response = process.wait_ready()
    assert response.json() == {"status": "ready"}


@pytest.mark.parametrize("role", ["users", "accounts", "transactions", "notifications", "all"])
def test_each_role_boots_and_becomes_ready(role: str, role_env: dict[str, str], tmp_path: Path) -> None:
    with serving(role, dict(os.environ), tmp_path) as served:
        assert_ready(served)
        base_url = served.url
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
    assert served.process.returncode in (0, -signal.SIGTERM), served.log.read_text()
    assert "Application shutdown complete" in served.log.read_text()


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


def test_migrate_makes_a_served_role_ready(fresh_database: str, keypair: tuple[str, str], tmp_path: Path) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", *(f"{d.upper()}_DATABASE_URL" for d in DOMAINS)}
    }
    env |= {
        "ACCOUNTS_DATABASE_URL": fresh_database,
        "JWT_PUBLIC_KEY": keypair[1],
        "SERVICE_TOKEN": "test-service-token",
        "DATA_DIR": str(tmp_path),
    }
    with serving("accounts", env, tmp_path) as served:
        before = served.first_answer("/readyz")
        assert before.status_code == 503, before.text
        body = before.json()
        assert body["status"] == "unavailable"
        assert any("revision" in reason and head_revision("accounts") in reason for reason in body["reasons"])

        migrated = subprocess.run(
            [str(MICROBANK), "migrate"], env=served.env, capture_output=True, text=True, timeout=60
        )
        assert migrated.returncode == 0, migrated.stderr

        assert_ready(served)


def run_microbank(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(MICROBANK), command], env=env, capture_output=True, text=True, timeout=READY_TIMEOUT)


def test_transactions_without_the_service_token_exits_saying_what_to_set(role_env, tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name != "SERVICE_TOKEN"}
    env |= {"ROLE": "transactions", "PORT": str(free_port())}

    result = run_microbank("serve", env)

    assert result.returncode == 2
    assert "set SERVICE_TOKEN" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_wrong_service_token_makes_transactions_unready_and_says_why(role_process) -> None:
    accounts, transactions = role_process("accounts"), role_process("transactions")
    transactions.env |= {"ACCOUNTS_URL": accounts.url, "SERVICE_TOKEN": "not-the-one-accounts-has"}
    accounts.start()
    transactions.start(wait=False)

    answer = transactions.first_answer("/readyz")
    assert answer.status_code == 503, answer.text
    assert any("SERVICE_TOKEN" in reason for reason in answer.json()["reasons"]), answer.text


def test_the_service_token_check_is_answered_quietly_and_writes_nothing(role_process) -> None:
    """transactions asks accounts at each readiness check whether their service tokens match: a
    204 that accounts logs only at DEBUG, not a refused request in the access log every 10 s."""
    accounts, transactions = role_process("accounts"), role_process("transactions")
    transactions.env["ACCOUNTS_URL"] = accounts.url
    accounts.start()
    transactions.start()

    assert transactions.first_answer("/readyz").status_code == 200
    lines = [json.loads(line) for line in accounts.log.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("logger") == "microbank.access"]
    assert not [line for line in requests if line.get("status", 200) >= 400], requests
    wrong = httpx.post(f"{accounts.url}/internal/credential", headers={"X-Service-Token": "not-it"})
    assert wrong.status_code == 403, wrong.text


def test_migrate_against_a_database_that_does_not_exist_says_so_in_one_line(role_env, tmp_path: Path) -> None:
    missing = f"mbtest_missing_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "ROLE": "accounts",
        "ACCOUNTS_DATABASE_URL": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{missing}",
    }

    result = run_microbank("migrate", env)

    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("microbank:")]
    assert len(error) == 1 and missing in error[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1/x", "postgres://postgres@127.0.0.1/x"])
def test_a_database_url_without_the_driver_says_which_scheme_to_use(url: str, tmp_path: Path) -> None:
    env = {**os.environ, "ROLE": "accounts", "ACCOUNTS_DATABASE_URL": url, "DATA_DIR": str(tmp_path)}

    result = run_microbank("migrate", env)

    assert result.returncode == 2
    assert "ACCOUNTS_DATABASE_URL must use the postgresql+psycopg2:// scheme" in result.stderr, result.stderr
