"""HTTP for notifications: /api/notifications."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated

import anyio.to_thread
import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from microbank.notifications import service
from microbank.notifications.models import Notification
from microbank.notifications.schemas import NotificationOut
from microbank.platform.admission import EXEMPT
from microbank.platform.auth import AuthedRequest, Caller
from microbank.platform.db import MAX_ID, Database
from microbank.platform.domain import database_dependency
from microbank.platform.pagination import DEFAULT_LIMIT, PAGE_HEADERS, Cursor, EntityId, Limit, page

LastEventId = Annotated[int | None, HeaderParameter(name="Last-Event-ID", ge=0, le=MAX_ID)]
# The stream looks for new notifications this often; each look is one indexed query.
STREAM_POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0


def notification_out(notification: Notification) -> NotificationOut:
    return NotificationOut(
        id=notification.id,
        user_id=notification.user_id,
        message=notification.message,
        event_type=notification.event_type,
        transaction_id=notification.transaction_id,
        timestamp=notification.occurred_at,
        read=notification.read_at is not None,
    )


class NotificationController(Controller):
    path = "/api/notifications"
    tags = ["notifications"]
    dependencies = {"db": database_dependency("notifications")}

    @get("/", sync_to_thread=True, response_headers=PAGE_HEADERS, summary="The caller's notifications, newest first")
    def list_notifications(
        self,
        request: AuthedRequest,
        db: NamedDependency[Database],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
        unread: FromQuery[bool | None] = None,
    ) -> Response[list[NotificationOut]]:
        rows = service.list_notifications(db=db, caller=request.user, before=cursor, limit=limit, unread=unread)
        return page(request, [notification_out(n) for n in rows], limit=limit)

    @post("/{notification_id:int}/read", sync_to_thread=True, status_code=200, summary="Mark a notification read")
    def mark_read(
        self, request: AuthedRequest, notification_id: FromPath[EntityId], db: NamedDependency[Database]
    ) -> NotificationOut:
        return notification_out(service.mark_read(db=db, caller=request.user, notification_id=notification_id))

    @get("/stream", opt={EXEMPT: True}, summary="New notifications as server-sent events, as they are stored")
    async def stream(
        self,
        request: AuthedRequest,
        db: NamedDependency[Database],
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        """Each event's id is the notification id: a client that reconnects with Last-Event-ID
        gets what it missed; a new client gets what arrives from now on."""
        return ServerSentEvent(live_notifications(db, request.user, after=last_event_id), retry_duration=3000)


async def live_notifications(
    db: Database, caller: Caller, *, after: int | None
) -> AsyncIterator[ServerSentEventMessage]:
    if after is None:
        after = await anyio.to_thread.run_sync(partial(service.latest_notification_id, db=db, caller=caller))
    idle = 0.0
    while True:
        fresh = await anyio.to_thread.run_sync(partial(service.notifications_after, db=db, caller=caller, after=after))
        for notification in fresh:
            after = notification.id
            yield ServerSentEventMessage(data=_json(notification), event="notification", id=notification.id)
        if fresh:
            idle = 0.0
            continue
        idle += STREAM_POLL_SECONDS
        if idle >= KEEPALIVE_SECONDS:
            # A comment line keeps proxies from closing an idle stream.
            yield ServerSentEventMessage(data=None, comment="keep-alive")
            idle = 0.0
        await asyncio.sleep(STREAM_POLL_SECONDS)


def _json(notification: Notification) -> str:
    return msgspec.json.encode(notification_out(notification)).decode()
