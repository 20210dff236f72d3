"""accounts -> transactions: the deposit that funds a newly opened account.

The money still moves as every deposit does, through transactions (a pending row, the postings,
the outcome and its event), so the opening balance has a transaction in the history and passes
the audit like any other. Accounts makes it on the customer's behalf, with the customer's own
token over HTTP, under an idempotency key of the account's, so a repeat never deposits twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import msgspec

from microbank.platform.money import format_minor
from microbank.platform.service_http import ServiceClient, ServiceUnreachable

PATH = "/api/transactions"

# The error code transactions answers with when it recorded a transaction but could not reach
# accounts: the transaction is pending, and recovery will finish it.
LEFT_PENDING = "accounts_unavailable"


class OpeningDepositRequest(msgspec.Struct, frozen=True):
    user_id: int
    account_id: int
    amount_minor: int
    # The customer's bearer token: the deposit is theirs, made with their authority.
    caller_token: str = msgspec.field(default="")

    @property
    def idempotency_key(self) -> str:
        return f"account-{self.account_id}-opening"


class OpeningDeposit(msgspec.Struct, frozen=True, omit_defaults=True):
    """The deposit transaction that funded a newly opened account, or why there is none.

    "pending": transactions accepted it and will finish it; "failed": it was never made.
    """

    status: Literal["completed", "rejected", "pending", "failed"]
    transaction_id: int | None = None
    reason: str | None = None


def opening_status_of(error: str) -> Literal["pending", "failed"]:
    return "pending" if error == LEFT_PENDING else "failed"


# runtime_checkable: Litestar checks an injected dependency against its annotation.
@runtime_checkable
class Deposits(Protocol):
    def open_with_deposit(self, request: OpeningDepositRequest) -> OpeningDeposit: ...


class InProcessDeposits:
    """Transactions in this process: its own opening-deposit use case, bound to its database."""

    def __init__(self, deposit: Callable[[OpeningDepositRequest], OpeningDeposit]) -> None:
        self._deposit = deposit

    def open_with_deposit(self, request: OpeningDepositRequest) -> OpeningDeposit:
        return self._deposit(request)


_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class HttpDeposits:
    """The transactions role's public API, called with the customer's token."""

    def __init__(self, base_url: str) -> None:
        # Longer than transactions' own wait for accounts, so its answer (even a 503) arrives.
        self.client = ServiceClient(base_url, read_timeout=10.0)

    def open_with_deposit(self, request: OpeningDepositRequest) -> OpeningDeposit:
        body = {
            "account_id": request.account_id,
            "type": "deposit",
            "amount": format_minor(request.amount_minor),
            "description": "opening deposit",
        }
        headers = {"Authorization": f"Bearer {request.caller_token}", "Idempotency-Key": request.idempotency_key}
        try:
            # Safe to repeat: the Idempotency-Key makes it one deposit, whatever the calls.
            response = self.client.post_idempotent(PATH, _encode(body), headers=headers)
        except ServiceUnreachable as exc:
            # Sent but unanswered, transactions may have recorded it, and then it finishes it.
            return OpeningDeposit(status="pending" if exc.sent else "failed", reason="transactions_unavailable")
        answer = _decode(response.body) if response.body else {}
        if response.status != 201:
            error = answer.get("error", "") if isinstance(answer, dict) else ""
            return OpeningDeposit(status=opening_status_of(error), reason=error or f"http_{response.status}")
        return OpeningDeposit(status=answer["status"], transaction_id=answer["id"], reason=answer["reason"])
