"""The events the users domain publishes."""

from __future__ import annotations

from microbank.platform.events import USER_REGISTERED, BankEvent, Recipient, new_event
from microbank.users.models import User


def user_registered(user: User) -> BankEvent:
    return new_event(USER_REGISTERED, recipients=[Recipient(user.id, f"Welcome to microbank, {user.name}!")])
