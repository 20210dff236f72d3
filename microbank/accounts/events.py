"""The events the accounts domain publishes."""

from __future__ import annotations

from sqlalchemy import Row

from microbank.platform.events import ACCOUNT_OPENED, BankEvent, Recipient, new_event


def account_opened(account: Row) -> BankEvent:
    message = f"Your {account.account_type} account {account.id} ({account.currency}) is open."
    return new_event(ACCOUNT_OPENED, recipients=[Recipient(account.user_id, message)])
