"""The outbox relay on PostgreSQL: every event delivered, by one relay or several, whatever stops them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, text

from microbank.platform.db import Database
from microbank.platform.events import USER_REGISTERED, Recipient, new_event
from microbank.platform.outbox import DELIVERY_LEASE, POLL_INTERVAL, OutboxRelay, add_event
from microbank.users.models import outbox
from tests.fakes import BrokenSink, RecordingSink, StalledSink


@pytest.fixture
def users_db(database_urls: dict[str, str]) -> Iterator[Database]:
    db = Database("users", database_urls["users"])
    yield db
    db.dispose()


def write_events(db: Database, count: int) -> list[str]:
    events = [new_event(USER_REGISTERED, recipients=[Recipient(user_id=n, message="Welcome")]) for n in range(count)]
    with db.transaction() as session:
        for event in events:
            add_event(session, outbox, event)
    return [event.event_id for event in events]


def drain(relay: OutboxRelay) -> None:
    async def until_empty() -> None:
        while await relay.relay_once():
            pass

    asyncio.run(until_empty())


def test_a_relay_stopped_mid_delivery_leaves_its_batch_to_the_next_relay(users_db: Database) -> None:
    event_ids = write_events(users_db, 3)
    sink = StalledSink()

    async def stop_mid_delivery() -> None:
        # Returning with the relay still running is what an app's shutdown does to it.
        asyncio.get_running_loop().create_task(OutboxRelay(users_db, outbox, sink, lease=timedelta(seconds=1)).run())
        while not sink.reached.is_set():
            await asyncio.sleep(0.01)

    loop_thread = threading.Thread(target=asyncio.run, args=(stop_mid_delivery(),), daemon=True)
    loop_thread.start()
    loop_thread.join(timeout=15)
    assert not loop_thread.is_alive(), "the event loop could not shut down with the relay mid-delivery"

    engine = create_engine(users_db.url)
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL lock_timeout = '2s'"))
        locked = connection.execute(text("SELECT id FROM outbox WHERE published_at IS NULL FOR UPDATE")).all()
    engine.dispose()
    assert len(locked) == 3, "the stopped relay's batch is still unsent and nobody holds its rows"

    recording = RecordingSink()
    time.sleep(1.1)
    drain(OutboxRelay(users_db, outbox, recording))
    assert recording.delivered == event_ids


def test_a_failed_delivery_is_retried_at_once_by_the_next_attempt(users_db: Database) -> None:
    event_ids = write_events(users_db, 2)

    with pytest.raises(ConnectionError):
        asyncio.run(OutboxRelay(users_db, outbox, BrokenSink()).relay_once())

    recording = RecordingSink()
    drain(OutboxRelay(users_db, outbox, recording))
    assert recording.delivered == event_ids


def test_replicas_relaying_together_deliver_each_event_once(users_db: Database) -> None:
    event_ids = write_events(users_db, 600)
    sinks = [RecordingSink(pause=0.01) for _ in range(3)]
    relays = [OutboxRelay(users_db, outbox, sink, batch_size=25) for sink in sinks]

    async def relay_together() -> None:
        async def until_empty(relay: OutboxRelay) -> None:
            while await relay.relay_once():
                pass

        await asyncio.gather(*(until_empty(relay) for relay in relays))

    asyncio.run(relay_together())
    delivered = [event_id for sink in sinks for event_id in sink.delivered]
    assert sorted(delivered) == sorted(event_ids)
    assert all(sink.delivered for sink in sinks), "every replica took a share"


def test_a_dead_relays_batch_is_taken_over_by_a_running_replica_once_its_lease_runs_out(
    users_db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    event_ids = write_events(users_db, 50)
    stalled, replica_sink = StalledSink(), RecordingSink()

    async def die_mid_delivery_then_take_over() -> float:
        dead = asyncio.create_task(OutboxRelay(users_db, outbox, stalled).run())
        while not stalled.reached.is_set():
            await asyncio.sleep(0.01)
        dead.cancel()  # a cancelled relay keeps its lease, as a SIGKILLed one does
        died = time.monotonic()
        replica = asyncio.create_task(OutboxRelay(users_db, outbox, replica_sink).run())
        while len(replica_sink.delivered) < len(event_ids) and time.monotonic() - died < 30:
            await asyncio.sleep(0.05)
        replica.cancel()
        return time.monotonic() - died

    taken_over = asyncio.run(die_mid_delivery_then_take_over())

    assert sorted(replica_sink.delivered) == sorted(event_ids)
    lease = DELIVERY_LEASE.total_seconds()
    assert lease - 0.5 <= taken_over < lease + POLL_INTERVAL + 5, taken_over  # not before the lease; soon after
    with capsys.disabled():
        print(f"\na dead relay's batch taken over after {taken_over:.2f}s (lease {lease:.0f}s)")
