"""What crosses the wire for notifications."""

from __future__ import annotations

from datetime import datetime

import msgspec


class NotificationOut(msgspec.Struct):
    id: int
    user_id: int
    message: str
    event_type: str
    transaction_id: int | None
    timestamp: datetime
    read: bool
