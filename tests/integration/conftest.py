"""Integration fixtures: real PostgreSQL databases, one per domain, created and dropped here.

PostgreSQL being unreachable fails the run: these tests never skip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from microbank.platform.auth import Caller, TokenIssuer
from microbank.platform.migrations import upgrade
from microbank.platform.settings import Settings, load_settings
from microbank.roles import DOMAINS, create_app
from tests.factories import BankClient

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _admin_engine():
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


def create_database(name: str) -> str:
    with _admin_engine().connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    with _admin_engine().connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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


@pytest.fixture(autouse=True)
def empty_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with empty tables (ids restart too)."""
    yield
    if "database_urls" not in request.fixturenames:
        return
    for url in request.getfixturevalue("database_urls").values():
        engine = create_engine(url)
        with engine.begin() as connection:
            tables = connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
            ).scalars()
            names = ", ".join(f'"{t}"' for t in tables)
            if names:
                # A lock leaked by the test fails its teardown here instead of stalling the run.
                connection.execute(text("SET LOCAL lock_timeout = '20s'"))
                connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        engine.dispose()


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

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                pytest.fail(f"{self.role} exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"{self.role} not ready within {READY_TIMEOUT}s:\n{self.log.read_text()}")

    def wait_exit(self, timeout: float = 10) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


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
