"""What crosses the wire for transactions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from microbank.contracts.postings import Id, TransactionType
from microbank.platform.money import AmountIn
from microbank.platform.text import NO_CONTROL_CHARACTERS


class TransactionRequest(msgspec.Struct, forbid_unknown_fields=True):
    account_id: Id
    type: TransactionType
    # A decimal string ("200.00") or a JSON number with at most two decimals (200.00).
    amount: AmountIn
    to_account_id: Id | None = None
    description: Annotated[str, msgspec.Meta(max_length=200), NO_CONTROL_CHARACTERS] | None = None


class TransactionOut(msgspec.Struct):
    id: int
    type: str
    account_id: int
    to_account_id: int | None
    amount: str
    currency: str | None
    status: str
    reason: str | None
    description: str | None
    balance_after: str | None
    timestamp: datetime
    completed_at: datetime | None
