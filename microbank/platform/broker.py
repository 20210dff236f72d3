"""RabbitMQ through FastStream: the topology as data, the relay's publishing sink, and the
policy for messages a consumer cannot handle.

The same TOPOLOGY is declared by the code at start-up (idempotently, by publishers and
consumers alike, so events route even before the first consumer ever ran) and exported as
a RabbitMQ definitions file for Kubernetes, so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faststream import BaseMiddleware
from faststream.rabbit import Channel, ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

from microbank.platform.events import (
    ACCOUNT_OPENED,
    TRANSACTION_COMPLETED,
    TRANSACTION_REJECTED,
    USER_REGISTERED,
    BankEvent,
    encode_event,
)
from microbank.platform.retry import retry_until_done

log = logging.getLogger("microbank.broker")

EVENTS_EXCHANGE = "banking_events"
DEAD_LETTER_EXCHANGE = "banking_events.dlx"
EVENTS = RabbitExchange(EVENTS_EXCHANGE, type=ExchangeType.TOPIC, durable=True)
DEAD_LETTERS = RabbitExchange(DEAD_LETTER_EXCHANGE, type=ExchangeType.DIRECT, durable=True)
CONNECT_TIMEOUT = 5.0
PUBLISH_TIMEOUT = 10.0


@dataclass(frozen=True)
class QueueSpec:
    """A durable quorum queue bound to events by routing key, dead-lettering to its own DLQ."""

    name: str
    routing_keys: tuple[str, ...]
    # A backstop for messages that crash the consumer itself: the consumer parks ordinary
    # failures after its own few attempts, long before this many deliveries.
    delivery_limit: int = 10

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    @property
    def arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": self.name,
            "x-delivery-limit": self.delivery_limit,
        }

    def queue(self, *, declare: bool = True) -> RabbitQueue:
        return RabbitQueue(
            self.name, queue_type=QueueType.QUORUM, durable=True, arguments=self.arguments, declare=declare
        )

    def dlq(self, *, declare: bool = True) -> RabbitQueue:
        return RabbitQueue(
            self.dead_letter_queue,
            queue_type=QueueType.QUORUM,
            durable=True,
            arguments={"x-queue-type": "quorum"},
            declare=declare,
        )


@dataclass(frozen=True)
class Topology:
    queues: tuple[QueueSpec, ...] = field(default_factory=tuple)

    def exchanges(self) -> tuple[RabbitExchange, RabbitExchange]:
        return (EVENTS, DEAD_LETTERS)

    async def declare(self, broker: RabbitBroker, *, verify_only: bool = False) -> None:
        """Declare everything; or, with verify_only, check that the broker has the exchanges and
        queues (passive declares, which need no configure permission) and leave the bindings to it."""
        exchanges = [_passive(e) for e in self.exchanges()] if verify_only else self.exchanges()
        events, dead_letters = [await broker.declare_exchange(e) for e in exchanges]
        for spec in self.queues:
            if verify_only:
                await broker.declare_queue(spec.queue(declare=False))
                await broker.declare_queue(spec.dlq(declare=False))
                continue
            queue = await broker.declare_queue(spec.queue())
            for key in spec.routing_keys:
                await queue.bind(events, routing_key=key)
            dlq = await broker.declare_queue(spec.dlq())
            await dlq.bind(dead_letters, routing_key=spec.name)

    def definitions(self, vhost: str = "/") -> dict[str, Any]:
        """The same topology as a RabbitMQ definitions document (load_definitions)."""
        exchanges = [
            {
                "name": e.name,
                "vhost": vhost,
                "type": e.type.value,
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            }
            for e in self.exchanges()
        ]
        queues, bindings = [], []
        for spec in self.queues:
            queues.append(
                {"name": spec.name, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": spec.arguments}
            )
            queues.append(
                {
                    "name": spec.dead_letter_queue,
                    "vhost": vhost,
                    "durable": True,
                    "auto_delete": False,
                    "arguments": {"x-queue-type": "quorum"},
                }
            )
            bindings += [_binding(EVENTS_EXCHANGE, spec.name, key, vhost) for key in spec.routing_keys]
            bindings.append(_binding(DEAD_LETTER_EXCHANGE, spec.dead_letter_queue, spec.name, vhost))
        return {
            "vhosts": [{"name": vhost}],
            "exchanges": exchanges,
            "queues": queues,
            "bindings": bindings,
            "policies": [],
        }


def _passive(exchange: RabbitExchange) -> RabbitExchange:
    # FastStream keeps one declared exchange per name and kind, so later publishes reuse this one.
    return RabbitExchange(exchange.name, type=exchange.type, durable=exchange.durable, declare=False)


def _binding(source: str, queue: str, key: str, vhost: str) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": key,
        "arguments": {},
    }


NOTIFICATIONS_QUEUE = QueueSpec(
    "notifications", (TRANSACTION_COMPLETED, TRANSACTION_REJECTED, ACCOUNT_OPENED, USER_REGISTERED)
)
TOPOLOGY = Topology(queues=(NOTIFICATIONS_QUEUE,))


@dataclass(frozen=True)
class BrokerGrant:
    """What one role's broker user may do, and nothing more: publish these routing keys to the
    events exchange, publish to these other exchanges, consume these queues. It configures nothing:
    the broker loads the topology at boot, and the role only verifies it (RABBIT_TOPOLOGY=verify)."""

    user: str
    routing_keys: tuple[str, ...] = ()
    exchanges: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()

    def writes(self) -> tuple[str, ...]:
        return ((EVENTS_EXCHANGE,) if self.routing_keys else ()) + self.exchanges


# Each publishing role may announce only its own events; the notifier only takes its queue
# and parks what it cannot handle.
GRANTS = (
    BrokerGrant("users", routing_keys=(USER_REGISTERED,)),
    BrokerGrant("accounts", routing_keys=(ACCOUNT_OPENED,)),
    BrokerGrant("transactions", routing_keys=(TRANSACTION_COMPLETED, TRANSACTION_REJECTED)),
    BrokerGrant("notifier", exchanges=(DEAD_LETTER_EXCHANGE,), queues=(NOTIFICATIONS_QUEUE.name,)),
)


def make_broker(url: str, *, prefetch: int = 20, middlewares: tuple[Any, ...] = ()) -> RabbitBroker:
    # Publisher confirms, and a returned (unroutable) message raises instead of vanishing.
    channel = Channel(prefetch_count=prefetch, publisher_confirms=True, on_return_raises=True)
    return RabbitBroker(url, default_channel=channel, middlewares=middlewares, logger=log)


async def connect(broker: RabbitBroker, *, verify_only: bool = False) -> None:
    """Connect and declare (or only verify) the topology, or fail within CONNECT_TIMEOUT."""
    await asyncio.wait_for(broker.connect(), timeout=CONNECT_TIMEOUT)
    await asyncio.wait_for(TOPOLOGY.declare(broker, verify_only=verify_only), timeout=CONNECT_TIMEOUT)


class RabbitSink:
    """The outbox relay's sink: persistent, confirmed publishes to the events exchange."""

    def __init__(self, url: str, *, verify_only: bool = False) -> None:
        self.broker = make_broker(url)
        self.verify_only = verify_only
        self._connected = False

    async def deliver(self, events: list[BankEvent]) -> None:
        if not self._connected:
            await connect(self.broker, verify_only=self.verify_only)
            self._connected = True
        await asyncio.wait_for(asyncio.gather(*(self._publish(e) for e in events)), timeout=PUBLISH_TIMEOUT)

    async def _publish(self, event: BankEvent) -> None:
        await self.broker.publish(
            encode_event(event),
            exchange=EVENTS,
            routing_key=event.event_type,
            persist=True,
            mandatory=True,
            message_id=event.event_id,
            content_type="application/json",
            timestamp=event.occurred_at,
        )

    async def aclose(self) -> None:
        await self.broker.stop()


def park_failures(
    spec: QueueSpec, broker_of: Callable[[], RabbitBroker], *, max_attempts: int
) -> Callable[..., BaseMiddleware]:
    """A consumer middleware: a message whose handling fails (bad schema, a poison payload, a
    bug) is retried, and on its max_attempts-th failure is moved to its queue's dead-letter
    queue with the reason, so that it never blocks the messages behind it."""

    class ParkFailures(BaseMiddleware):
        async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
            try:
                return await call_next(msg)
            except Exception as exc:  # whatever failed, the message is retried or parked
                attempts = int((msg.raw_message.headers or {}).get("x-delivery-count", 0)) + 1
                if attempts < max_attempts:
                    log.warning("message %s failed (attempt %d): %r", msg.message_id, attempts, exc)
                    await msg.nack(requeue=True)
                    return None
                await park(broker_of(), spec, msg, reason=f"{type(exc).__name__}: {exc}", attempts=attempts)
                await msg.ack()
                return None

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


async def connect_when_available(broker: RabbitBroker, *, verify_only: bool = False) -> None:
    """Connect and declare (or verify) the topology, waiting out a broker that is not there yet."""
    await retry_until_done(lambda: connect(broker, verify_only=verify_only), what="connecting to RabbitMQ")


def readiness_of(broker: RabbitBroker) -> Callable[[], Awaitable[str | None]]:
    async def broker_ready() -> str | None:
        return None if await broker.ping(timeout=2) else "RabbitMQ unreachable"

    return broker_ready


def document_publishers(broker: RabbitBroker) -> None:
    """Declare what the domains publish, so the AsyncAPI document shows both sides of each channel."""
    for spec in TOPOLOGY.queues:
        for key in spec.routing_keys:
            broker.publisher(exchange=EVENTS, routing_key=key, schema=BankEvent, title=key, persist=True)
