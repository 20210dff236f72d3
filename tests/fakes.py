"""Small fakes, one per port, that the services are unit-tested on instead of the real thing."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from microbank.contracts.deposits import OpeningDeposit, OpeningDepositRequest
from microbank.contracts.postings import LedgerRefused, LedgerUnavailable, PostingsOutcome, PostingsRequest
from microbank.platform.events import BankEvent


@dataclass
class Balance:
    owner: int
    minor: int = 0
    currency: str = "USD"


@dataclass
class FakeLedger:
    """Accounts as transactions sees it: balances kept in memory, each transaction id applied
    once (a repeat gets the first outcome), and outages on demand."""

    accounts: dict[int, Balance] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)
    outcomes: dict[int, PostingsOutcome] = field(default_factory=dict)
    # The next `unavailable` calls fail before reaching accounts; `lose_answers` apply but are lost.
    unavailable: int = 0
    lose_answers: int = 0
    refuses_credential: bool = False

    def apply(self, request: PostingsRequest) -> PostingsOutcome:
        self.calls[request.transaction_id] += 1
        if self.refuses_credential:
            raise LedgerRefused("accounts refuses this role's SERVICE_TOKEN (403)")
        if self.unavailable:
            self.unavailable -= 1
            raise LedgerUnavailable("accounts did not answer")
        if request.transaction_id not in self.outcomes:
            self.outcomes[request.transaction_id] = self._apply(request)
        if self.lose_answers:
            self.lose_answers -= 1
            raise LedgerUnavailable("accounts applied it, but the answer was lost")
        return self.outcomes[request.transaction_id]

    def _apply(self, request: PostingsRequest) -> PostingsOutcome:
        source = self.accounts.get(request.account_id)
        if source is None or source.owner != request.user_id:
            return PostingsOutcome(request.transaction_id, "rejected", "account_not_found")
        if request.type == "deposit":
            source.minor += request.amount_minor
            return PostingsOutcome(request.transaction_id, "completed", None, source.currency, source.minor)
        if source.minor < request.amount_minor:
            return PostingsOutcome(request.transaction_id, "rejected", "insufficient_funds", source.currency)
        target = self.accounts.get(request.to_account_id or 0)
        if request.type == "transfer" and target is None:
            return PostingsOutcome(request.transaction_id, "rejected", "recipient_not_found", source.currency)
        source.minor -= request.amount_minor
        if request.type == "withdrawal" or target is None:
            return PostingsOutcome(request.transaction_id, "completed", None, source.currency, source.minor)
        target.minor += request.amount_minor
        return PostingsOutcome(
            request.transaction_id, "completed", None, source.currency, source.minor, target.minor, target.owner
        )


@dataclass
class FakeDeposits:
    """Transactions as accounts sees it: records each opening deposit and answers as told."""

    answer: OpeningDeposit = field(default_factory=lambda: OpeningDeposit(status="completed", transaction_id=1))
    requests: list[OpeningDepositRequest] = field(default_factory=list)

    def open_with_deposit(self, request: OpeningDepositRequest) -> OpeningDeposit:
        self.requests.append(request)
        return self.answer


class RecordingSink:
    """An event sink that keeps what it is given, after an optional pause."""

    def __init__(self, pause: float = 0.0) -> None:
        self.pause = pause
        self.delivered: list[str] = []

    async def deliver(self, events: list[BankEvent], request_ids: Sequence[str | None]) -> None:
        await asyncio.sleep(self.pause)
        self.delivered += [event.event_id for event in events]


class StalledSink:
    """A sink that takes the batch and never confirms it, like a broker that went silent."""

    def __init__(self) -> None:
        self.reached = threading.Event()

    async def deliver(self, events: list[BankEvent], request_ids: Sequence[str | None]) -> None:
        self.reached.set()
        await asyncio.sleep(3600)


class BrokenSink:
    """A sink whose broker is unreachable."""

    async def deliver(self, events: list[BankEvent], request_ids: Sequence[str | None]) -> None:
        raise ConnectionError("broker unreachable")


@dataclass
class HeldLedger(FakeLedger):
    """A FakeLedger whose calls wait, once they have arrived, until the test releases them."""

    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def apply(self, request: PostingsRequest) -> PostingsOutcome:
        self.arrived.set()
        assert self.release.wait(timeout=60), "the test never released the ledger"
        return super().apply(request)
