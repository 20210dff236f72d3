"""The transactional outbox: events are rows written with the state change they describe, and a
relay delivers them afterwards. A delivery outage delays events; it never loses them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread
from prometheus_client import REGISTRY, Counter
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import (
    Column,
    Connection,
    Index,
    MetaData,
    Select,
    String,
    Table,
    Text,
    Update,
    bindparam,
    func,
    or_,
    select,
    update,
)

from microbank.platform.db import BigIntId, Database, UTCDateTime, after_commit, utcnow
from microbank.platform.domain import Runtime, Worker
from microbank.platform.events import BankEvent, decode_event, encode_event
from microbank.platform.logging import MAX_REQUEST_ID_LENGTH, current_request_id
from microbank.platform.retry import FailureLog

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("microbank.outbox")

# Longer than a delivery can take (broker.PUBLISH_TIMEOUT, 2 s): a relay that dies mid-delivery
# leaves its batch to the others once the lease runs out, and they look every POLL_INTERVAL.
DELIVERY_LEASE = timedelta(seconds=3)
POLL_INTERVAL = 1.0
RETRY_FIRST_DELAY = 0.2
# A relay waiting out a broker outage tries once a second at most: the backlog starts moving
# within about a second of the broker's connection coming back (broker.RECONNECT_INTERVAL).
RETRY_MAX_DELAY = 1.0

EVENTS_PUBLISHED = Counter("events_published_total", "Outbox events delivered to the event sink", ["domain"])
EVENT_PUBLISH_FAILURES = Counter(
    "event_publish_failures_total", "Outbox events whose delivery failed and will be retried", ["domain"]
)


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table of a domain database; the relay finds unsent rows by (published_at, id)
    and leases a batch to itself with claimed_until while it delivers it. request_id is the
    request the event came from, for the consumers' log lines (none for a worker's event)."""
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
        Column("request_id", String(MAX_REQUEST_ID_LENGTH), nullable=True),
        Index("ix_outbox_published_at_id", "published_at", "id"),
    )


def add_event(connection: Connection | Session, outbox: Table, event: BankEvent) -> None:
    """Write the event in the caller's transaction: it exists if and only if the change commits,
    and once it has committed the relays of this process are woken to deliver it."""
    if not isinstance(connection, Connection):  # an ORM session's
        connection = connection.connection()
    row = {
        "event_id": event.event_id,
        "routing_key": event.event_type,
        "payload": encode_event(event).decode(),
        "created_at": event.occurred_at,
        "request_id": current_request_id(),
    }
    connection.execute(outbox.insert(), row)
    after_commit(connection, partial(wake_relays, outbox))


class EventSink(Protocol):
    """Where the relay delivers events: the broker, or a consumer in the same process. Each event
    comes with the id of the request it came from, or None."""

    async def deliver(self, events: list[BankEvent], request_ids: Sequence[str | None]) -> None: ...


class RelayWakeup:
    """Wakes a relay on its event loop from any thread: once per burst of commits, however many."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._pending = False

    def notify(self) -> None:
        if not self._pending:
            self._pending = True
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout: float) -> None:
        """Until notified, or `timeout` seconds."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
        # arrives as the event is set, and the relay would then outlive its app's shutdown.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
        self._event.clear()
        self._pending = False


@dataclass(frozen=True)
class RelayStatements:
    # Whether anything is unsent: a plain index lookup, so an idle relay's poll costs little.
    any_unsent: Select
    lease: Update
    end_lease: Update


def relay_statements(outbox: Table) -> RelayStatements:
    """The relay's two statements for this outbox, built once (kept in the table's info)."""
    if "relay_statements" not in outbox.info:
        due = (
            select(outbox.c.id)
            .where(
                outbox.c.published_at.is_(None),
                or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= bindparam("now")),
            )
            .order_by(outbox.c.id)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
        )
        outbox.info["relay_statements"] = RelayStatements(
            any_unsent=select(outbox.c.id).where(outbox.c.published_at.is_(None)).limit(1),
            lease=update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(claimed_until=bindparam("claimed_until"))
            .returning(outbox.c.id, outbox.c.payload, outbox.c.request_id),
            end_lease=update(outbox)
            .where(outbox.c.id.in_(bindparam("ids", expanding=True)))
            .values(published_at=bindparam("published_at"), claimed_until=None),
        )
    return outbox.info["relay_statements"]


def _wakeups(outbox: Table) -> set[RelayWakeup]:
    """The relays of this process waiting on `outbox`."""
    return outbox.info.setdefault("relay_wakeups", set())


def wake_relays(outbox: Table) -> None:
    for wakeup in list(_wakeups(outbox)):
        wakeup.notify()


class OutboxRelay:
    """Deliver unsent outbox rows, oldest first, marking them sent only after the sink accepted them.
    Order is not a promise: batches of several replicas, and redelivered batches, interleave.

    A commit that writes an event wakes the relays of its process at once; the others, and a relay
    taking over a dead replica's lease, find rows by polling every `poll_interval` seconds. A batch
    is leased (claimed_until) in one short transaction, delivered with no transaction open, and
    marked sent in another; the claim uses FOR UPDATE SKIP LOCKED, so several replicas share the
    work. A failed delivery gives its lease back at once; a relay that dies mid-delivery loses it
    when it runs out. Either way the rows are delivered again, and consumers drop the duplicate by
    event_id. Each database call is a whole transaction in a worker thread, so a cancelled relay
    never leaves a thread holding locks or waiting on the event loop.
    """

    def __init__(
        self,
        db: Database,
        outbox: Table,
        sink: EventSink,
        *,
        batch_size: int = 200,
        lease: timedelta = DELIVERY_LEASE,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.sink = sink
        self.batch_size = batch_size
        self.lease = lease
        self.poll_interval = poll_interval
        self.failures = FailureLog(log, f"{db.name} outbox delivery")
        self._statements = relay_statements(outbox)

    async def relay_once(self) -> int:
        """Deliver one batch; how many rows were sent."""
        rows = await anyio.to_thread.run_sync(self._lease_unsent)
        if not rows:
            return 0
        ids = [row.id for row in rows]
        try:
            await self.sink.deliver([decode_event(row.payload) for row in rows], [row.request_id for row in rows])
        except Exception:
            EVENT_PUBLISH_FAILURES.labels(self.db.name).inc(len(rows))
            await anyio.to_thread.run_sync(self._end_lease, ids, None)
            raise
        await anyio.to_thread.run_sync(self._end_lease, ids, utcnow())
        EVENTS_PUBLISHED.labels(self.db.name).inc(len(rows))
        return len(rows)

    def _lease_unsent(self) -> list:
        now = utcnow()
        lease = {"now": now, "limit": self.batch_size, "claimed_until": now + self.lease}

        def lease_unsent(connection: Connection) -> list:
            if connection.execute(self._statements.any_unsent).first() is None:
                return []
            return connection.execute(self._statements.lease, lease).all()

        rows = self.db.run(lease_unsent)
        return sorted(rows, key=lambda row: row.id)  # RETURNING comes in no particular order

    def _end_lease(self, ids: list[int], published_at: datetime | None) -> None:
        """Mark the batch sent, or (published_at None) hand it back for the next attempt."""
        ended = {"ids": ids, "published_at": published_at}
        self.db.run(lambda connection: connection.execute(self._statements.end_lease, ended))

    async def run(self) -> None:
        """Relay for ever: at once after a commit in this process, every poll_interval otherwise,
        and without pause while full batches keep coming; after a failure, again after a short
        backoff, so a broker that comes back is used within RETRY_MAX_DELAY."""
        wakeup = RelayWakeup()
        _wakeups(self.outbox).add(wakeup)
        delay = RETRY_FIRST_DELAY
        try:
            while True:
                try:
                    sent = await self.relay_once()
                except Exception as exc:  # whatever failed, the rows stay unsent and are tried again
                    self.failures.failed(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_DELAY)
                    continue
                self.failures.recovered()
                delay = RETRY_FIRST_DELAY
                if sent < self.batch_size:
                    await wakeup.wait(self.poll_interval)
        finally:
            _wakeups(self.outbox).discard(wakeup)


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
                with db.begin() as connection:
                    count, oldest = connection.execute(unsent).one()
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
            sink = runtime.ports.event_sink
            if sink is None:
                log.warning("%s: no event sink (set RABBIT_URL): events wait in the outbox", domain)
                await asyncio.Event().wait()
            else:
                await OutboxRelay(db, outbox, sink).run()
        finally:
            OUTBOX_BACKLOG.forget(domain, db)

    relay_outbox.__name__ = f"relay_{domain}_outbox"
    return relay_outbox
