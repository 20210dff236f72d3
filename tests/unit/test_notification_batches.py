"""The notifier's batches: events that arrive together are stored in one transaction, a database
outage is waited out, and a poison event fails alone."""

from __future__ import annotations

import asyncio

import pytest

from microbank.notifications.consumer import NotificationBatches
from microbank.platform.errors import Unavailable
from microbank.platform.events import TRANSACTION_COMPLETED, BankEvent, Recipient, new_event


class FakeStore:
    """The notifications table as the batches see it: each call one transaction."""

    def __init__(self, *, outages: int = 0, poison: str | None = None) -> None:
        self.transactions: list[list[str]] = []
        self.stored: set[str] = set()
        self.outages = outages
        self.poison = poison

    def __call__(self, events: list[BankEvent]) -> set[str]:
        if self.outages:
            self.outages -= 1
            raise Unavailable("the notifications database is unavailable")
        if any(event.event_id == self.poison for event in events):
            raise ValueError("a value the database cannot store")
        ids = [event.event_id for event in events]
        self.transactions.append(ids)
        new = set(ids) - self.stored
        self.stored |= new
        return new


def event() -> BankEvent:
    return new_event(TRANSACTION_COMPLETED, recipients=[Recipient(1, "Deposit of $1.00 completed.")])


async def store_together(batches: NotificationBatches, events: list[BankEvent]) -> list:
    return await asyncio.gather(*(batches.store(e) for e in events), return_exceptions=True)


def test_events_that_arrive_together_are_stored_in_one_transaction():
    store, events = FakeStore(), [event() for _ in range(50)]

    results = asyncio.run(store_together(NotificationBatches(store), events))

    assert results == [True] * 50
    assert store.transactions == [[e.event_id for e in events]]


def test_a_redelivered_event_is_reported_as_nothing_new():
    store, repeated = FakeStore(), event()

    results = asyncio.run(store_together(NotificationBatches(store), [repeated, repeated]))

    assert sorted(results) == [False, True]


def test_a_database_outage_is_waited_out_holding_the_batch(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("microbank.notifications.consumer.STORE_RETRY_FIRST", 0.0)
    store, events = FakeStore(outages=3), [event() for _ in range(5)]

    results = asyncio.run(store_together(NotificationBatches(store), events))

    assert results == [True] * 5
    assert len(store.transactions) == 1


def test_a_poison_event_fails_alone_and_the_rest_of_its_batch_is_stored():
    events = [event() for _ in range(4)]
    store = FakeStore(poison=events[2].event_id)

    results = asyncio.run(store_together(NotificationBatches(store), events))

    assert [r is True for r in results] == [True, True, False, True]
    assert isinstance(results[2], ValueError)
    assert store.stored == {e.event_id for i, e in enumerate(events) if i != 2}
