"""The events domains publish: past tense, versioned, carrying the fields the seed's consumers know.

Dataclasses rather than msgspec Structs: msgspec encodes and decodes them just the same, and
FastStream can describe them in the AsyncAPI document, which it cannot do for Structs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from microbank.platform.db import utcnow

SCHEMA_VERSION = 1

TRANSACTION_COMPLETED = "transaction.completed"
TRANSACTION_REJECTED = "transaction.rejected"
ACCOUNT_OPENED = "account.opened"
USER_REGISTERED = "user.registered"


@dataclass(frozen=True)
class Recipient:
    """Someone the event tells something, and what."""

    user_id: int
    message: str


@dataclass(frozen=True, kw_only=True)
class BankEvent:
    event_id: str
    event_type: str
    occurred_at: datetime
    schema_version: int = SCHEMA_VERSION
    # The seed's fields: the initiating user and what they are told.
    user_id: int
    message: str
    timestamp: datetime
    transaction_id: int | None = None
    transaction_type: str | None = None
    # Everyone to notify, the initiator first; a transfer also tells the receiving owner.
    recipients: list[Recipient] = field(default_factory=list)


def new_event(
    event_type: str,
    *,
    recipients: list[Recipient],
    transaction_id: int | None = None,
    transaction_type: str | None = None,
) -> BankEvent:
    now = utcnow()
    initiator = recipients[0]
    return BankEvent(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        occurred_at=now,
        user_id=initiator.user_id,
        message=initiator.message,
        transaction_id=transaction_id,
        transaction_type=transaction_type,
        timestamp=now,
        recipients=recipients,
    )


def encode_event(event: BankEvent) -> bytes:
    return msgspec.json.encode(event)


def decode_event(raw: bytes | str) -> BankEvent:
    return msgspec.json.decode(raw, type=BankEvent)
