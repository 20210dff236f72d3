"""Notifications over HTTP: what a customer was told, read state, and the live stream.

Events reach notifications asynchronously (ROLE=all delivers them in process through the
outbox relay), so tests poll for what they expect.

The live stream (server-sent events) cannot be read through Litestar's TestClient: its
transport runs the app to completion and buffers the whole body before returning even the
headers, so an endless stream never yields. Those tests run against `microbank serve` as a
real process and read it with httpx.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from microbank.notifications import controller
from microbank.notifications.service import store_notifications
from microbank.platform.auth import Caller
from microbank.platform.db import Database, utcnow
from microbank.platform.events import ACCOUNT_OPENED, USER_REGISTERED, Recipient, new_event
from tests.factories import BankClient

FIELDS = {"id", "user_id", "message", "event_type", "transaction_id", "timestamp", "read"}


def customer_with_history(bank: BankClient, *, name: str = "Ann Lee") -> tuple[dict, dict[str, str], list[dict]]:
    """A customer who signed up, opened a checking account and deposited $200.00: three
    notifications, newest first (deposit, opened, welcome).

    Each step waits for its notification: the users, accounts and transactions outboxes are
    relayed independently, so without waiting they may be stored in any order."""
    user, headers = bank.customer(name=name)
    bank.wait_for_notifications(headers, 1)
    account = bank.open_account(headers)
    bank.wait_for_notifications(headers, 2)
    bank.deposit(headers, account["id"], "200.00")
    return user, headers, bank.wait_for_notifications(headers, 3)


def list_page(bank: BankClient, headers: dict[str, str], **params: Any) -> httpx.Response:
    response = bank.http.get("/api/notifications", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response


# --- listing -------------------------------------------------------------------------------


def test_signing_up_tells_the_customer_welcome(bank):
    user, headers = bank.customer(name="Ann Lee")

    [welcome] = bank.wait_for_notifications(headers, 1)

    assert set(welcome) == FIELDS
    assert welcome["user_id"] == user["id"]
    assert welcome["message"] == "Welcome to microbank, Ann Lee!"
    assert welcome["event_type"] == "user.registered"
    assert welcome["transaction_id"] is None
    assert welcome["read"] is False
    assert datetime.fromisoformat(welcome["timestamp"]).tzinfo is not None


def test_opening_an_account_and_depositing_tell_the_customer_newest_first(bank):
    user, headers = bank.customer()
    bank.wait_for_notifications(headers, 1)
    account = bank.open_account(headers)
    bank.wait_for_notifications(headers, 2)
    deposit = bank.deposit(headers, account["id"], "200.00")

    found = bank.wait_for_notifications(headers, 3)

    assert [(n["event_type"], n["message"]) for n in found] == [
        ("transaction.completed", "Deposit of $200.00 completed. New balance: $200.00"),
        ("account.opened", f"Your checking account {account['id']} (USD) is open."),
        ("user.registered", "Welcome to microbank, Ann Lee!"),
    ]
    assert [n["transaction_id"] for n in found] == [deposit["id"], None, None]
    assert {n["user_id"] for n in found} == {user["id"]}
    assert {n["read"] for n in found} == {False}
    assert [n["id"] for n in found] == sorted((n["id"] for n in found), reverse=True)
    times = [datetime.fromisoformat(n["timestamp"]) for n in found]
    assert times == sorted(times, reverse=True)


def test_a_customer_sees_only_their_own_notifications(bank):
    ann, ann_headers, ann_found = customer_with_history(bank, name="Ann Lee")
    bob, bob_headers, bob_found = customer_with_history(bank, name="Bob Roe")

    ann_found = bank.notifications(ann_headers)
    bob_found = bank.notifications(bob_headers)

    assert len(ann_found) == len(bob_found) == 3
    assert {n["user_id"] for n in ann_found} == {ann["id"]}
    assert {n["user_id"] for n in bob_found} == {bob["id"]}
    assert not {n["id"] for n in ann_found} & {n["id"] for n in bob_found}
    assert "Welcome to microbank, Bob Roe!" not in [n["message"] for n in ann_found]


def test_a_transfer_tells_both_owners_each_their_own_message(bank):
    _, ann_headers = bank.customer(name="Ann Lee")
    _, bob_headers = bank.customer(name="Bob Roe")
    ann_account = bank.open_account(ann_headers)
    bob_account = bank.open_account(bob_headers)
    bank.deposit(ann_headers, ann_account["id"], "100.00")
    bank.wait_for_notifications(ann_headers, 3)

    transfer = bank.transfer(ann_headers, ann_account["id"], bob_account["id"], "25.00")

    [ann_news, *_] = bank.wait_for_notifications(ann_headers, 4)
    [bob_news, *_] = bank.wait_for_notifications(bob_headers, 3)
    assert ann_news["message"] == (f"Transfer of $25.00 to account {bob_account['id']} completed. New balance: $75.00")
    assert bob_news["message"] == (
        f"Received $25.00 from account {ann_account['id']} into account {bob_account['id']}. New balance: $25.00"
    )
    assert ann_news["transaction_id"] == bob_news["transaction_id"] == transfer["id"]
    assert ann_news["event_type"] == bob_news["event_type"] == "transaction.completed"
    assert ann_news["id"] != bob_news["id"]


def test_the_list_is_newest_first_by_when_it_happened_even_if_delivered_late(bank, database_urls, token_for):
    user_id = 4242
    now = utcnow()
    registered = new_event(USER_REGISTERED, recipients=[Recipient(user_id, "Welcome to microbank, Ann Lee!")])
    opened = new_event(ACCOUNT_OPENED, recipients=[Recipient(user_id, "Your checking account 1 (USD) is open.")])
    # Ann signed up, then opened an account a second later; the account event arrived first.
    registered = replace(registered, occurred_at=now - timedelta(seconds=1), timestamp=now - timedelta(seconds=1))
    opened = replace(opened, occurred_at=now, timestamp=now)
    db = Database("notifications", database_urls["notifications"], pool_size=1)
    try:
        store_notifications(db=db, events=[opened])
        store_notifications(db=db, events=[registered])
    finally:
        db.dispose()

    found = bank.notifications(token_for(user_id))

    assert [n["event_type"] for n in found] == ["account.opened", "user.registered"]


def test_listing_needs_a_token(bank):
    response = bank.http.get("/api/notifications")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


# --- pagination and filters ----------------------------------------------------------------


def test_pages_follow_the_next_cursor_to_the_end(bank):
    _, headers = bank.customer()
    account = bank.open_account(headers)
    for amount in ("1.00", "2.00", "3.00"):
        bank.deposit(headers, account["id"], amount)
    everything = bank.wait_for_notifications(headers, 5)
    assert len(everything) == 5

    first = list_page(bank, headers, limit=2)
    second = list_page(bank, headers, limit=2, cursor=first.headers["X-Next-Cursor"])
    last = list_page(bank, headers, limit=2, cursor=second.headers["X-Next-Cursor"])

    assert [n["id"] for n in first.json()] == [n["id"] for n in everything[:2]]
    assert first.headers["X-Next-Cursor"] == str(everything[1]["id"])
    assert 'rel="next"' in first.headers["Link"]
    assert [n["id"] for n in second.json()] == [n["id"] for n in everything[2:4]]
    assert [n["id"] for n in last.json()] == [everything[4]["id"]]
    assert "X-Next-Cursor" not in last.headers
    assert "Link" not in last.headers


def test_a_full_last_page_has_no_next_cursor(bank):
    _, headers, found = customer_with_history(bank)

    response = list_page(bank, headers, limit=3)

    assert [n["id"] for n in response.json()] == [n["id"] for n in found]
    assert "X-Next-Cursor" not in response.headers


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"cursor": 0}, {"unread": "maybe"}])
def test_bad_paging_parameters_are_refused(bank, params):
    _, headers = bank.customer()
    response = bank.http.get("/api/notifications", headers=headers, params=params)
    assert response.status_code == 400, response.text


def test_unread_filters(bank):
    _, headers, found = customer_with_history(bank)
    read_id = found[1]["id"]
    assert bank.http.post(f"/api/notifications/{read_id}/read", headers=headers).status_code == 200

    unread = list_page(bank, headers, unread="true").json()
    read = list_page(bank, headers, unread="false").json()
    everything = list_page(bank, headers).json()

    assert [n["id"] for n in unread] == [found[0]["id"], found[2]["id"]]
    assert {n["read"] for n in unread} == {False}
    assert [n["id"] for n in read] == [read_id]
    assert read[0]["read"] is True
    assert [n["id"] for n in everything] == [n["id"] for n in found]


def test_the_unread_filter_pages_too(bank):
    _, headers, found = customer_with_history(bank)

    first = list_page(bank, headers, unread="true", limit=2)
    rest = list_page(bank, headers, unread="true", limit=2, cursor=first.headers["X-Next-Cursor"])

    assert "unread=true" in first.headers["Link"]
    assert [n["id"] for n in first.json() + rest.json()] == [n["id"] for n in found]


# --- marking read --------------------------------------------------------------------------


def test_marking_a_notification_read(bank):
    _, headers, found = customer_with_history(bank)
    target = found[0]

    response = bank.http.post(f"/api/notifications/{target['id']}/read", headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == {**target, "read": True}
    assert [n["id"] for n in list_page(bank, headers, unread="true").json()] == [n["id"] for n in found[1:]]


def test_marking_read_again_is_harmless(bank):
    _, headers, found = customer_with_history(bank)
    target = found[2]
    path = f"/api/notifications/{target['id']}/read"

    first = bank.http.post(path, headers=headers)
    again = bank.http.post(path, headers=headers)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() == {**target, "read": True}
    assert [n["read"] for n in bank.notifications(headers)] == [False, False, True]


def test_someone_elses_notification_cannot_be_marked_read(bank):
    _, ann_headers, ann_found = customer_with_history(bank, name="Ann Lee")
    _, bob_headers = bank.customer(name="Bob Roe")
    target = ann_found[0]

    response = bank.http.post(f"/api/notifications/{target['id']}/read", headers=bob_headers)

    assert response.status_code == 404, response.text
    assert response.json()["error"] == "notification_not_found"
    assert [n["read"] for n in bank.notifications(ann_headers)] == [False, False, False]


def test_a_missing_notification_is_not_found(bank):
    _, headers, found = customer_with_history(bank)
    response = bank.http.post(f"/api/notifications/{found[0]['id'] + 1000}/read", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"] == "notification_not_found"


@pytest.mark.parametrize(
    ("notification_id", "status", "error"),
    [
        ("0", 400, "invalid_request"),
        ("-1", 400, "invalid_request"),
        ("9223372036854775808", 400, "invalid_request"),
        ("9223372036854775807", 404, "notification_not_found"),
        ("abc", 404, "not_found"),
    ],
)
def test_an_invalid_notification_id_is_refused(bank, notification_id, status, error):
    _, headers = bank.customer()
    response = bank.http.post(f"/api/notifications/{notification_id}/read", headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def test_marking_read_needs_a_token(bank):
    _, headers, found = customer_with_history(bank)

    response = bank.http.post(f"/api/notifications/{found[0]['id']}/read")

    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert bank.notifications(headers)[0]["read"] is False


# --- the live stream -----------------------------------------------------------------------


def test_the_stream_needs_a_token(bank):
    response = bank.http.get("/api/notifications/stream")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


@pytest.mark.parametrize("last_event_id", ["-1", "abc", "9223372036854775808"])
def test_the_stream_refuses_a_bad_last_event_id(bank, last_event_id):
    _, headers = bank.customer()
    response = bank.http.get("/api/notifications/stream", headers={**headers, "Last-Event-ID": last_event_id})
    assert response.status_code == 400, response.text


@pytest.fixture
def server(role_process) -> Iterator[BankClient]:
    """`microbank serve` with ROLE=all as a real process, and a customer's-eye client of it."""
    process = role_process("all").start(RABBIT_URL="")
    with httpx.Client(base_url=process.url, timeout=10) as http:
        yield BankClient(http)  # type: ignore[arg-type]


# Each read of the stream waits at most this long; the stream polls every second.
READ_TIMEOUT = 5.0


def sse_events(response: httpx.Response, *, deadline: float) -> Iterator[dict[str, str]]:
    """The stream's events as {field: value}, comments as {"comment": text}; fails the test
    at the deadline (each read is bounded by the client's read timeout)."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            pytest.fail("no such event on the stream before the deadline")
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            fields["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def notifications_on(response: httpx.Response, *, timeout: float = 10.0) -> Iterator[dict[str, str]]:
    """The stream's notification events, read within `timeout` seconds in all."""
    return (e for e in sse_events(response, deadline=time.monotonic() + timeout) if e.get("event") == "notification")


def open_stream(server: BankClient, headers: dict[str, str]):
    return server.http.stream(
        "GET",
        "/api/notifications/stream",
        headers={**headers, "Accept": "text/event-stream"},
        timeout=httpx.Timeout(10, read=READ_TIMEOUT),
    )


def test_the_stream_sends_a_new_notification_as_it_is_stored(server):
    _, headers = server.customer()
    account = server.open_account(headers)
    server.wait_for_notifications(headers, 2)

    with open_stream(server, headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        # The stream starts after the newest notification when it first looks: let it look.
        time.sleep(0.5)
        server.deposit(headers, account["id"], "200.00")

        event = next(notifications_on(response))

    stored = server.wait_for_notifications(headers, 3)[0]
    assert event["id"] == str(stored["id"])
    data = json.loads(event["data"])
    assert data == stored
    assert data["message"] == "Deposit of $200.00 completed. New balance: $200.00"
    assert data["event_type"] == "transaction.completed"
    assert data["read"] is False


def test_the_stream_replays_what_came_after_last_event_id(server):
    # Bob's notifications come first, so his ids sit below Ann's: a leak would show first.
    customer_with_history(server, name="Bob Roe")
    _, headers, found = customer_with_history(server, name="Ann Lee")
    deposit, opened, welcome = found

    with open_stream(server, {**headers, "Last-Event-ID": str(welcome["id"])}) as response:
        assert response.status_code == 200
        events = notifications_on(response)
        replayed = [next(events), next(events)]

    assert [e["id"] for e in replayed] == [str(opened["id"]), str(deposit["id"])]
    assert [json.loads(e["data"]) for e in replayed] == [opened, deposit]


def test_the_stream_from_zero_replays_only_the_callers_notifications(server):
    customer_with_history(server, name="Bob Roe")
    _, headers, found = customer_with_history(server, name="Ann Lee")

    with open_stream(server, {**headers, "Last-Event-ID": "0"}) as response:
        events = notifications_on(response)
        replayed = [next(events) for _ in found]

    assert [int(e["id"]) for e in replayed] == [n["id"] for n in reversed(found)]
    assert json.loads(replayed[0]["data"])["message"] == "Welcome to microbank, Ann Lee!"


def test_the_keep_alive_is_only_a_comment(database_urls, monkeypatch):
    """Drives the stream's generator directly (the TestClient cannot read an endless body), with
    the poll and keep-alive intervals shortened."""
    monkeypatch.setattr(controller, "STREAM_POLL_SECONDS", 0.01)
    monkeypatch.setattr(controller, "KEEPALIVE_SECONDS", 0.02)
    db = Database("notifications", database_urls["notifications"], pool_size=1)

    async def first_message() -> bytes:
        stream = controller.live_notifications(db, Caller(user_id=1, role="customer"), after=None)
        try:
            return (await asyncio.wait_for(anext(stream), timeout=10)).encode()
        finally:
            await stream.aclose()

    try:
        keep_alive = asyncio.run(first_message())
    finally:
        db.dispose()

    assert keep_alive.startswith(b": keep-alive")
    assert b"data:" not in keep_alive
