"""Test helpers that act as a bank customer would: sign up, log in, call the API."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

PASSWORD = "correct horse battery staple"
_serial = itertools.count(1)


@dataclass
class BankClient:
    """A test client with the customer actions most tests start from: an in-process TestClient
    or an httpx.Client pointed at a running bank."""

    http: httpx.Client

    def sign_up(self, *, name: str = "Ann Lee", email: str | None = None, password: str = PASSWORD) -> dict:
        email = email or f"user{next(_serial)}@example.com"
        response = self.http.post("/api/users", json={"name": name, "email": email, "password": password})
        assert response.status_code == 201, response.text
        return response.json()

    def log_in(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        response = self.http.post("/api/auth/token", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def customer(self, **kwargs: Any) -> tuple[dict, dict[str, str]]:
        """A new signed-up user and the auth headers of their session."""
        user = self.sign_up(**kwargs)
        return user, self.log_in(user["email"], kwargs.get("password", PASSWORD))

    def open_account(self, headers: dict[str, str], account_type: str = "checking", **extra: Any) -> dict:
        response = self.http.post("/api/accounts", json={"account_type": account_type, **extra}, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()

    def move(self, headers: dict[str, str], body: dict[str, Any], *, key: str | None = None) -> Any:
        """POST /api/transactions with an Idempotency-Key (a fresh one unless given); the raw response."""
        key = key or f"key-{next(_serial)}"
        return self.http.post("/api/transactions", json=body, headers={**headers, "Idempotency-Key": key})

    def _moved(self, headers: dict[str, str], body: dict[str, Any], key: str | None) -> dict:
        response = self.move(headers, body, key=key)
        assert response.status_code == 201, response.text
        return response.json()

    def deposit(self, headers: dict[str, str], account_id: int, amount: str, *, key: str | None = None) -> dict:
        return self._moved(headers, {"account_id": account_id, "type": "deposit", "amount": amount}, key)

    def withdraw(self, headers: dict[str, str], account_id: int, amount: str, *, key: str | None = None) -> dict:
        return self._moved(headers, {"account_id": account_id, "type": "withdrawal", "amount": amount}, key)

    def transfer(
        self, headers: dict[str, str], account_id: int, to_account_id: int, amount: str, *, key: str | None = None
    ) -> dict:
        body = {"account_id": account_id, "type": "transfer", "amount": amount, "to_account_id": to_account_id}
        return self._moved(headers, body, key)

    def balance(self, headers: dict[str, str], account_id: int) -> str:
        response = self.http.get(f"/api/accounts/{account_id}", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()["balance"]

    def statement(self, headers: dict[str, str], account_id: int) -> list[dict]:
        response = self.http.get(f"/api/accounts/{account_id}/postings", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def notifications(self, headers: dict[str, str]) -> list[dict]:
        response = self.http.get("/api/notifications", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_notifications(self, headers: dict[str, str], count: int, *, timeout: float = 5.0) -> list[dict]:
        """The caller's notifications once there are at least `count` (events arrive asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.notifications(headers)
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"{len(found)} notifications after {timeout}s, wanted {count}: {found}"
                return found
            time.sleep(0.05)


def query_value(database_url: str, sql: str, **params: object) -> Any:
    """One value from a statement run straight on a database (and committed): proof of what the
    services wrote, or a change behind their backs."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            return connection.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


def count_rows(database_url: str, table: str) -> int:
    return query_value(database_url, f'SELECT count(*) FROM "{table}"')


Headers = dict[str, str]


class Service(Protocol):
    """A running role, as tests reach it: tests/processes.py's RoleProcess."""

    @property
    def url(self) -> str: ...


def open_account(accounts: Service, headers: Headers, currency: str = "USD") -> int:
    response = httpx.post(
        f"{accounts.url}/api/accounts", json={"account_type": "checking", "currency": currency}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def move(transactions: Service, headers: Headers, key: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{transactions.url}/api/transactions", json=body, headers={**headers, "Idempotency-Key": key}, timeout=30
    )


def balance(accounts: Service, headers: Headers, account_id: int) -> str:
    return httpx.get(f"{accounts.url}/api/accounts/{account_id}", headers=headers).json()["balance"]


async def concurrently(transactions: Service, requests: list[tuple[Headers, str, dict]]) -> list[httpx.Response]:
    """Send every request at once, each on its own connection, as careful clients: one answered
    503 with Retry-After (the role too busy to take it, or accounts too slow to answer it in
    time) is sent again with the same key, which finishes it exactly once, after that delay."""
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(base_url=transactions.url, timeout=60, limits=limits) as client:

        async def send(headers: Headers, key: str, body: dict) -> httpx.Response:
            while True:
                response = await client.post(
                    "/api/transactions", json=body, headers={**headers, "Idempotency-Key": key}
                )
                if response.status_code != 503 or "Retry-After" not in response.headers:
                    return response
                await asyncio.sleep(float(response.headers["Retry-After"]))

        return await asyncio.gather(*(send(*request) for request in requests))


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll until `condition()` is truthy and return it; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)
    return result


def make_admin(users_database_url: str, email: str) -> None:
    """The operator's grant-admin command, run against the users database."""
    from microbank.platform.db import Database
    from microbank.users.service import grant_admin

    database = Database("users", users_database_url, pool_size=1)
    try:
        grant_admin(db=database, email=email)
    finally:
        database.dispose()


def metric_value(http: httpx.Client, name: str, *, missing: float | None = 0.0, **labels: str) -> float:
    """A sample from the app's /metrics; `missing` when not recorded yet (a counter whose labels
    have not occurred), or a failed assertion where `missing` is None."""
    response = http.get("/metrics")
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    assert missing is not None, f"/metrics has no {name} sample with {labels}"
    return missing


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def empty_database(url: str) -> None:
    """Every table of the database at `url` emptied, ids restarting from 1 (Alembic's kept)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        tables = connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
        ).scalars()
        names = ", ".join(f'"{t}"' for t in tables)
        if names:
            # A lock leaked by a test fails here instead of stalling the run.
            connection.execute(text("SET LOCAL lock_timeout = '20s'"))
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
