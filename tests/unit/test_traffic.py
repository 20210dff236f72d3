"""The traffic generator against a fake bank on loopback: the mix it draws, a money request sent
again with the same key after a 503 or a dropped connection, and the summary it prints."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from microbank.drills.traffic import (
    MIX,
    MONEY_OPERATIONS,
    Call,
    Customer,
    Scenario,
    Target,
    TrafficConfig,
    Transport,
    perform,
    run_traffic,
)


@dataclass
class FakeBank:
    """Answers the calls traffic makes. `failures` lists, in order, how the next money requests
    fail ("503", "drop", "500") before the bank answers them; `seen` holds (key, time) per attempt."""

    failures: list[str] = field(default_factory=list)
    # Close each connection after its answer, as a server does with one left idle too long.
    close_after_answer: bool = False
    retry_after: str = "0"
    seen: list[tuple[str, float]] = field(default_factory=list)
    transactions: dict[str, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        path = handler.path.split("?")[0]
        handler.close_connection = self.close_after_answer
        if path not in ("/api/users", "/api/auth/token") and "Authorization" not in handler.headers:
            return _send(handler, 401, {"status": 401, "error": "unauthenticated"})
        if path.startswith("/api/accounts/"):
            return _send(handler, 404, {"status": 404, "error": "account_not_found"})
        if handler.command == "POST" and path == "/api/transactions":
            return self._move(handler, body)
        if path == "/api/users":
            return _send(handler, 201, {"id": 1, **body})
        if path == "/api/auth/token":
            return _send(handler, 200, {"access_token": "t"})
        if path == "/api/accounts":
            return _send(handler, 201, {"id": 7})
        _send(handler, 200, [])

    def _move(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        key = handler.headers.get("Idempotency-Key")
        with self.lock:
            self.seen.append((key, time.monotonic()))
            failure = self.failures.pop(0) if self.failures else None
        if failure == "drop":
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        if failure == "503":
            return _send(handler, 503, {"status": 503, "error": "overloaded"}, {"Retry-After": self.retry_after})
        if failure == "500":
            return _send(handler, 500, {"status": 500, "error": "internal_error"})
        if body.get("amount", "").startswith("-") or not key or body.get("type") == "loan":
            return _send(handler, 400, {"status": 400, "error": "invalid_request"})
        with self.lock:
            made = self.transactions.setdefault(key, {"id": len(self.transactions) + 1, "status": "completed", **body})
        _send(handler, 201, made)


def _send(handler: BaseHTTPRequestHandler, status: int, body: object, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    for name, value in {
        "Content-Type": "application/json",
        "Content-Length": str(len(data)),
        **(headers or {}),
    }.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


@contextmanager
def serving(bank: FakeBank) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            bank.answer(self)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def bank() -> FakeBank:
    return FakeBank()


@pytest.fixture
def transport(bank: FakeBank) -> Iterator[Transport]:
    with serving(bank) as url:
        yield Transport(Target(url), timeout=5)


def deposit(scenario: Scenario, transport: Transport) -> Call:
    scenario.enrol(transport.send, 0)
    return scenario._money(scenario.customers[0], "deposit", {"type": "deposit", "amount": "5.00"})


def drawn(seed: int, calls: int) -> list[tuple[str, str, str]]:
    scenario = Scenario(seed, run_id="r")
    scenario.customers = [_customer(n) for n in range(3)]
    return [(c.operation, c.path, json.dumps(c.body)) for _, c in (scenario.next_call() for _ in range(calls))]


def _customer(n: int) -> Customer:
    return Customer(f"c{n}@example.com", n + 1, 10 + n, "t")


def test_the_same_seed_draws_the_same_calls_and_another_seed_others():
    assert drawn(1, 200) == drawn(1, 200)
    assert drawn(1, 200) != drawn(2, 200)


def test_the_mix_follows_its_weights_and_every_money_call_has_a_key_of_its_own():
    scenario = Scenario(3, run_id="r")
    scenario.customers = [_customer(n) for n in range(4)]
    calls = [scenario.next_call()[1] for _ in range(5000)]
    counts = Counter(call.operation for call in calls)
    total_weight = sum(weight for _, weight in MIX)
    for operation, weight in MIX:
        assert abs(counts[operation] / len(calls) - weight / total_weight) < 0.03, (operation, counts)
    keys = [call.headers["Idempotency-Key"] for call in calls if call.money]
    assert len(keys) == len(set(keys)) == sum(counts[op] for op in MONEY_OPERATIONS)
    transfers = [call.body for call in calls if call.operation == "transfer"]
    assert all(t["to_account_id"] != t["account_id"] for t in transfers)


def test_a_money_request_after_a_503_is_sent_again_with_the_same_key_once_retry_after_has_passed(bank, transport):
    call = deposit(Scenario(1), transport)
    bank.failures, bank.retry_after = ["503"], "1"

    outcome = perform(transport.send, call, give_up_after=10)

    assert (outcome.status, outcome.label, outcome.attempts) == (201, "201 completed", 2)
    (first_key, first_at), (second_key, second_at) = bank.seen
    assert first_key == second_key == call.headers["Idempotency-Key"]
    assert second_at - first_at >= 1.0
    assert len(bank.transactions) == 1


def test_a_dropped_connection_is_tried_again_with_the_same_key_and_moves_money_once(bank, transport):
    call = deposit(Scenario(1), transport)
    bank.failures = ["drop", "drop"]

    outcome = perform(transport.send, call, give_up_after=10)

    assert (outcome.status, outcome.attempts) == (201, 3)
    assert {key for key, _ in bank.seen} == {call.headers["Idempotency-Key"]}
    assert outcome.transaction == bank.transactions[call.headers["Idempotency-Key"]]


def test_a_500_is_not_retried_and_counts_as_unexplained(bank, transport):
    call = deposit(Scenario(1), transport)
    bank.failures = ["500"]

    outcome = perform(transport.send, call, give_up_after=10)

    assert (outcome.status, outcome.attempts, outcome.unexplained_failure) == (500, 1, True)
    assert bank.transactions == {}


def test_a_bank_that_keeps_refusing_is_given_up_on_as_a_503_not_as_unexplained(bank, transport):
    call = deposit(Scenario(1), transport)
    bank.failures = ["503"] * 100

    outcome = perform(transport.send, call, give_up_after=0.5)

    assert outcome.label == "503 gave up"
    assert not outcome.unexplained_failure


def test_a_run_ends_at_its_count_and_sums_up_by_operation_and_answer(bank):
    with serving(bank) as url:
        config = TrafficConfig(customers=3, concurrency=4, duration=None, count=300, seed=5)
        report = run_traffic(Target(url), config, progress=None)

    assert len(report.outcomes) == 300 + 3  # the three funding deposits, then the count
    assert not report.unexplained and not report.unexpected
    table = report.render()
    for operation, _ in MIX:
        assert operation in table
    assert "bad_request    400 invalid_request" in table
    assert "303 requests from 3 customers" in table
    signed = {"deposit": 1, "withdrawal": -1, "transfer": 0}
    assert report.net_money_in() == sum(signed[t["type"]] * Decimal(t["amount"]) for t in report.acknowledged)


def test_an_open_loop_run_keeps_its_rate(bank):
    with serving(bank) as url:
        config = TrafficConfig(customers=2, rate=100, duration=2.0, seed=1)
        report = run_traffic(Target(url), config, progress=None)

    sent = len(report.outcomes) - 2
    assert 150 <= sent <= 201, sent


def test_a_connection_left_idle_is_not_reused_so_a_read_is_not_lost_to_the_servers_close(bank):
    bank.close_after_answer = True
    with serving(bank) as url:
        transport = Transport(Target(url), timeout=5, keepalive_expiry=0.05)
        assert transport.send("GET", "/api/notifications", None, {"Authorization": "Bearer t"}).status == 200
        time.sleep(0.3)  # idle for longer than the expiry

        assert transport.send("GET", "/api/notifications", None, {"Authorization": "Bearer t"}).status == 200
