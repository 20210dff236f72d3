"""Events over the real RabbitMQ: the outbox relay and the notifier as real processes, in a vhost
of each test's own. A broker outage may delay a notification; it never loses or duplicates one."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aio_pika
import httpx
import pytest
from aio_pika.exceptions import PublishError
from sqlalchemy import create_engine, text

from microbank.platform.broker import NOTIFICATIONS_QUEUE, RabbitSink
from microbank.platform.consuming import EVENTS, connect, make_broker
from microbank.platform.events import TRANSACTION_COMPLETED, Recipient, encode_event, new_event
from tests.factories import Headers, concurrently, move, open_account, query_value, wait_until
from tests.processes import RoleProcess

COMPLETED_NOTIFICATIONS = "SELECT count(*) FROM notifications WHERE event_type = 'transaction.completed'"


@dataclass
class Pipeline:
    accounts: RoleProcess
    transactions: RoleProcess
    notifier: RoleProcess
    urls: dict[str, str]

    def completed_notifications(self) -> int:
        return query_value(self.urls["notifications"], COMPLETED_NOTIFICATIONS)

    def wait_for_completed_notifications(self, expected: int, timeout: float = 90) -> None:
        wait_until(
            lambda: self.completed_notifications() >= expected,
            timeout=timeout,
            what=f"{expected} transaction notifications",
        )
        assert self.completed_notifications() == expected

    def assert_each_event_told_once(self) -> None:
        duplicates = query_value(
            self.urls["notifications"],
            "SELECT count(*) FROM (SELECT event_id, user_id FROM notifications"
            " GROUP BY event_id, user_id HAVING count(*) > 1) d",
        )
        assert duplicates == 0


def start_pipeline(role_process: Callable[[str], RoleProcess], database_urls: dict[str, str]) -> Pipeline:
    """accounts, transactions and the notifier as processes, on the broker RABBIT_URL names."""
    accounts, transactions, notifier = role_process("accounts"), role_process("transactions"), role_process("notifier")
    transactions.env["ACCOUNTS_URL"] = accounts.url
    return Pipeline(accounts.start(), transactions.start(), notifier.start(), database_urls)


@pytest.fixture
def pipeline(rabbit_url: str, role_process: Callable[[str], RoleProcess], database_urls: dict[str, str]) -> Pipeline:
    return start_pipeline(role_process, database_urls)


def deposits(pipeline: Pipeline, headers: Headers, account: int, count: int, *, prefix: str) -> None:
    """`count` deposits of 1.00, fifty at a time, each answered 201 completed."""
    body = {"account_id": account, "type": "deposit", "amount": "1.00"}
    for start in range(0, count, 50):
        batch = [(headers, f"{prefix}-{i}", body) for i in range(start, min(start + 50, count))]
        responses = asyncio.run(concurrently(pipeline.transactions, batch))
        assert {(r.status_code, r.json()["status"]) for r in responses} == {(201, "completed")}


def publish(rabbit_url: str, *bodies: bytes, routing_key: str = TRANSACTION_COMPLETED) -> None:
    async def send() -> None:
        broker = make_broker(rabbit_url)
        await connect(broker, rabbit_url)
        for body in bodies:
            await broker.publish(body, exchange=EVENTS, routing_key=routing_key, persist=True)
        await broker.stop()

    asyncio.run(send())


def test_1000_deposits_become_exactly_1000_notifications(pipeline, token_for, capsys):
    ann = token_for(1)
    account = open_account(pipeline.accounts, ann)

    deposits(pipeline, ann, account, 1000, prefix="d")

    pipeline.wait_for_completed_notifications(1000)
    pipeline.assert_each_event_told_once()
    lags = query_value(
        pipeline.urls["notifications"],
        "SELECT array_agg(EXTRACT(EPOCH FROM created_at - occurred_at) ORDER BY 1)"
        " FROM notifications WHERE event_type = 'transaction.completed'",
    )
    lags = sorted(float(lag) for lag in lags)
    p50, p99 = statistics.median(lags), lags[int(len(lags) * 0.99) - 1]
    with capsys.disabled():
        print(f"\ncommit -> notification stored over RabbitMQ, 1000 deposits: p50 {p50:.3f}s  p99 {p99:.3f}s")


def test_a_broker_outage_delays_notifications_and_loses_none(own_broker, role_process, database_urls, token_for):
    pipeline = start_pipeline(role_process, database_urls)
    ann = token_for(1)
    account = open_account(pipeline.accounts, ann)
    own_broker.stop_app()
    try:
        deposits(pipeline, ann, account, 200, prefix="outage")
        assert pipeline.completed_notifications() == 0
    finally:
        own_broker.start_app()

    pipeline.wait_for_completed_notifications(200)
    pipeline.assert_each_event_told_once()


def test_a_notifier_killed_mid_stream_loses_and_duplicates_nothing(pipeline, token_for):
    """Some notifications stored, the next batch taken off the queue but blocked in its insert: a
    kill then must lose none of the batch and repeat none of what was stored. The table lock makes
    "mid-stream" certain rather than a race against the notifier's speed."""
    ann = token_for(1)
    account = open_account(pipeline.accounts, ann)
    deposits(pipeline, ann, account, 250, prefix="stored")
    pipeline.wait_for_completed_notifications(250)

    with holding_table_lock(pipeline.urls["notifications"], "notifications"):
        deposits(pipeline, ann, account, 250, prefix="in-flight")
        wait_until(
            lambda: sessions_waiting_on_a_lock(pipeline.urls["notifications"]) > 0,
            timeout=30,
            what="the notifier to be blocked inserting a batch",
        )
        pipeline.notifier.kill()
    assert pipeline.completed_notifications() == 250
    pipeline.notifier.start()

    pipeline.wait_for_completed_notifications(500)
    pipeline.assert_each_event_told_once()


@contextmanager
def holding_table_lock(database_url: str, table: str) -> Iterator[None]:
    """Writers to `table` wait until the block ends; readers go on."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f'LOCK TABLE "{table}" IN SHARE MODE'))
            yield
    finally:
        engine.dispose()


def sessions_waiting_on_a_lock(database_url: str) -> int:
    return query_value(
        database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )


def test_an_event_delivered_twice_is_one_notification(pipeline, rabbit_url):
    event = new_event(
        TRANSACTION_COMPLETED,
        recipients=[Recipient(7, "Deposit of $5.00 completed. New balance: $5.00")],
        transaction_id=99,
        transaction_type="deposit",
    )

    publish(rabbit_url, encode_event(event), encode_event(event))
    publish(rabbit_url, encode_event(event))

    pipeline.wait_for_completed_notifications(1)
    wait_until(lambda: queue_depth(rabbit_url, NOTIFICATIONS_QUEUE.name) == 0, timeout=10, what="the queue to drain")
    assert pipeline.completed_notifications() == 1


def test_a_malformed_message_is_parked_with_its_reason_and_does_not_block(pipeline, rabbit_url):
    good = new_event(
        TRANSACTION_COMPLETED,
        recipients=[Recipient(8, "Deposit of $1.00 completed. New balance: $1.00")],
        transaction_id=100,
        transaction_type="deposit",
    )

    publish(rabbit_url, b'{"this is": "not an event"}', encode_event(good))

    pipeline.wait_for_completed_notifications(1)
    parked = wait_until(
        lambda: get_one(rabbit_url, NOTIFICATIONS_QUEUE.dead_letter_queue),
        timeout=20,
        what="the malformed message in the dead-letter queue",
    )
    assert parked.body == b'{"this is": "not an event"}'
    assert parked.headers["x-attempts"] == 3
    assert "ValidationError" in parked.headers["x-error"]
    assert parked.headers["x-routing-key"] == TRANSACTION_COMPLETED


def queue_depth(rabbit_url: str, queue: str) -> int:
    async def depth() -> int:
        async with await aio_pika.connect(rabbit_url) as connection:
            declared = await (await connection.channel()).declare_queue(queue, passive=True)
            return declared.declaration_result.message_count

    return asyncio.run(depth())


def get_one(rabbit_url: str, queue: str):
    async def get():
        async with await aio_pika.connect(rabbit_url) as connection:
            declared = await (await connection.channel()).declare_queue(queue, passive=True)
            return await declared.get(no_ack=True, fail=False)

    return asyncio.run(get())


def test_the_notifier_is_not_ready_without_its_broker(role_process, rabbit_url, monkeypatch):
    monkeypatch.setenv("RABBIT_URL", "amqp://guest:guest@127.0.0.1:1/")
    notifier = role_process("notifier")

    notifier.start(wait=False)
    ready = notifier.first_answer("/readyz")

    assert ready.status_code == 503
    assert "RabbitMQ unreachable" in ready.json()["reasons"]
    assert notifier.first_answer("/healthz").status_code == 200


def test_all_in_one_with_a_broker_delivers_through_rabbitmq(role_process, rabbit_url, database_urls):
    bank = role_process("all").start()
    http = httpx.Client(base_url=bank.url)
    http.post("/api/users", json={"name": "Ann", "email": "ann@example.com", "password": "correct horse battery"})
    token = http.post("/api/auth/token", json={"email": "ann@example.com", "password": "correct horse battery"})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    account = http.post("/api/accounts", json={"account_type": "checking"}, headers=headers).json()["id"]

    assert move(bank, headers, "k", account_id=account, type="deposit", amount="200.00").status_code == 201

    messages = wait_until(
        lambda: [n["message"] for n in http.get("/api/notifications", headers=headers).json() if n["transaction_id"]],
        timeout=20,
        what="the deposit's notification",
    )
    assert messages == ["Deposit of $200.00 completed. New balance: $200.00"]
    vhost = rabbit_url.rsplit("/", 1)[1]
    queues = subprocess.run(
        ["rabbitmqctl", "-s", "list_queues", "-p", vhost, "name"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(queues) == [NOTIFICATIONS_QUEUE.name, NOTIFICATIONS_QUEUE.dead_letter_queue]


def test_an_event_nobody_is_bound_to_is_an_error_not_a_silent_drop(rabbit_url):
    unroutable = new_event("nobody.listens", recipients=[Recipient(1, "lost?")])
    sink = RabbitSink(rabbit_url)

    async def deliver() -> None:
        try:
            await sink.deliver([unroutable], [None])
        finally:
            await sink.aclose()

    with pytest.raises(PublishError, match="NO_ROUTE"):
        asyncio.run(deliver())
