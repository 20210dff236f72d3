"""Following one request through the logs: accounts, transactions and the notifier as processes on
PostgreSQL and RabbitMQ, each writing JSON lines, all naming the request id the client chose."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from microbank.platform.broker import RabbitSink
from microbank.platform.events import TRANSACTION_COMPLETED, Recipient, new_event
from tests.factories import Headers, metric_value, open_account, query_value, wait_until
from tests.processes import RoleProcess


@dataclass
class Roles:
    accounts: RoleProcess
    transactions: RoleProcess
    notifier: RoleProcess

    def lines(self, role: RoleProcess) -> list[dict]:
        """The role's log, each line a JSON object (a line that is not one fails the test)."""
        text = role.log.read_text()
        assert text.strip(), f"{role.role} logged nothing"
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def lines_of_request(self, role: RoleProcess, request_id: str) -> list[dict]:
        return [line for line in self.lines(role) if line.get("request_id") == request_id]


@pytest.fixture
def roles(rabbit_url: str, role_process: Callable[[str], RoleProcess]) -> Roles:
    accounts, transactions, notifier = role_process("accounts"), role_process("transactions"), role_process("notifier")
    transactions.env["ACCOUNTS_URL"] = accounts.url
    accounts.env["TRANSACTIONS_URL"] = transactions.url
    return Roles(accounts.start(), transactions.start(), notifier.start())


def notified(database_urls: dict[str, str], transaction_id: int) -> bool:
    sql = "SELECT count(*) FROM notifications WHERE transaction_id = :id"
    return query_value(database_urls["notifications"], sql, id=transaction_id) > 0


def test_one_deposits_request_id_is_in_the_logs_of_transactions_accounts_and_the_notifier(
    roles: Roles, token_for: Callable[[int], Headers], database_urls: dict[str, str]
) -> None:
    ann = token_for(1)
    account = open_account(roles.accounts, ann)
    request_id = f"deposit-{uuid.uuid4()}"

    response = httpx.post(
        f"{roles.transactions.url}/api/transactions",
        json={"account_id": account, "type": "deposit", "amount": "12.50"},
        headers={**ann, "Idempotency-Key": "one", "X-Request-ID": request_id},
    )
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == request_id
    transaction_id = response.json()["id"]
    wait_until(lambda: notified(database_urls, transaction_id), timeout=20, what="the deposit's notification")

    [answered] = roles.lines_of_request(roles.transactions, request_id)
    assert answered["role"] == "transactions" and answered["logger"] == "microbank.access"
    assert (answered["method"], answered["handler"], answered["status"]) == ("POST", "/api/transactions", 201)
    assert (answered["user_id"], answered["transaction_id"]) == (1, transaction_id)

    [posted] = roles.lines_of_request(roles.accounts, request_id)
    assert (posted["role"], posted["handler"], posted["status"]) == ("accounts", "/internal/postings", 200)
    assert posted["transaction_id"] == transaction_id

    [told] = wait_until(
        lambda: roles.lines_of_request(roles.notifier, request_id), timeout=10, what="the notifier's line"
    )
    assert told["role"] == "notifier" and told["message"] == "transaction.completed stored"
    assert (told["transaction_id"], told["user_id"]) == (transaction_id, 1)
    event_id = query_value(
        database_urls["notifications"],
        "SELECT event_id FROM notifications WHERE transaction_id = :id",
        id=transaction_id,
    )
    assert told["event_id"] == event_id


def test_an_opening_deposit_carries_the_request_id_of_the_account_it_opens(
    roles: Roles, token_for: Callable[[int], Headers], database_urls: dict[str, str]
) -> None:
    request_id = "open-savings-1"

    response = httpx.post(
        f"{roles.accounts.url}/api/accounts",
        json={"account_type": "savings", "initial_deposit": "250.00"},
        headers={**token_for(2), "X-Request-ID": request_id},
    )
    assert response.status_code == 201, response.text
    transaction_id = response.json()["opening_deposit"]["transaction_id"]
    wait_until(lambda: notified(database_urls, transaction_id), timeout=20, what="the opening deposit's notification")

    assert [line["handler"] for line in roles.lines_of_request(roles.transactions, request_id)] == ["/api/transactions"]
    assert {line["handler"] for line in roles.lines_of_request(roles.accounts, request_id)} == {
        "/api/accounts",
        "/internal/postings",
    }
    told = wait_until(
        lambda: len(lines := roles.lines_of_request(roles.notifier, request_id)) == 2 and lines,
        timeout=10,
        what="the notifier's lines for the account and its deposit",
    )
    assert sorted(line["message"] for line in told) == ["account.opened stored", "transaction.completed stored"]


def test_an_event_of_no_request_is_logged_without_a_request_id(roles: Roles, rabbit_url: str) -> None:
    """A worker's event (recovery's) has no request to name: the notifier writes no request id
    rather than one FastStream made up for the message."""
    event = new_event(TRANSACTION_COMPLETED, recipients=[Recipient(3, "recovered")], transaction_id=99)

    async def publish() -> None:
        sink = RabbitSink(rabbit_url)
        try:
            await sink.deliver([event], [None])
        finally:
            await sink.aclose()

    asyncio.run(publish())

    [told] = wait_until(
        lambda: [line for line in roles.lines(roles.notifier) if line.get("event_id") == event.event_id],
        timeout=10,
        what="the notifier's line",
    )
    assert told["transaction_id"] == 99 and "request_id" not in told


def test_the_pools_requests_in_progress_and_build_are_on_each_roles_metrics(roles: Roles) -> None:
    with httpx.Client(base_url=roles.transactions.url) as http:
        assert metric_value(http, "microbank_build_info", missing=None, role="transactions") == 1
        size = metric_value(http, "db_pool_size", missing=None, domain="transactions")
        assert 0 <= metric_value(http, "db_pool_checked_out", missing=None, domain="transactions") <= size > 0
        assert metric_value(http, "db_pool_waiting", missing=None, domain="transactions") == 0
        # The scrape itself is a request in progress.
        assert metric_value(http, "http_requests_in_progress", missing=None, method="GET", handler="/metrics") == 1
