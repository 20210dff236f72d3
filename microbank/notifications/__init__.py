"""Notifications: what each user is told about their money; owns the notifications database."""

from microbank.notifications.consumer import consume_events
from microbank.notifications.controller import NotificationController
from microbank.notifications.service import LocalNotifier
from microbank.platform.domain import Domain

domain = Domain(
    name="notifications",
    schema_revision="notifications_0002",
    route_handlers=[NotificationController],
    consumers=[consume_events],
)

__all__ = ["LocalNotifier", "domain"]
