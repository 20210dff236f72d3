"""`microbank traffic`: customers using the bank as careful clients would, with a summary of how it went.

Each run signs up its own customers, logs them in and opens an account each, then sends a seeded
mix of deposits, withdrawals (some of them overdraws), transfers between customers, history and
notification reads and a few bad requests, at a fixed rate (open loop) or from a fixed number of
clients (closed loop). Every money request carries an Idempotency-Key and is sent again with the
same key after a 503 (once its Retry-After has passed), a gateway error or a dropped connection,
so a fault in the bank costs time, never a second movement of money.

The scenario (`MIX`, `Scenario`) knows nothing of how requests travel: this module sends them with
the standard library from threads, and bench/locustfile.py sends the same calls from Locust.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TextIO
from urllib.parse import urlsplit

from microbank.routes import ROUTES

# The operations a customer performs, and how often, relative to each other.
MIX: tuple[tuple[str, int], ...] = (
    ("deposit", 30),
    ("withdrawal", 18),
    ("overdraw", 4),
    ("transfer", 20),
    ("history", 12),
    ("notifications", 12),
    ("bad_request", 4),
)
MONEY_OPERATIONS = frozenset({"fund", "deposit", "withdrawal", "overdraw", "transfer"})
PASSWORD = "traffic generator passphrase"
# Larger than any balance a run can build up, and still a valid amount: always insufficient funds.
OVERDRAW_AMOUNT = "1000000000.00"
# Answers a careful client sends again, with the same key: the bank or its gateway was briefly away.
RETRIED_STATUSES = frozenset({502, 503, 504})
# A token lives 15 minutes by default; a customer logs in again well before.
TOKEN_REFRESH_SECONDS = 600.0


@dataclass(frozen=True)
class Call:
    """One HTTP request of the scenario. `money` calls carry an Idempotency-Key and are retried."""

    operation: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    money: bool = False

    @property
    def expected(self) -> Callable[[int], bool]:
        if self.operation == "bad_request":
            return lambda status: 400 <= status < 500
        return (lambda status: status == 201) if self.money or self.method == "POST" else (lambda s: s == 200)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Dropped(Exception):
    """No answer came: the connection was refused, reset or timed out."""


# How a call reaches the bank: (method, path, body, headers) -> Answer, or Dropped.
Send = Callable[[str, str, dict[str, Any] | None, dict[str, str]], Answer]


@dataclass
class Customer:
    email: str
    user_id: int
    account_id: int
    token: str
    logged_in_at: float = field(default_factory=time.monotonic)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class SetupFailed(RuntimeError):
    """The bank refused to enrol a customer: nothing to send traffic as."""


class Scenario:
    """The calls of a run, drawn from MIX with a seeded random generator: the same seed and the
    same answers give the same calls. Idempotency keys and emails carry the run's id, so two runs
    against one bank never collide."""

    def __init__(self, seed: int, run_id: str | None = None) -> None:
        self.random = random.Random(seed)
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.customers: list[Customer] = []
        self._serial = 0
        self._lock = threading.Lock()
        operations, weights = zip(*MIX, strict=True)
        self._operations, self._weights = list(operations), list(weights)

    def key(self) -> str:
        with self._lock:
            self._serial += 1
            return f"traffic-{self.run_id}-{self._serial}"

    def enrol(self, send: Send, index: int) -> tuple[Customer, Call]:
        """Sign up, log in and open an account; the deposit that funds it, still to be sent."""
        email = f"traffic-{self.run_id}-{index}@example.com"
        user = _expect(
            send("POST", "/api/users", {"name": f"Customer {index}", "email": email, "password": PASSWORD}, {}), 201
        )
        token = self.log_in(send, email)
        headers = {"Authorization": f"Bearer {token}"}
        account = _expect(send("POST", "/api/accounts", {"account_type": "checking"}, headers), 201)
        customer = Customer(email, user["id"], account["id"], token)
        with self._lock:
            self.customers.append(customer)
        return customer, self._money(customer, "fund", {"type": "deposit", "amount": "500.00"})

    @staticmethod
    def log_in(send: Send, email: str) -> str:
        return _expect(send("POST", "/api/auth/token", {"email": email, "password": PASSWORD}, {}), 200)["access_token"]

    def refresh(self, send: Send, customer: Customer) -> None:
        if time.monotonic() - customer.logged_in_at > TOKEN_REFRESH_SECONDS:
            customer.token, customer.logged_in_at = self.log_in(send, customer.email), time.monotonic()

    def next_call(self, customer: Customer | None = None) -> tuple[Customer, Call]:
        """The next call, by `customer` or by any customer of the run."""
        with self._lock:
            operation = self.random.choices(self._operations, self._weights)[0]
            count = len(self.customers)
            mine = self.random.randrange(count) if customer is None else self.customers.index(customer)
            # Someone else, whenever there is someone else.
            theirs = (mine + 1 + self.random.randrange(count - 1)) % count if count > 1 else mine
            customer, other = self.customers[mine], self.customers[theirs]
            cents = self.random.randint(100, 20000)
            variant = self.random.randrange(5)
        return customer, self._call(operation, customer, other, cents, variant)

    def _call(self, operation: str, customer: Customer, other: Customer, cents: int, variant: int) -> Call:
        if operation == "deposit":
            return self._money(customer, operation, {"type": "deposit", "amount": amount(cents)})
        if operation == "withdrawal":
            return self._money(customer, operation, {"type": "withdrawal", "amount": amount(cents // 4)})
        if operation == "overdraw":
            return self._money(customer, operation, {"type": "withdrawal", "amount": OVERDRAW_AMOUNT})
        if operation == "transfer" and other is not customer:
            body = {"type": "transfer", "amount": amount(cents // 8), "to_account_id": other.account_id}
            return self._money(customer, operation, body)
        if operation == "transfer":  # the only customer: a transfer to oneself is a deposit's worth of work
            return self._money(customer, "deposit", {"type": "deposit", "amount": amount(cents)})
        if operation == "history":
            return Call(operation, "GET", "/api/transactions?limit=20", headers=customer.auth)
        if operation == "notifications":
            return Call(operation, "GET", "/api/notifications?limit=20", headers=customer.auth)
        return self._bad_request(customer, other, variant)

    def _money(self, customer: Customer, operation: str, body: dict[str, Any]) -> Call:
        headers = {**customer.auth, "Idempotency-Key": self.key()}
        body = {"account_id": customer.account_id, **body}
        return Call(operation, "POST", "/api/transactions", body, headers, money=True)

    def _bad_request(self, customer: Customer, other: Customer, variant: int) -> Call:
        """What careless or curious clients send; each must be refused with a 4xx and write nothing."""
        keyed = {**customer.auth, "Idempotency-Key": self.key()}
        bodies = (
            ({"account_id": customer.account_id, "type": "deposit", "amount": "-5.00"}, keyed),
            ({"account_id": customer.account_id, "type": "deposit", "amount": "5.00"}, customer.auth),
            ({"account_id": customer.account_id, "type": "loan", "amount": "5.00"}, keyed),
            ({"account_id": customer.account_id, "type": "deposit", "amount": "5.00"}, {"Idempotency-Key": self.key()}),
        )
        if variant < len(bodies):
            body, headers = bodies[variant]
            return Call("bad_request", "POST", "/api/transactions", body, headers)
        if other is customer:
            return Call("bad_request", "GET", "/api/accounts/999999999", headers=customer.auth)
        return Call("bad_request", "GET", f"/api/accounts/{other.account_id}/postings", headers=customer.auth)


def _expect(answer: Answer, status: int) -> Any:
    if answer.status != status:
        raise SetupFailed(f"expected {status}, got {answer.status}: {answer.body[:300]!r}")
    return answer.json()


class Target:
    """Where each path goes: one base URL (microbank dev, nginx, the ingress), or one per role."""

    def __init__(self, url: str | None = None, roles: dict[str, str] | None = None) -> None:
        self.url, self.roles = url, roles or {}
        if not url and not self.roles:
            raise ValueError("a target needs a URL, or a URL per role")

    def base(self, path: str) -> str:
        route_path = path.split("?", 1)[0]
        for route in sorted(ROUTES, key=lambda r: len(r.prefix), reverse=True):
            if route_path == route.prefix or route_path.startswith(route.prefix.rstrip("/") + "/"):
                if route.role in self.roles:
                    return self.roles[route.role]
                break
        if self.url is None:
            raise ValueError(f"no role URL answers {path}")
        return self.url


class Transport:
    """Keep-alive HTTP/1.1 from any number of threads: one connection per thread and server."""

    def __init__(self, target: Target, *, timeout: float = 30.0) -> None:
        self.target, self.timeout = target, timeout
        self._local = threading.local()

    def send(self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> Answer:
        base = urlsplit(self.target.base(path))
        connections = self._local.__dict__.setdefault("connections", {})
        if (connection := connections.get(base.netloc)) is None:
            connection = connections[base.netloc] = http.client.HTTPConnection(base.netloc, timeout=self.timeout)
        payload = json.dumps(body).encode() if body is not None else None
        sent_headers = {**headers, **({"Content-Type": "application/json"} if payload is not None else {})}
        try:
            connection.request(method, base.path.rstrip("/") + path, body=payload, headers=sent_headers)
            response = connection.getresponse()
            answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise Dropped(f"{type(exc).__name__}: {exc}") from exc
        if response.will_close:
            connection.close()
        return answer


@dataclass(frozen=True)
class Outcome:
    operation: str
    label: str  # e.g. "201 completed", "201 rejected insufficient_funds", "400 invalid_request", "dropped"
    status: int  # 0: no answer
    seconds: float
    attempts: int
    expected: bool
    money: bool
    retry_after_honoured: bool = False
    transaction: dict[str, Any] | None = None  # the acknowledged transaction of a money call

    @property
    def unexplained_failure(self) -> bool:
        """A money request that ended without its answer, or in a 5xx the bank did not ask us to wait out."""
        return self.money and (self.status == 0 or (self.status >= 500 and self.label != "503 gave up"))


def label_of(answer: Answer) -> str:
    body = answer.json()
    if not isinstance(body, dict):
        return str(answer.status)
    if answer.status == 201 and "status" in body and "type" in body:
        return " ".join(filter(None, (str(answer.status), body.get("status"), body.get("reason"))))
    error = body.get("error")
    return f"{answer.status} {error}" if isinstance(error, str) else str(answer.status)


def perform(send: Send, call: Call, *, give_up_after: float, scheduled: float | None = None) -> Outcome:
    """Send `call`; a money call again with the same key after a retryable answer or no answer, for
    up to `give_up_after` seconds. Latency counts from `scheduled` (open loop) or the first send."""
    started = scheduled if scheduled is not None else time.monotonic()
    give_up, attempts, delay, honoured = time.monotonic() + give_up_after, 0, 0.1, False
    while True:
        attempts += 1
        try:
            answer = send(call.method, call.path, call.body, call.headers)
        except Dropped:
            if not call.money or time.monotonic() + delay > give_up:
                return Outcome(call.operation, "dropped", 0, time.monotonic() - started, attempts, False, call.money)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            continue
        if call.money and answer.status in RETRIED_STATUSES:
            wait = _retry_after(answer.headers) or delay
            honoured = honoured or "retry-after" in answer.headers
            if time.monotonic() + wait <= give_up:
                time.sleep(wait)
                delay = min(delay * 2, 2.0)
                continue
            label = "503 gave up" if answer.status == 503 and "retry-after" in answer.headers else label_of(answer)
            return Outcome(
                call.operation, label, answer.status, time.monotonic() - started, attempts, False, True, honoured
            )
        body = answer.json()
        acknowledged = body if call.money and answer.status == 201 and isinstance(body, dict) else None
        return Outcome(
            call.operation,
            label_of(answer),
            answer.status,
            time.monotonic() - started,
            attempts,
            call.expected(answer.status),
            call.money,
            honoured,
            acknowledged,
        )


def _retry_after(headers: dict[str, str]) -> float | None:
    try:
        return max(0.0, float(headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


@dataclass
class TrafficReport:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    customers: int = 0

    @property
    def acknowledged(self) -> list[dict[str, Any]]:
        """Every transaction the bank answered 201 for, as it answered."""
        return [o.transaction for o in self.outcomes if o.transaction is not None]

    @property
    def unexplained(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.unexplained_failure]

    @property
    def unanswered(self) -> list[Outcome]:
        """Money requests whose outcome the client never learnt."""
        return [o for o in self.outcomes if o.money and (o.status == 0 or o.label == "503 gave up")]

    @property
    def unexpected(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.expected]

    def net_money_in(self) -> Decimal:
        """Completed deposits less completed withdrawals, as acknowledged: what the balances must add up to."""
        signs = {"deposit": 1, "withdrawal": -1, "transfer": 0}
        return sum(
            (signs[t["type"]] * Decimal(t["amount"]) for t in self.acknowledged if t.get("status") == "completed"),
            Decimal("0.00"),
        )

    def render(self) -> str:
        groups: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
        for outcome in self.outcomes:
            groups[(outcome.operation, outcome.label)].append(outcome)
        header = f"{'operation':<14} {'answer':<34} {'count':>7} {'retried':>7} {'p50 ms':>8} {'p95 ms':>8}"
        lines = [f"{header} {'max ms':>8}"]
        for (operation, label), outcomes in sorted(groups.items()):
            times = [o.seconds * 1000 for o in outcomes]
            retried = sum(1 for o in outcomes if o.attempts > 1)
            lines.append(
                f"{operation:<14} {label:<34} {len(outcomes):>7} {retried:>7} {percentile(times, 50):>8.1f} "
                f"{percentile(times, 95):>8.1f} {max(times):>8.1f}"
            )
        total, seconds = len(self.outcomes), max(self.seconds, 1e-9)
        times = [o.seconds * 1000 for o in self.outcomes]
        lines.append(
            f"{total} requests from {self.customers} customers in {self.seconds:.1f} s ({total / seconds:.0f}/s), "
            f"p50 {percentile(times, 50):.1f} ms, p95 {percentile(times, 95):.1f} ms; "
            f"{len(self.unexpected)} not as expected, {len(self.unexplained)} money requests with an unexplained 5xx"
            " or no answer"
        )
        return "\n".join(lines)


class Progress:
    """The live line on stderr: requests per second, errors and p95 over the last second."""

    def __init__(self, report: TrafficReport, stream: TextIO, started: float) -> None:
        self.report, self.stream, self.started = report, stream, started
        self.live = stream.isatty()
        self._seen = 0
        self._last_print = started

    def tick(self) -> None:
        now = time.monotonic()
        recent = self.report.outcomes[self._seen :]
        self._seen += len(recent)
        errors = sum(1 for o in recent if not o.expected)
        p95 = percentile([o.seconds * 1000 for o in recent], 95)
        elapsed = max(now - self._last_print, 1e-9)
        line = (
            f"[{now - self.started:6.1f}s] {len(recent) / elapsed:6.0f} req/s  errors {errors:4}  p95 {p95:7.1f} ms"
            f"  total {self._seen}"
        )
        self._last_print = now
        self.stream.write(f"\r{line}" if self.live else f"{line}\n")
        self.stream.flush()

    def done(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class TrafficConfig:
    customers: int = 20
    rate: float | None = None  # requests per second, open loop; else `concurrency` closed-loop clients
    concurrency: int = 8
    duration: float | None = 30.0
    count: int | None = None
    seed: int = 1
    give_up_after: float = 60.0
    progress_every: float = 1.0


def run_traffic(
    target: Target,
    config: TrafficConfig,
    *,
    stop: threading.Event | None = None,
    progress: TextIO | None = sys.stderr,
    scenario: Scenario | None = None,
    enrolled: threading.Event | None = None,
) -> TrafficReport:
    """Enrol the customers (then set `enrolled`), then send calls until the duration, the count or
    `stop` ends the run."""
    transport = Transport(target)
    scenario = scenario or Scenario(config.seed)
    report = TrafficReport()
    stop = stop or threading.Event()
    lock = threading.Lock()

    def record(outcome: Outcome) -> None:
        with lock:
            report.outcomes.append(outcome)

    for index in range(config.customers):
        _, funding = scenario.enrol(transport.send, index)
        record(perform(transport.send, funding, give_up_after=config.give_up_after))
    report.customers = config.customers
    if enrolled is not None:
        enrolled.set()
    started = time.monotonic()
    deadline = started + config.duration if config.duration else float("inf")
    budget = _Budget(config.count)

    def one(scheduled: float | None = None) -> None:
        customer, call = scenario.next_call()
        with contextlib.suppress(Dropped, SetupFailed):  # the old token may still do; the call's answer says
            scenario.refresh(transport.send, customer)
        record(perform(transport.send, call, give_up_after=config.give_up_after, scheduled=scheduled))

    def running() -> bool:
        return not stop.is_set() and time.monotonic() < deadline

    workers = (
        _open_loop(one, config.rate, running, budget)
        if config.rate
        else _closed_loop(one, config.concurrency, running, budget)
    )
    ticker = Progress(report, progress, started) if progress else None
    while alive := [worker for worker in workers if worker.is_alive()]:
        try:
            alive[0].join(timeout=config.progress_every)
        except KeyboardInterrupt:  # Ctrl-C ends the run; the calls on their way finish and are counted
            stop.set()
        if ticker:
            ticker.tick()
    if ticker:
        ticker.done()
    report.seconds = time.monotonic() - started
    return report


class _Budget:
    """At most `count` calls across every thread (no bound without a count)."""

    def __init__(self, count: int | None) -> None:
        self._left = count
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self._left is None:
            return True
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


def _closed_loop(
    one: Callable[[], None], clients: int, running: Callable[[], bool], budget: _Budget
) -> list[threading.Thread]:
    def client() -> None:
        while running() and budget.take():
            one()

    threads = [threading.Thread(target=client, name=f"traffic-{n}", daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def _open_loop(
    one: Callable[[float], None], rate: float, running: Callable[[], bool], budget: _Budget
) -> list[threading.Thread]:
    """Calls started on a fixed schedule whatever the answers; a slow bank shows as latency
    counted from each call's scheduled time, not as a slower sender."""

    def scheduler() -> None:
        # Enough threads that a bank answering within a few seconds never delays the schedule.
        with ThreadPoolExecutor(max_workers=max(16, int(rate * 4)), thread_name_prefix="traffic") as pool:
            for n in _ticks():
                scheduled = start + n / rate
                time.sleep(max(0.0, scheduled - time.monotonic()))
                if not running() or not budget.take():
                    break
                pool.submit(one, scheduled)

    start = time.monotonic()
    thread = threading.Thread(target=scheduler, name="traffic-schedule", daemon=True)
    thread.start()
    return [thread]


def _ticks() -> Iterator[int]:
    n = 0
    while True:
        yield n
        n += 1


def main(args: Any) -> int:
    """`microbank traffic`: run, print the table; 1 if a money request ended in an unexplained 5xx."""
    roles = dict(pair.split("=", 1) for pair in args.role_url)
    target = Target(None if roles and args.url is None else (args.url or "http://127.0.0.1:8000"), roles)
    flags = ("customers", "rate", "concurrency", "duration", "count", "seed", "give_up_after")
    config = TrafficConfig(**{name: getattr(args, name) for name in flags})
    try:
        report = run_traffic(target, config)
    except (SetupFailed, Dropped) as exc:
        print(f"microbank traffic: cannot enrol customers at {target.url or roles}: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    for outcome in report.unexplained[:10]:
        print(f"UNEXPLAINED: {outcome.operation} ended {outcome.label} after {outcome.attempts} attempts")
    return 1 if report.unexplained else 0
