"""Consuming events with FastStream: the broker a consumer runs on, and the policy for messages it
cannot handle. Only consuming roles load this (and with it FastStream and pydantic)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fast_depends.msgspec import MsgSpecSerializer
from faststream import BaseMiddleware
from faststream.rabbit import Channel, ExchangeType, RabbitBroker, RabbitExchange
from prometheus_client import Counter

from microbank.platform.broker import (
    CONNECT_TIMEOUT,
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    RECONNECT_INTERVAL,
    TOPOLOGY,
    QueueSpec,
    declare_topology,
)
from microbank.platform.events import BankEvent
from microbank.platform.retry import retry_until_done

log = logging.getLogger("microbank.broker")

EVENTS = RabbitExchange(EVENTS_EXCHANGE, type=ExchangeType.TOPIC, durable=True)
DEAD_LETTERS = RabbitExchange(DEAD_LETTER_EXCHANGE, type=ExchangeType.DIRECT, durable=True)


def make_broker(url: str, *, prefetch: int = 20, middlewares: tuple[Any, ...] = ()) -> RabbitBroker:
    """Publisher confirms, and a returned (unroutable) message raises instead of vanishing.
    Bodies are decoded by msgspec rather than pydantic, and FastStream writes no log line of
    its own per message: the two cost the notifier more CPU than storing the notification."""
    channel = Channel(prefetch_count=prefetch, publisher_confirms=True, on_return_raises=True)
    return RabbitBroker(
        url,
        default_channel=channel,
        middlewares=middlewares,
        logger=None,
        serializer=MsgSpecSerializer(),
        reconnect_interval=RECONNECT_INTERVAL,
    )


async def connect(broker: RabbitBroker, url: str, *, verify_only: bool = False) -> None:
    """Connect `broker` to `url` and declare (or verify) the topology there, or fail within CONNECT_TIMEOUT."""
    async with asyncio.timeout(CONNECT_TIMEOUT):  # not wait_for: see outbox.RelayWakeup.wait
        await broker.connect()
    await declare_topology(url, verify_only=verify_only)


def park_failures(
    spec: QueueSpec, broker_of: Callable[[], RabbitBroker], *, max_attempts: int, counter: Counter | None = None
) -> Callable[..., BaseMiddleware]:
    """A consumer middleware: a message whose handling fails (bad schema, a poison payload, a
    bug) is retried, and on its max_attempts-th failure is moved to its queue's dead-letter
    queue with the reason, so that it never blocks the messages behind it. `counter` counts
    the outcomes "retried" and "dead_lettered"."""

    class ParkFailures(BaseMiddleware):
        async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
            try:
                return await call_next(msg)
            except Exception as exc:  # whatever failed, the message is retried or parked
                outcome = await _retry_or_park(msg, exc)
                if counter is not None:
                    counter.labels(outcome).inc()
                return None

    async def _retry_or_park(msg: Any, exc: Exception) -> str:
        attempts = int((msg.raw_message.headers or {}).get("x-delivery-count", 0)) + 1
        if attempts < max_attempts:
            log.warning("message %s failed (attempt %d): %r", msg.message_id, attempts, exc)
            await msg.nack(requeue=True)
            return "retried"
        await park(broker_of(), spec, msg, reason=f"{type(exc).__name__}: {exc}", attempts=attempts)
        await msg.ack()
        return "dead_lettered"

    return ParkFailures


async def park(broker: RabbitBroker, spec: QueueSpec, msg: Any, *, reason: str, attempts: int) -> None:
    """Move a message to its queue's dead-letter queue, saying why, for an operator to inspect."""
    log.error(
        "parking message %s in %s after %d attempts: %s", msg.message_id, spec.dead_letter_queue, attempts, reason
    )
    await broker.publish(
        msg.body,
        exchange=DEAD_LETTERS,
        routing_key=spec.name,
        persist=True,
        message_id=msg.message_id,
        content_type=msg.content_type,
        headers={"x-error": reason[:1000], "x-attempts": attempts, "x-routing-key": msg.raw_message.routing_key},
    )


async def connect_when_available(broker: RabbitBroker, url: str, *, verify_only: bool = False) -> None:
    """Connect and declare (or verify) the topology, waiting out a broker that is not there yet."""
    await retry_until_done(
        lambda: connect(broker, url, verify_only=verify_only),
        what="connecting to RabbitMQ",
        max_delay=RECONNECT_INTERVAL,
    )


def readiness_of(broker: RabbitBroker) -> Callable[[], Awaitable[str | None]]:
    async def broker_ready() -> str | None:
        return None if await broker.ping(timeout=2) else "RabbitMQ unreachable"

    return broker_ready


def document_publishers(broker: RabbitBroker) -> None:
    """Declare what the domains publish, so the AsyncAPI document shows both sides of each channel."""
    for spec in TOPOLOGY.queues:
        for key in spec.routing_keys:
            broker.publisher(exchange=EVENTS, routing_key=key, schema=BankEvent, title=key, persist=True)
