"""The notifier: events from RabbitMQ become notifications, one per recipient, once per event."""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitMessage, RabbitQueue

from microbank.notifications.service import store_notifications
from microbank.platform.broker import (
    NOTIFICATIONS_QUEUE,
    connect_when_available,
    make_broker,
    park_failures,
    readiness_of,
)
from microbank.platform.db import Database
from microbank.platform.domain import Runtime
from microbank.platform.errors import Unavailable
from microbank.platform.events import BankEvent
from microbank.platform.retry import retry_until_done

log = logging.getLogger("microbank.notifier")

# A handful of deliveries tells a poison message from a passing fault; then it is parked.
MAX_ATTEMPTS = 3
# Messages in flight per consumer: enough to keep the database busy between acks.
PREFETCH = 50


def build_notifier(*, url: str, db: Database) -> RabbitBroker:
    broker: RabbitBroker
    broker = make_broker(
        url,
        prefetch=PREFETCH,
        middlewares=(park_failures(NOTIFICATIONS_QUEUE, lambda: broker, max_attempts=MAX_ATTEMPTS),),
    )

    @broker.subscriber(
        RabbitQueue(NOTIFICATIONS_QUEUE.name, declare=False),
        ack_policy=AckPolicy.MANUAL,
        title="notifications",
        description="Stores a notification for each recipient of the event, once per event_id.",
    )
    async def notify(event: BankEvent, message: RabbitMessage) -> None:
        await store_while_database_recovers(db, event)
        await message.ack()

    return broker


async def store_while_database_recovers(db: Database, event: BankEvent) -> None:
    """A database outage is not the message's fault: wait it out, holding the message, instead of
    spending its delivery attempts."""
    await retry_until_done(
        lambda: anyio.to_thread.run_sync(lambda: store_notifications(db=db, events=[event])),
        what=f"storing event {event.event_id}",
        retry_on=(Unavailable,),
        max_delay=10.0,
    )


async def consume_events(runtime: Runtime) -> None:
    broker = build_notifier(url=runtime.settings.rabbit_url or "", db=runtime.databases["notifications"])
    runtime.readiness_checks.append(readiness_of(broker))
    await connect_when_available(broker, verify_only=runtime.settings.rabbit_topology == "verify")
    await broker.start()
    log.info("consuming %s", NOTIFICATIONS_QUEUE.name)
    try:
        await asyncio.Event().wait()
    finally:
        await broker.stop()
