"""The transactional outbox: events are rows written with the state change they describe, and a
relay delivers them afterwards. A delivery outage delays events; it never loses them."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Protocol

import anyio.to_thread
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Column, Index, MetaData, String, Table, Text, func, or_, select, update
from sqlalchemy.orm import Session

from microbank.platform.db import BigIntId, Database, UTCDateTime, utcnow
from microbank.platform.domain import Runtime, Worker
from microbank.platform.events import BankEvent, decode_event, encode_event
from microbank.platform.retry import retry_until_done

log = logging.getLogger("microbank.outbox")

# Longer than a delivery can take (broker.PUBLISH_TIMEOUT, 10 s): a relay that dies
# mid-delivery leaves its batch to the others once the lease runs out.
DELIVERY_LEASE = timedelta(seconds=30)


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table of a domain database; the relay finds unsent rows by (published_at, id)
    and leases a batch to itself with claimed_until while it delivers it."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigIntId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("routing_key", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
        Column("published_at", UTCDateTime(), nullable=True),
        Column("claimed_until", UTCDateTime(), nullable=True),
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
    """Deliver unsent outbox rows, oldest first, marking them sent only after the sink accepted them.
    Order is not a promise: batches of several replicas, and redelivered batches, interleave.

    A batch is leased (claimed_until) in one short transaction, delivered with no transaction
    open, and marked sent in another; the claim uses FOR UPDATE SKIP LOCKED, so several replicas
    share the work. A failed delivery gives its lease back at once; a relay that dies mid-delivery
    loses it when it runs out. Either way the rows are delivered again, and consumers drop the
    duplicate by event_id. Each database call is a whole transaction in a worker thread, so a
    cancelled relay never leaves a thread holding locks or waiting on the event loop.
    """

    def __init__(
        self,
        db: Database,
        outbox: Table,
        sink: EventSink,
        *,
        batch_size: int = 100,
        lease: timedelta = DELIVERY_LEASE,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.sink = sink
        self.batch_size = batch_size
        self.lease = lease

    async def relay_once(self) -> int:
        """Deliver one batch; how many rows were sent."""
        rows = await anyio.to_thread.run_sync(self._lease_unsent)
        if not rows:
            return 0
        ids = [row.id for row in rows]
        try:
            await self.sink.deliver([decode_event(row.payload) for row in rows])
        except Exception:
            await anyio.to_thread.run_sync(self._end_lease, ids, None)
            raise
        await anyio.to_thread.run_sync(self._end_lease, ids, utcnow())
        return len(rows)

    def _lease_unsent(self) -> list:
        table, now = self.outbox, utcnow()
        due = (
            select(table.c.id)
            .where(table.c.published_at.is_(None), or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now))
            .order_by(table.c.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        with self.db.transaction() as session:
            rows = session.execute(
                update(table)
                .where(table.c.id.in_(due.scalar_subquery()))
                .values(claimed_until=now + self.lease)
                .returning(table.c.id, table.c.payload)
            ).all()
        return sorted(rows, key=lambda row: row.id)  # RETURNING comes in no particular order

    def _end_lease(self, ids: list[int], published_at: datetime | None) -> None:
        """Mark the batch sent, or (published_at None) hand it back for the next attempt."""
        table = self.outbox
        with self.db.transaction() as session:
            session.execute(
                update(table).where(table.c.id.in_(ids)).values(published_at=published_at, claimed_until=None)
            )

    async def run(self, *, interval: float = 0.2) -> None:
        """Relay for ever: a full batch is followed at once by the next, a short one after
        `interval`; a failed delivery leaves its rows unsent and is retried with backoff."""
        while True:
            sent = await retry_until_done(self.relay_once, what="outbox delivery", first_delay=interval)
            if sent < self.batch_size:
                await asyncio.sleep(interval)


class OutboxBacklog(Collector):
    """outbox_backlog and outbox_oldest_unsent_age_seconds per domain, read from the database at
    each scrape rather than kept by the relay, so a stalled or missing relay still shows."""

    def __init__(self) -> None:
        self._outboxes: dict[str, tuple[Database, Table]] = {}

    def watch(self, domain: str, db: Database, outbox: Table) -> None:
        self._outboxes[domain] = (db, outbox)

    def forget(self, domain: str, db: Database) -> None:
        if self._outboxes.get(domain, (None,))[0] is db:
            del self._outboxes[domain]

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> list[GaugeMetricFamily]:
        backlog, age = self._families()
        now = utcnow()
        for domain, (db, table) in list(self._outboxes.items()):
            unsent = select(func.count(), func.min(table.c.created_at)).where(table.c.published_at.is_(None))
            try:
                with db.transaction() as session:
                    count, oldest = session.execute(unsent).one()
            except Exception as exc:  # a scrape reports what it can; readiness reports the outage
                log.debug("outbox backlog of %s unreadable: %r", domain, exc)
                continue
            backlog.add_metric([domain], count)
            age.add_metric([domain], (now - oldest).total_seconds() if oldest else 0.0)
        return [backlog, age]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("outbox_backlog", "Events committed but not yet delivered", labels=["domain"]),
            GaugeMetricFamily(
                "outbox_oldest_unsent_age_seconds", "Age of the oldest undelivered event", labels=["domain"]
            ),
        )


OUTBOX_BACKLOG = OutboxBacklog()
REGISTRY.register(OUTBOX_BACKLOG)


def relay_worker(domain: str, outbox: Table) -> Worker:
    """The worker that relays `domain`'s outbox to the role's event sink, if it has one, and
    reports the outbox's backlog for as long as the role runs."""

    async def relay_outbox(runtime: Runtime) -> None:
        db = runtime.databases[domain]
        OUTBOX_BACKLOG.watch(domain, db, outbox)
        try:
            sink = runtime.ports.get("event_sink")
            if sink is None:
                log.warning("%s: no event sink (set RABBIT_URL): events wait in the outbox", domain)
                await asyncio.Event().wait()
            else:
                await OutboxRelay(db, outbox, sink).run()
        finally:
            OUTBOX_BACKLOG.forget(domain, db)

    relay_outbox.__name__ = f"relay_{domain}_outbox"
    return relay_outbox
