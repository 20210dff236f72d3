"""Notifications' use cases: what a user has been told."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio.to_thread
from prometheus_client import Counter, Histogram
from sqlalchemy import Connection, Row, func, select, update

from microbank.notifications.models import Notification
from microbank.platform.auth import Caller
from microbank.platform.db import Database, per_dialect, utcnow
from microbank.platform.events import BankEvent, Recipient
from microbank.platform.ownership import owned_row

log = logging.getLogger("microbank.notifier")

NOTIFICATIONS_STORED = Counter("notifications_stored_total", "Notifications stored, one per recipient of an event")
EVENT_LAG = Histogram(
    "event_lag_seconds",
    "From the event's commit to its notification being stored",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def list_notifications(
    *, db: Database, caller: Caller, before: int | None, limit: int, unread: bool | None = None
) -> list[Notification]:
    """The caller's notifications, newest first by when it happened, plus one row to tell if there
    are more. Events from different services arrive in any order, so storage order will not do;
    the cursor is the id of the last notification shown, and the page continues below it."""
    query = select(Notification).where(Notification.user_id == caller.user_id)
    if unread is not None:
        query = query.where(Notification.read_at.is_(None) if unread else Notification.read_at.is_not(None))
    with db.transaction() as session:
        if before is not None:
            anchor = session.get(Notification, before)
            if anchor is None or anchor.user_id != caller.user_id:
                return []
            query = query.where(
                (Notification.occurred_at < anchor.occurred_at)
                | ((Notification.occurred_at == anchor.occurred_at) & (Notification.id < anchor.id))
            )
        newest_first = query.order_by(Notification.occurred_at.desc(), Notification.id.desc()).limit(limit + 1)
        return list(session.scalars(newest_first))


def notifications_after(*, db: Database, caller: Caller, after: int, limit: int = 100) -> list[Notification]:
    """The caller's notifications newer than `after`, oldest first: what a live stream sends next."""
    query = (
        select(Notification)
        .where(Notification.user_id == caller.user_id, Notification.id > after)
        .order_by(Notification.id)
        .limit(limit)
    )
    with db.transaction() as session:
        return list(session.scalars(query))


def latest_notification_id(*, db: Database, caller: Caller) -> int:
    with db.transaction() as session:
        latest = session.scalar(select(func.max(Notification.id)).where(Notification.user_id == caller.user_id))
    return latest or 0


def mark_read(*, db: Database, caller: Caller, notification_id: int) -> Row:
    """Mark one of the caller's notifications read; marking it again changes nothing."""
    table = Notification.__table__
    with db.begin() as connection:
        notification = owned_row(connection, table, notification_id, caller, what="notification", admin_sees_all=False)
        if notification.read_at is not None:
            return notification
        read = update(table).where(table.c.id == notification_id).values(read_at=utcnow()).returning(*table.c)
        return connection.execute(read).one()


def store_notifications(*, db: Database, events: Sequence[BankEvent]) -> set[str]:
    """One notification per recipient of each event, however often the event arrives, in one
    transaction; the ids of the events that told someone something new."""
    stored_at = utcnow()
    rows = [
        {
            "user_id": recipient.user_id,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "message": recipient.message,
            "transaction_id": event.transaction_id,
            "occurred_at": event.occurred_at,
            "created_at": stored_at,
        }
        for event in events
        for recipient in event.recipients or [Recipient(event.user_id, event.message)]
    ]
    if not rows:
        return set()

    def store(connection: Connection) -> list[Row]:
        return connection.execute(_STORE_ONCE[connection.dialect.name], rows).all()

    new = db.run(store)
    NOTIFICATIONS_STORED.inc(len(new))
    for row in new:
        EVENT_LAG.observe((stored_at - row.occurred_at).total_seconds())
    return {row.event_id for row in new}


_STORE_ONCE = per_dialect(
    lambda insert: (
        insert(Notification.__table__)
        .on_conflict_do_nothing(index_elements=["event_id", "user_id"])
        .returning(Notification.__table__.c.event_id, Notification.__table__.c.occurred_at)
    )
)


class LocalNotifier:
    """Events handed over in process, for ROLE=all without a broker."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def deliver(self, events: list[BankEvent], request_ids: Sequence[str | None]) -> None:
        new = await anyio.to_thread.run_sync(lambda: store_notifications(db=self.db, events=events))
        for event, request_id in zip(events, request_ids, strict=True):
            log_handled(event, request_id, "stored" if event.event_id in new else "duplicate")


def log_handled(event: BankEvent, request_id: str | None, outcome: str) -> None:
    """The one line per event handled, with the id of the request the event came from."""
    if log.isEnabledFor(logging.INFO):
        fields = {
            "request_id": request_id,
            "event_id": event.event_id,
            "user_id": event.user_id,
            "transaction_id": event.transaction_id,
            "outcome": outcome,
        }
        log.info("%s %s", event.event_type, outcome, extra=fields)
