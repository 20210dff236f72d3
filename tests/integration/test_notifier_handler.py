"""The notifier's RabbitMQ handler, driven by FastStream's in-memory TestRabbitBroker (no real
broker) and storing into the real notifications database.

What the fake broker cannot show: it routes by the *subscriber's* exchange, and the notifier's
subscriber is queue-only (`declare=False`): its bindings to banking_events come from TOPOLOGY,
declared at start-up. So these tests publish to the notifications queue itself (default
exchange), which is what RabbitMQ hands the consumer after routing. Dead-lettering and delivery
limits are not emulated either; the ParkFailures middleware's retry/park decisions are checked
here by faking the `x-delivery-count` header a quorum queue would set, and the real-broker
suite covers the rest.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from faststream.exceptions import SubscriberNotFound
from faststream.rabbit import RabbitBroker, RabbitMessage, RabbitQueue, TestRabbitBroker
from faststream.rabbit.message import RabbitMessage as RabbitMessageClass
from sqlalchemy import create_engine, text

from microbank.notifications.consumer import MAX_ATTEMPTS, build_notifier
from microbank.platform.broker import NOTIFICATIONS_QUEUE
from microbank.platform.consuming import DEAD_LETTERS, EVENTS
from microbank.platform.db import Database, utcnow
from microbank.platform.events import (
    TRANSACTION_COMPLETED,
    USER_REGISTERED,
    BankEvent,
    Recipient,
    encode_event,
    new_event,
)


@pytest.fixture
def notifications_db(database_urls: dict[str, str]) -> Iterator[Database]:
    db = Database("notifications", database_urls["notifications"], pool_size=2)
    yield db
    db.dispose()


@pytest.fixture
def notifier(notifications_db: Database) -> RabbitBroker:
    return build_notifier(url="amqp://localhost/", db=notifications_db)


def stored(database_urls: dict[str, str]) -> list[dict[str, Any]]:
    """Every notification row, oldest first, read straight from the database."""
    engine = create_engine(database_urls["notifications"])
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT user_id, event_id, event_type, message, transaction_id, read_at "
                    "FROM notifications ORDER BY id"
                )
            )
            return [dict(row._mapping) for row in rows]
    finally:
        engine.dispose()


def deliver(broker: RabbitBroker, *bodies: Any, headers: dict[str, Any] | None = None) -> None:
    """Hand each body to the notifications queue, as RabbitMQ would after routing it."""

    async def run() -> None:
        async with TestRabbitBroker(broker) as br:
            for body in bodies:
                await br.publish(
                    body,
                    queue=NOTIFICATIONS_QUEUE.name,
                    content_type="application/json",
                    headers=headers,
                )

    asyncio.run(run())


async def raw_body(message: RabbitMessageClass) -> bytes:
    return message.body


def transfer_event() -> BankEvent:
    return new_event(
        TRANSACTION_COMPLETED,
        recipients=[
            Recipient(1, "Transfer of $25.00 to account 7 completed. New balance: $75.00"),
            Recipient(2, "Received $25.00 from account 3 into account 7. New balance: $25.00"),
        ],
        transaction_id=42,
        transaction_type="transfer",
    )


# --- storing ---------------------------------------------------------------------------


def test_a_transfer_event_stores_one_notification_per_recipient(notifier, database_urls):
    event = transfer_event()

    deliver(notifier, encode_event(event))

    assert stored(database_urls) == [
        {
            "user_id": 1,
            "event_id": event.event_id,
            "event_type": "transaction.completed",
            "message": "Transfer of $25.00 to account 7 completed. New balance: $75.00",
            "transaction_id": 42,
            "read_at": None,
        },
        {
            "user_id": 2,
            "event_id": event.event_id,
            "event_type": "transaction.completed",
            "message": "Received $25.00 from account 3 into account 7. New balance: $25.00",
            "transaction_id": 42,
            "read_at": None,
        },
    ]


def test_the_dataclass_itself_can_be_published(notifier, database_urls):
    """FastStream serialises the BankEvent dataclass the same way encode_event does."""
    event = transfer_event()

    deliver(notifier, event)

    assert [(row["user_id"], row["event_id"]) for row in stored(database_urls)] == [
        (1, event.event_id),
        (2, event.event_id),
    ]


def test_a_redelivered_event_is_stored_once(notifier, database_urls):
    event = transfer_event()

    deliver(notifier, encode_event(event), encode_event(event))
    deliver(notifier, encode_event(event))

    assert [row["user_id"] for row in stored(database_urls)] == [1, 2]


def test_different_events_for_the_same_user_are_all_stored(notifier, database_urls):
    first, second = transfer_event(), transfer_event()

    deliver(notifier, encode_event(first), encode_event(second))

    assert [(row["event_id"], row["user_id"]) for row in stored(database_urls)] == [
        (first.event_id, 1),
        (first.event_id, 2),
        (second.event_id, 1),
        (second.event_id, 2),
    ]


def test_a_user_registered_event_is_stored(notifier, database_urls):
    event = new_event(USER_REGISTERED, recipients=[Recipient(5, "Welcome to microbank, Ann Lee!")])

    deliver(notifier, encode_event(event))

    assert stored(database_urls) == [
        {
            "user_id": 5,
            "event_id": event.event_id,
            "event_type": "user.registered",
            "message": "Welcome to microbank, Ann Lee!",
            "transaction_id": None,
            "read_at": None,
        }
    ]


def test_an_event_without_recipients_tells_its_user(notifier, database_urls):
    """The seed's shape: only user_id and message, as an older publisher would send."""
    now = utcnow()
    event = BankEvent(
        event_id=str(uuid.uuid4()),
        event_type=TRANSACTION_COMPLETED,
        occurred_at=now,
        user_id=9,
        message="Deposit of $200.00 completed. New balance: $200.00",
        timestamp=now,
        transaction_id=3,
        transaction_type="deposit",
    )

    deliver(notifier, encode_event(event))

    assert stored(database_urls) == [
        {
            "user_id": 9,
            "event_id": event.event_id,
            "event_type": "transaction.completed",
            "message": "Deposit of $200.00 completed. New balance: $200.00",
            "transaction_id": 3,
            "read_at": None,
        }
    ]


def test_a_stored_event_is_acked(notifier):
    with mock.patch.object(RabbitMessageClass, "ack", autospec=True) as ack:
        deliver(notifier, encode_event(transfer_event()))
    assert ack.call_count == 1


def test_the_subscriber_binds_nothing_itself(notifier):
    """The queue's bindings come from TOPOLOGY alone, so the fake broker, which routes by the
    subscriber's own exchange, finds no subscriber behind banking_events (RabbitMQ would route
    it, through the bindings TOPOLOGY declares)."""

    async def run() -> None:
        async with TestRabbitBroker(notifier) as br:
            await br.publish(encode_event(transfer_event()), exchange=EVENTS, routing_key=TRANSACTION_COMPLETED)

    with pytest.raises(SubscriberNotFound):
        asyncio.run(run())


# --- failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"event_id": "x"}',
        b'{"event_id": "x", "event_type": "transaction.completed", "occurred_at": "yesterday", '
        b'"user_id": 1, "message": "m", "timestamp": "2024-01-01T00:00:00Z"}',
    ],
    ids=["not-json", "missing-fields", "bad-timestamp"],
)
def test_a_malformed_message_is_retried_and_stores_nothing(notifier, database_urls, body):
    """First delivery (no x-delivery-count): the middleware nacks it for redelivery."""
    with (
        mock.patch.object(RabbitMessageClass, "nack", autospec=True) as nack,
        mock.patch.object(RabbitMessageClass, "ack", autospec=True) as ack,
    ):
        deliver(notifier, body)

    assert stored(database_urls) == []
    assert nack.call_count == 1
    assert nack.call_args.kwargs == {"requeue": True}
    assert ack.call_count == 0


def test_a_malformed_message_is_parked_on_its_last_attempt(notifier, database_urls):
    """On the MAX_ATTEMPTS-th delivery the middleware publishes it to the dead-letter exchange,
    saying why, and acks it."""
    parked: list[tuple[bytes, dict[str, Any]]] = []

    @notifier.subscriber(
        RabbitQueue(NOTIFICATIONS_QUEUE.dead_letter_queue, declare=False, routing_key=NOTIFICATIONS_QUEUE.name),
        DEAD_LETTERS,
        # The parked body is whatever failed: take it as bytes rather than decode it as JSON.
        decoder=raw_body,
    )
    async def dead_letters(message: RabbitMessage) -> None:
        parked.append((message.body, dict(message.headers)))

    with (
        mock.patch.object(RabbitMessageClass, "nack", autospec=True) as nack,
        mock.patch.object(RabbitMessageClass, "ack", autospec=True) as ack,
    ):
        deliver(notifier, b"not json", headers={"x-delivery-count": MAX_ATTEMPTS - 1})

    assert stored(database_urls) == []
    assert nack.call_count == 0
    assert len(parked) == 1
    body, headers = parked[0]
    assert body == b"not json"
    assert headers["x-attempts"] == MAX_ATTEMPTS
    assert headers["x-routing-key"] == NOTIFICATIONS_QUEUE.name
    assert headers["x-error"]
    # Acked: the poison message (from the queue) and, by its own subscriber, the parked copy.
    acked_from = sorted(call.args[0].raw_message.exchange for call in ack.call_args_list)
    assert acked_from == ["", DEAD_LETTERS.name]
