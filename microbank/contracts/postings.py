"""transactions -> accounts: apply one transaction's postings, exactly once per transaction id.

Accounts serves it (POST /internal/postings, or in process when one role serves both domains);
transactions calls it. The call is safe to repeat: accounts answers a repeat with the first
outcome and changes nothing, so a caller that got no answer simply asks again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Literal, Protocol, runtime_checkable

import msgspec

from microbank.platform.auth import CREDENTIAL_CHECK_PATH, SERVICE_TOKEN_HEADER
from microbank.platform.db import MAX_ID
from microbank.platform.money import MAX_AMOUNT_MINOR
from microbank.platform.service_http import ServiceClient, ServiceUnreachable

PATH = "/internal/postings"
# How often readiness asks accounts whether it takes this role's credential.
CREDENTIAL_CHECK_INTERVAL = 10.0

TransactionType = Literal["deposit", "withdrawal", "transfer"]
Outcome = Literal["completed", "rejected"]
# Why accounts refused to move the money; a transfer checks the caller's own account first, so
# a refusal never tells a customer whether someone else's account exists before they can pay.
Rejection = Literal["account_not_found", "insufficient_funds", "recipient_not_found", "currency_mismatch"]

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
    reason: Rejection | None = None
    currency: str | None = None
    balance_after_minor: int | None = None
    to_balance_after_minor: int | None = None
    to_account_owner_id: int | None = None


class LedgerUnavailable(Exception):
    """Accounts could not be asked, or did not answer: the outcome is unknown; ask again later."""


class LedgerRefused(LedgerUnavailable):
    """Accounts refused this caller's service credential: a configuration error, not an outage."""


# runtime_checkable: Litestar checks an injected dependency against its annotation.
@runtime_checkable
class Ledger(Protocol):
    def apply(self, request: PostingsRequest) -> PostingsOutcome: ...


class InProcessLedger:
    """The ledger in this process: accounts' own apply_postings, bound to its database."""

    def __init__(self, apply: Callable[[PostingsRequest], PostingsOutcome]) -> None:
        self._apply = apply

    def apply(self, request: PostingsRequest) -> PostingsOutcome:
        return self._apply(request)


_encode = msgspec.json.Encoder().encode
_decode_outcome = msgspec.json.Decoder(PostingsOutcome).decode


class HttpLedger:
    """The ledger of an accounts role over HTTP, with the service credential."""

    def __init__(self, base_url: str, service_token: str) -> None:
        self.client = ServiceClient(base_url, headers={SERVICE_TOKEN_HEADER: service_token})
        self.base_url = base_url
        self._credential_checked_at = -CREDENTIAL_CHECK_INTERVAL
        self._credential_problem: str | None = None

    def apply(self, request: PostingsRequest) -> PostingsOutcome:
        try:
            response = self.client.post_idempotent(PATH, _encode(request))
        except ServiceUnreachable as exc:
            raise LedgerUnavailable(f"accounts at {self.base_url} did not answer: {exc}") from exc
        if response.status == 200:
            return _decode_outcome(response.body)
        if refusal := self._refusal(response.status):
            raise LedgerRefused(refusal)
        raise LedgerUnavailable(f"accounts answered {response.status}: {response.body[:200]!r}")

    def credential_problem(self) -> str | None:
        """Why accounts refuses this role's calls (a SERVICE_TOKEN that differs), or None; an
        accounts that cannot be reached now is an outage, not a problem of this role's, and
        reports none."""
        if time.monotonic() - self._credential_checked_at >= CREDENTIAL_CHECK_INTERVAL:
            try:
                self._credential_problem = self._refusal(self.client.post_idempotent(CREDENTIAL_CHECK_PATH, b"").status)
            except ServiceUnreachable:
                self._credential_problem = None
            self._credential_checked_at = time.monotonic()
        return self._credential_problem

    def _refusal(self, status: int) -> str | None:
        if status not in (401, 403):
            return None
        return (
            f"accounts at {self.base_url} refuses this role's SERVICE_TOKEN ({status}): "
            "give accounts and transactions the same SERVICE_TOKEN"
        )
