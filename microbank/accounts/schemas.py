"""What crosses the wire for accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from microbank.contracts.deposits import OpeningDeposit
from microbank.platform.money import AmountIn

AccountType = Literal["checking", "savings"]
Currency = Literal["USD", "EUR", "GBP", "CAD", "AUD", "CHF"]


class OpenAccount(msgspec.Struct, forbid_unknown_fields=True):
    account_type: AccountType
    currency: Currency = "USD"
    # Funds the account through a deposit transaction, never a balance written from nowhere.
    initial_deposit: AmountIn | None = None


class AccountOut(msgspec.Struct, omit_defaults=True):
    id: int
    user_id: int
    account_type: str
    currency: str
    balance: str
    created_at: datetime
    opening_deposit: OpeningDeposit | None = None


class PostingOut(msgspec.Struct):
    id: int
    transaction_id: int
    amount: str
    balance_after: str
    timestamp: datetime
