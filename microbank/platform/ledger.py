"""The contract between transactions and accounts: apply one transaction's postings, exactly once.

Accounts implements it (POST /internal/postings, or in process under ROLE=all); transactions
calls it. Both sides share these types, so neither imports the other.
"""

from __future__ import annotations

from typing import Annotated, Literal, Protocol, runtime_checkable

import msgspec

from microbank.platform.db import MAX_ID
from microbank.platform.money import MAX_AMOUNT_MINOR

TransactionType = Literal["deposit", "withdrawal", "transfer"]
Outcome = Literal["completed", "rejected"]


Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]


class PostingsRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    transaction_id: Id
    type: TransactionType
    user_id: Id
    account_id: Id
    # Postings are signed by their type, never by the caller: the amount itself is positive.
    amount_minor: Annotated[int, msgspec.Meta(gt=0, le=MAX_AMOUNT_MINOR)]
    to_account_id: Id | None = None


class PostingsOutcome(msgspec.Struct, frozen=True):
    """What applying a transaction's postings ended in; the same answer on every repeat."""

    transaction_id: int
    status: Outcome
    reason: str | None = None
    currency: str | None = None
    balance_after_minor: int | None = None
    to_balance_after_minor: int | None = None
    to_account_owner_id: int | None = None


class LedgerUnavailable(Exception):
    """Accounts could not be asked, or did not answer: the outcome is unknown, retry later."""


# runtime_checkable: Litestar checks an injected dependency against its annotation.
@runtime_checkable
class Ledger(Protocol):
    async def apply(self, request: PostingsRequest) -> PostingsOutcome: ...


class OpeningDeposit(msgspec.Struct, frozen=True, omit_defaults=True):
    """The deposit transaction that funded a newly opened account, or why there is none.

    "pending": transactions accepted it and will finish it; "failed": it was never made.
    """

    status: Literal["completed", "rejected", "pending", "failed"]
    transaction_id: int | None = None
    reason: str | None = None


# The error transactions answers when it recorded a transaction but could not reach accounts:
# the transaction is pending and recovery will finish it.
LEFT_PENDING = "accounts_unavailable"


def opening_status_of(error: str) -> Literal["pending", "failed"]:
    return "pending" if error == LEFT_PENDING else "failed"


@runtime_checkable
class Deposits(Protocol):
    """The transactions service as accounts uses it: a deposit made on the caller's behalf."""

    async def deposit(
        self, *, caller_token: str, user_id: int, account_id: int, amount_minor: int, key: str
    ) -> OpeningDeposit: ...
