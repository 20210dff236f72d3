"""Back-pressure: a full role refuses at once, with a reason and when to come back, instead of
letting requests queue until they time out."""

from __future__ import annotations

import asyncio

import pytest

from microbank.platform.admission import Admission, Overloaded


async def hold(admission: Admission, entered: asyncio.Event, leave: asyncio.Event) -> None:
    async with admission.slot("/api/transactions"):
        entered.set()
        await leave.wait()


def test_requests_beyond_the_limit_wait_their_turn_in_order():
    async def scenario() -> list[int]:
        admission, order, leave = Admission(limit=1, queue=10, max_wait=60), [], asyncio.Event()
        entered = asyncio.Event()
        holder = asyncio.create_task(hold(admission, entered, leave))
        await entered.wait()

        async def wait_turn(n: int) -> None:
            async with admission.slot("/api/transactions"):
                order.append(n)

        waiters = [asyncio.create_task(wait_turn(n)) for n in range(3)]
        await asyncio.sleep(0)
        leave.set()
        await asyncio.gather(holder, *waiters)
        return order

    assert asyncio.run(scenario()) == [0, 1, 2]


def test_a_request_finding_the_queue_full_is_refused_at_once_with_retry_after():
    async def scenario() -> Overloaded:
        admission, entered, leave = Admission(limit=1, queue=1, max_wait=60), asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold(admission, entered, leave))
        await entered.wait()
        waiter = asyncio.create_task(hold(admission, asyncio.Event(), leave))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as refused:
            async with admission.slot("/api/transactions"):
                pass
        leave.set()
        await asyncio.gather(holder, waiter)
        return refused.value

    refused = asyncio.run(scenario())
    assert (refused.status, refused.code, refused.headers) == (503, "overloaded", {"Retry-After": "1"})


def test_a_request_that_waits_longer_than_allowed_is_refused_rather_than_left_to_time_out():
    async def scenario() -> None:
        admission, entered, leave = Admission(limit=1, queue=5, max_wait=0.01), asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold(admission, entered, leave))
        await entered.wait()
        with pytest.raises(Overloaded):
            async with admission.slot("/api/transactions"):
                pass
        leave.set()
        await holder

    asyncio.run(scenario())
