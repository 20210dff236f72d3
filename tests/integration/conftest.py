"""Integration fixtures: real PostgreSQL databases, one per domain, created and dropped here.

PostgreSQL being unreachable fails the run: these tests never skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, text

from microbank.audit import AuditReport, run_audit
from microbank.drills import stack
from microbank.drills.rabbit_node import RabbitNode
from microbank.platform.auth import Caller, TokenIssuer
from microbank.platform.migrations import upgrade
from microbank.platform.settings import Settings, load_settings
from microbank.roles import DOMAINS, create_app
from tests.factories import BankClient, empty_database
from tests.processes import RoleProcess

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _admin_engine():
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


def create_database(name: str) -> str:
    return stack.create_database(ADMIN_URL, name)


def drop_database(name: str) -> None:
    stack.drop_database(ADMIN_URL, name)


@pytest.fixture(scope="session")
def postgres() -> None:
    try:
        with _admin_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.fail(f"PostgreSQL at {ADMIN_URL} is unreachable: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def database_urls(postgres: None) -> Iterator[dict[str, str]]:
    """A migrated PostgreSQL database per domain for the whole run, dropped afterwards."""
    prefix = f"mbtest_{uuid.uuid4().hex[:8]}"
    urls = {}
    try:
        for domain in DOMAINS:
            urls[domain] = create_database(f"{prefix}_{domain}")
            upgrade(domain, urls[domain])
        yield urls
    finally:
        for domain in urls:
            drop_database(f"{prefix}_{domain}")


@pytest.fixture
def fresh_database(postgres: None) -> Iterator[str]:
    """The URL of an empty database that exists only for this test."""
    name = f"mbtest_fresh_{uuid.uuid4().hex[:10]}"
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)


def audit() -> AuditReport:
    """`microbank audit` over the test databases (role_env has set the environment)."""
    return run_audit(replace(load_settings(), role="all"))


def audit_once_idle(timeout: float = 5.0) -> AuditReport:
    """The audit once the relay has delivered every event, or the last report after `timeout`."""
    deadline = time.monotonic() + timeout
    while not (report := audit()).clean and time.monotonic() < deadline:
        time.sleep(0.1)
    return report


@pytest.fixture(autouse=True)
def empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with empty tables (ids restart too)."""
    yield
    if "database_urls" not in request.fixturenames:
        return
    for url in request.getfixturevalue("database_urls").values():
        empty_database(url)


@pytest.fixture
def role_env(
    database_urls: dict[str, str], keypair: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """The environment a deployed role would get: its database URLs and the token keys."""
    env = {f"{domain.upper()}_DATABASE_URL": url for domain, url in database_urls.items()}
    env |= {
        "JWT_PRIVATE_KEY": keypair[0],
        "JWT_PUBLIC_KEY": keypair[1],
        "DATA_DIR": str(tmp_path),
        "SERVICE_TOKEN": "test-service-token",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Events go over RabbitMQ only where a test asks for it (the rabbit_url fixture), whatever the shell says.
    monkeypatch.delenv("RABBIT_URL", raising=False)
    monkeypatch.delenv("RABBIT_URL_FILE", raising=False)
    return env


def role_settings(role: str) -> Settings:
    """Settings as a deployed role reads them from role_env; only users and all hold the private key."""
    settings = load_settings()
    private = settings.jwt_private_key if role in ("users", "all") else None
    return replace(settings, role=role, jwt_private_key=private, db_pool_size=5)


@pytest.fixture
def client_for(role_env: dict[str, str]) -> Iterator[Callable[[str], BankClient]]:
    """Build the app of a role, as deployed, and a test client for it: client_for("accounts")."""
    clients: list[TestClient] = []

    def build(role: str) -> BankClient:
        client = TestClient(create_app(role_settings(role)))
        client.__enter__()
        clients.append(client)
        return BankClient(client)

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def bank(client_for: Callable[[str], BankClient]) -> BankClient:
    """Every role in one app (ROLE=all) on the PostgreSQL databases."""
    return client_for("all")


@pytest.fixture
def role_process(role_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], RoleProcess]]:
    """Make (not start) a role process on the test databases: role_process("accounts").start()."""
    made: list[RoleProcess] = []

    def make(role: str) -> RoleProcess:
        made.append(RoleProcess(role, dict(os.environ), tmp_path))
        return made[-1]

    yield make
    for process in made:
        process.stop()


@pytest.fixture(scope="session")
def split_bank(postgres: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.BankStack]:
    """The four API roles as `microbank serve` processes on databases of their own, shared by the
    tests that only send what should change nothing (the hostile-input corpus, the fuzzer)."""
    with stack.BankStack(ADMIN_URL, prefix="mbtest_split", log_dir=tmp_path_factory.mktemp("split-bank")) as bank:
        bank.start(("users", "accounts", "transactions", "notifications"))
        yield bank


@pytest.fixture
def token_for(keypair: tuple[str, str]) -> Callable[[int], dict[str, str]]:
    """Auth headers for a user id, signed with the bank's key as the users role would."""
    issuer = TokenIssuer(keypair[0], ttl_seconds=900)

    def headers(user_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {issuer.issue(Caller(user_id=user_id, role='customer'))}"}

    return headers


RABBIT_HOST = os.environ.get("TEST_RABBIT_HOST", "127.0.0.1")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def rabbitmq() -> None:
    try:
        socket.create_connection((RABBIT_HOST, 5672), timeout=5).close()
    except OSError as exc:
        pytest.fail(f"RabbitMQ at {RABBIT_HOST}:5672 is unreachable: {exc}", pytrace=False)


@pytest.fixture
def rabbit_url(rabbitmq: None, role_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A RabbitMQ vhost of this test's own, deleted afterwards; RABBIT_URL points roles at it."""
    vhost = f"mbtest_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = f"amqp://guest:guest@{RABBIT_HOST}:5672/{vhost}"
        monkeypatch.setenv("RABBIT_URL", url)
        yield url
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def own_broker(role_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[RabbitNode]:
    """A RabbitMQ node of this test's own, for a test that stops and starts the broker: the
    RabbitMQ other test runs on this machine use stays up. RABBIT_URL points roles at it."""
    with RabbitNode(prometheus=False) as node:
        monkeypatch.setenv("RABBIT_URL", node.url)
        yield node
