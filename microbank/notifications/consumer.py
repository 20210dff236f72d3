"""The notifier: events from RabbitMQ become notifications, one per recipient, once per event.

The broker hands over up to PREFETCH messages at a time, each to a handler of its own; the
handlers' events are stored together, one transaction for all that arrived together, and each
message is acked once its own notifications are committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio.to_thread
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitMessage, RabbitQueue
from prometheus_client import Counter

from microbank.notifications.service import log_handled, store_notifications
from microbank.platform.broker import NOTIFICATIONS_QUEUE
from microbank.platform.consuming import (
    connect_when_available,
    make_broker,
    park_failures,
    readiness_of,
)
from microbank.platform.db import Database
from microbank.platform.domain import Runtime
from microbank.platform.errors import Unavailable
from microbank.platform.events import BankEvent
from microbank.platform.retry import FailureLog

log = logging.getLogger("microbank.notifier")

# A handful of deliveries tells a poison message from a passing fault; then it is parked.
MAX_ATTEMPTS = 3
# Messages in flight per consumer: what one transaction stores at most, under load.
PREFETCH = 200
# Waiting out a notifications database that is down, holding the messages.
STORE_RETRY_FIRST, STORE_RETRY_MAX = 0.2, 2.0

NOTIFIER_MESSAGES = Counter("notifier_messages_total", "Messages the notifier handled, by outcome", ["outcome"])


class NotificationBatches:
    """Stores the events of concurrent handlers in shared transactions.

    A database outage is not the messages' fault: the batch waits it out, holding its messages,
    instead of spending their delivery attempts. Any other failure sends the batch's events back
    one at a time, so only the event at fault fails, to be retried or parked on its own.
    """

    def __init__(self, store: Callable[[list[BankEvent]], set[str]]) -> None:
        self._store = store
        self._waiting: list[tuple[BankEvent, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task | None = None
        self._failures = FailureLog(log, "storing notifications")

    async def store(self, event: BankEvent) -> bool:
        """Store the event's notifications; whether they were new (False: a redelivery)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((event, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the deliveries already read off the socket join this batch
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                new = await self._store_while_database_recovers([event for event, _ in batch])
            except Exception:  # whatever it was, each event finds out on its own
                await self._store_one_by_one(batch)
                continue
            self._settle(batch, new)

    @staticmethod
    def _settle(batch: list[tuple[BankEvent, asyncio.Future[bool]]], new: set[str]) -> None:
        """Tell each handler whether its event was new: a copy delivered twice in one batch is not."""
        for event, future in batch:
            if not future.done():
                future.set_result(event.event_id in new)
            new.discard(event.event_id)

    async def _store_while_database_recovers(self, events: list[BankEvent]) -> set[str]:
        delay = STORE_RETRY_FIRST
        while True:
            try:
                new = await anyio.to_thread.run_sync(self._store, events)
            except Unavailable as exc:
                self._failures.failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX)
                continue
            self._failures.recovered()
            return new

    async def _store_one_by_one(self, batch: list[tuple[BankEvent, asyncio.Future[bool]]]) -> None:
        for event, future in batch:
            try:
                new = await self._store_while_database_recovers([event])
            except Exception as exc:  # handed to the event's own handler, which retries or parks it
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(event.event_id in new)


def build_notifier(*, url: str, db: Database) -> RabbitBroker:
    broker: RabbitBroker
    broker = make_broker(
        url,
        prefetch=PREFETCH,
        middlewares=(
            park_failures(NOTIFICATIONS_QUEUE, lambda: broker, max_attempts=MAX_ATTEMPTS, counter=NOTIFIER_MESSAGES),
        ),
    )
    batches = NotificationBatches(lambda events: store_notifications(db=db, events=events))

    @broker.subscriber(
        RabbitQueue(NOTIFICATIONS_QUEUE.name, declare=False),
        ack_policy=AckPolicy.MANUAL,
        title="notifications",
        description="Stores a notification for each recipient of the event, once per event_id.",
    )
    async def notify(event: BankEvent, message: RabbitMessage) -> None:
        new = await batches.store(event)
        await message.ack()
        outcome = "stored" if new else "duplicate"
        NOTIFIER_MESSAGES.labels(outcome).inc()
        # The raw message's: FastStream makes up a correlation id for a message that has none.
        log_handled(event, message.raw_message.correlation_id, outcome)

    return broker


async def consume_events(runtime: Runtime) -> None:
    url = runtime.settings.rabbit_url or ""
    broker = build_notifier(url=url, db=runtime.databases["notifications"])
    runtime.readiness_checks.append(readiness_of(broker))
    await connect_when_available(broker, url, verify_only=runtime.settings.rabbit_topology == "verify")
    await broker.start()
    log.info("consuming %s", NOTIFICATIONS_QUEUE.name)
    try:
        await asyncio.Event().wait()
    finally:
        await broker.stop()
