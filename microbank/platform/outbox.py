"""The transactional outbox: events are rows written with the state change they describe, and a
relay delivers them afterwards. A delivery outage delays events; it never loses them."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import anyio.from_thread
import anyio.to_thread
from sqlalchemy import Column, Index, MetaData, String, Table, Text, select, update
from sqlalchemy.orm import Session

from microbank.platform.db import BigIntId, Database, UTCDateTime, utcnow
from microbank.platform.domain import Runtime, Worker
from microbank.platform.events import BankEvent, decode_event, encode_event
from microbank.platform.retry import retry_until_done

log = logging.getLogger("microbank.outbox")


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table of a domain database; the relay finds unsent rows by (published_at, id)."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigIntId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("routing_key", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
        Column("published_at", UTCDateTime(), nullable=True),
        Index("ix_outbox_published_at_id", "published_at", "id"),
    )


def add_event(session: Session, outbox: Table, event: BankEvent) -> None:
    """Write the event in the caller's transaction: it exists if and only if the change commits."""
    session.execute(
        outbox.insert().values(
            event_id=event.event_id,
            routing_key=event.event_type,
            payload=encode_event(event).decode(),
            created_at=event.occurred_at,
        )
    )


class EventSink(Protocol):
    """Where the relay delivers events: the broker, or a consumer in the same process."""

    async def deliver(self, events: list[BankEvent]) -> None: ...


class OutboxRelay:
    """Deliver unsent outbox rows in order, marking them sent only after the sink accepted them.

    Rows are claimed with FOR UPDATE SKIP LOCKED, so several replicas share the work without
    sending a row twice; a row whose delivery fails stays unsent and is tried again.
    """

    def __init__(self, db: Database, outbox: Table, sink: EventSink, *, batch_size: int = 100) -> None:
        self.db = db
        self.outbox = outbox
        self.sink = sink
        self.batch_size = batch_size

    async def relay_once(self) -> int:
        """Deliver one batch; how many rows were sent."""
        return await anyio.to_thread.run_sync(self._relay_batch)

    def _relay_batch(self) -> int:
        table = self.outbox
        with self.db.transaction() as session:
            rows = session.execute(
                select(table.c.id, table.c.payload)
                .where(table.c.published_at.is_(None))
                .order_by(table.c.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return 0
            anyio.from_thread.run(self.sink.deliver, [decode_event(row.payload) for row in rows])
            session.execute(update(table).where(table.c.id.in_([row.id for row in rows])).values(published_at=utcnow()))
        return len(rows)

    async def run(self, *, interval: float = 0.2) -> None:
        """Relay for ever: a full batch is followed at once by the next, a short one after
        `interval`; a failed delivery leaves its rows unsent and is retried with backoff."""
        while True:
            sent = await retry_until_done(self.relay_once, what="outbox delivery", first_delay=interval)
            if sent < self.batch_size:
                await asyncio.sleep(interval)


def relay_worker(domain: str, outbox: Table) -> Worker:
    """The worker that relays `domain`'s outbox to the role's event sink, if it has one."""

    async def relay_outbox(runtime: Runtime) -> None:
        sink = runtime.ports.get("event_sink")
        if sink is None:
            log.warning("%s: no event sink (set RABBIT_URL): events wait in the outbox", domain)
            return
        await OutboxRelay(runtime.databases[domain], outbox, sink).run()

    relay_outbox.__name__ = f"relay_{domain}_outbox"
    return relay_outbox
