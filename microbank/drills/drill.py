"""`microbank drill`: faults during traffic, then proof that the books are whole.

It starts the five split roles as `microbank serve` processes on PostgreSQL databases of their own
and a RabbitMQ node of its own, runs `microbank traffic` against them, and at seeded moments
SIGKILLs and restarts each role (transactions twice), stops the broker's app for a while and brings
it back, and cuts every connection to the accounts database once. After each fault it measures how
long the pipeline takes to catch up with what was in it at that moment: pending transactions
settled, outbox events published, notifications stored. When the traffic ends it waits until the
pipeline is idle and runs the audit, and checks the bank against what its clients were told: every
acknowledged transaction is in the books as it was answered, and the balances add up to the money
the clients were told came in.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from microbank.audit import AuditReport, audit_databases
from microbank.drills.processes import RoleFailed
from microbank.drills.rabbit_node import RabbitNode
from microbank.drills.stack import SPLIT_ROLES, BankStack, on_server
from microbank.drills.traffic import Target, TrafficConfig, TrafficReport, run_traffic
from microbank.platform.events import decode_event
from microbank.platform.money import format_minor

OUTBOX_DOMAINS = ("users", "accounts", "transactions")
ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
POLL_SECONDS = 0.2
# What platform/http.py logs for every request it answers with a 500.
UNHANDLED = "unhandled error on"


@dataclass
class DrillConfig:
    seed: int = 1
    duration: float = 80.0
    clients: int = 16
    broker_outage: float = 30.0
    customers: int = 32
    postgres_url: str = ADMIN_URL
    # False: the same traffic against the same processes with nothing done to them, a baseline.
    faults: bool = True
    # How long the pipeline may take to catch up with one fault, and to go idle at the end.
    catch_up_timeout: float = 120.0


@dataclass
class CatchUp:
    """How long after a fault the pipeline took to finish what was in it at that moment."""

    backlog: int = 0  # events not yet stored when the fault ended
    first_stored_s: float | None = None  # the first of them stored: the pipeline moves again
    published_s: float | None = None
    stored_s: float | None = None
    settled_s: float | None = None  # the transactions pending at that moment finished

    @property
    def seconds(self) -> float | None:
        parts = (self.published_s, self.stored_s, self.settled_s)
        return None if None in parts else max(parts)  # type: ignore[type-var]

    def render(self) -> str:
        def s(value: float | None) -> str:
            return "not within the timeout" if value is None else f"{value:.1f} s"

        return (
            f"{self.backlog} events not yet stored: first stored in {s(self.first_stored_s)},"
            f" all published in {s(self.published_s)}, all stored in {s(self.stored_s)};"
            f" pending transactions settled in {s(self.settled_s)}"
        )


@dataclass
class Fault:
    at: float  # planned, seconds into the traffic
    kind: str  # "kill", "broker" or "cut"
    target: str
    started: float | None = None
    ended: float | None = None
    detail: str = ""
    catch_up: CatchUp = field(default_factory=CatchUp)

    def render(self) -> str:
        start = f"{self.started:6.1f} s" if self.started is not None else "   not done"
        took = f"{self.ended - self.started:.1f} s" if self.started is not None and self.ended is not None else "?"
        what = {
            "kill": f"SIGKILL {self.target} ({self.detail}), ready again after {took}",
            "broker": f"RabbitMQ app stopped, started again after {took}",
            "cut": f"{self.target} database: {self.detail}",
        }[self.kind]
        since = "the broker's return" if self.kind == "broker" else "the fault"
        return f"  at {start}  {what}\n             after {since}: {self.catch_up.render()}"


def plan_faults(seed: int, duration: float, broker_outage: float) -> list[Fault]:
    """Each role killed once (transactions twice), the broker out once, the accounts database cut
    once, at seeded moments between a tenth and three quarters of the run."""
    rng = random.Random(seed)
    faults = [Fault(0.0, "kill", role) for role in (*SPLIT_ROLES, "transactions")]
    faults.append(Fault(0.0, "cut", "accounts"))
    if broker_outage > 0:
        faults.append(Fault(0.0, "broker", "rabbitmq"))
    for fault in faults:
        fault.at = rng.uniform(duration * 0.1, duration * 0.75)
    return sorted(faults, key=lambda f: f.at)


@dataclass
class DrillReport:
    config: DrillConfig
    faults: list[Fault]
    traffic: TrafficReport
    audit: AuditReport
    idle_s: float | None
    findings: list[str]
    money: tuple[Decimal, Decimal]  # what the clients were told came in, and what the balances add up to
    log_dir: Path

    @property
    def clean(self) -> bool:
        return self.audit.clean and not self.findings and self.idle_s is not None

    def render(self) -> str:
        c = self.config
        lines = [
            f"drill, seed {c.seed}: {c.duration:.0f} s of traffic from {c.clients} clients, {c.customers} customers, "
            + (f"RabbitMQ out {c.broker_outage:.0f} s" if c.faults else "no faults"),
            "faults:",
            *(fault.render() for fault in self.faults),
            "requests by outcome:",
            self.traffic.render(),
            f"pipeline idle {self.idle_s:.1f} s after the traffic"
            if self.idle_s is not None
            else "pipeline NOT idle within the timeout",
            f"money: the clients were told of {self.money[0]} in; the balances add up to {self.money[1]};"
            f" difference {self.money[1] - self.money[0]}",
            "audit:",
            self.audit.render(),
            *(f"FINDING: {finding}" for finding in self.findings),
            "drill clean" if self.clean else "drill FAILED",
            f"role logs: {self.log_dir}",
        ]
        return "\n".join(lines)


class Books:
    """The drill's own reads of the four databases (the roles' pools are theirs)."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.engines = {name: create_engine(url, pool_size=2, pool_pre_ping=True) for name, url in urls.items()}

    def rows(self, domain: str, sql: str, **params: Any) -> list:
        statement = text(sql)
        if "ids" in params:
            statement = statement.bindparams(bindparam("ids", expanding=True))
        with self.engines[domain].connect() as connection:
            return list(connection.execute(statement, params))

    def value(self, domain: str, sql: str, **params: Any) -> Any:
        return self.rows(domain, sql, **params)[0][0]

    def snapshot(self) -> dict[str, Any]:
        """What the pipeline holds now: the last transaction and outbox row of each domain, and the
        events of those outboxes that have not been stored as notifications yet."""
        marks = {domain: self.value(domain, "SELECT COALESCE(max(id), 0) FROM outbox") for domain in OUTBOX_DOMAINS}
        stored = {row[0] for row in self.rows("notifications", "SELECT DISTINCT event_id FROM notifications")}
        waiting = [
            row.event_id
            for domain, mark in marks.items()
            for row in self.rows(domain, "SELECT event_id, payload FROM outbox WHERE id <= :mark", mark=mark)
            if row.event_id not in stored and decode_event(row.payload).recipients
        ]
        last_tx = self.value("transactions", "SELECT COALESCE(max(id), 0) FROM transactions")
        return {"outbox": marks, "waiting": waiting, "last_transaction": last_tx}

    def unsent(self, marks: dict[str, int]) -> int:
        return sum(
            self.value(d, "SELECT count(*) FROM outbox WHERE published_at IS NULL AND id <= :m", m=m)
            for d, m in marks.items()
        )

    def stored(self, event_ids: list[str]) -> int:
        if not event_ids:
            return 0
        return self.value(
            "notifications", "SELECT count(DISTINCT event_id) FROM notifications WHERE event_id IN :ids", ids=event_ids
        )

    def pending(self, up_to: int) -> int:
        return self.value(
            "transactions", "SELECT count(*) FROM transactions WHERE status = 'pending' AND id <= :up", up=up_to
        )

    def dispose(self) -> None:
        for engine in self.engines.values():
            engine.dispose()


def watch_catch_up(books: Books, catch_up: CatchUp, mark: dict[str, Any], began: float, timeout: float) -> None:
    """Fill `catch_up` by polling until what the pipeline held at `mark` is done, or `timeout`;
    each time counts from `began` (monotonic): the fault, or the broker's return."""
    catch_up.backlog = len(mark["waiting"])
    while time.monotonic() - began < timeout:
        elapsed = time.monotonic() - began
        try:
            if catch_up.published_s is None and books.unsent(mark["outbox"]) == 0:
                catch_up.published_s = elapsed
            stored = books.stored(mark["waiting"]) if catch_up.stored_s is None else len(mark["waiting"])
            if catch_up.first_stored_s is None and (stored or not mark["waiting"]):
                catch_up.first_stored_s = elapsed
            if catch_up.stored_s is None and stored == len(mark["waiting"]):
                catch_up.stored_s = elapsed
            if catch_up.settled_s is None and books.pending(mark["last_transaction"]) == 0:
                catch_up.settled_s = elapsed
        except SQLAlchemyError:  # a database cut mid-poll: the next poll reads again
            pass
        if catch_up.seconds is not None:
            return
        time.sleep(POLL_SECONDS)


class Drill:
    def __init__(self, config: DrillConfig, stack: BankStack, broker: RabbitNode, out: TextIO | None) -> None:
        self.config, self.stack, self.broker, self.out = config, stack, broker, out
        self.books = Books(stack.database_urls)
        self.watchers: list[threading.Thread] = []

    def say(self, message: str) -> None:
        if self.out is not None:
            print(message, file=self.out, flush=True)

    def run(self) -> DrillReport:
        config = self.config
        faults = plan_faults(config.seed, config.duration, config.broker_outage) if config.faults else []
        target = Target(roles={name: process.url for name, process in self.stack.roles.items()})
        traffic_config = TrafficConfig(
            customers=config.customers, concurrency=config.clients, duration=None, seed=config.seed
        )
        stop, enrolled, result = threading.Event(), threading.Event(), {}

        def traffic() -> None:
            try:
                result["report"] = run_traffic(target, traffic_config, stop=stop, enrolled=enrolled, progress=self.out)
            except BaseException as exc:
                result["error"] = exc
                enrolled.set()

        runner = threading.Thread(target=traffic, name="drill-traffic", daemon=True)
        runner.start()
        enrolled.wait()
        began = time.monotonic()
        for fault in faults:
            if "error" in result:
                break
            # One fault at a time: the next waits for its moment and for the pipeline to have caught
            # up with the last, so each catch-up time is that fault's alone.
            if self.watchers:
                self.watchers[-1].join()
            time.sleep(max(0.0, began + fault.at - time.monotonic()))
            self.inflict(fault, began)
        time.sleep(max(0.0, began + config.duration - time.monotonic()))
        stop.set()
        runner.join()
        if "error" in result:
            raise result["error"]
        for watcher in self.watchers:
            watcher.join()
        idle_s = self.wait_idle(config.catch_up_timeout)
        report: TrafficReport = result["report"]
        audit = audit_databases(self.stack.database_urls)
        findings = [f"{f.kind} {f.target} was not carried out: {f.detail}" for f in faults if f.ended is None]
        findings += check_against_clients(self.books, report)
        findings += logged_500s({name: process.log for name, process in self.stack.roles.items()})
        money = (report.net_money_in(), self.balances())
        if money[0] != money[1] and not report.unanswered:
            findings.append(f"the balances add up to {money[1]}, the clients were told {money[0]} came in")
        return DrillReport(config, faults, report, audit, idle_s, findings, money, self.stack.log_dir)

    def inflict(self, fault: Fault, began: float) -> None:
        """Do `fault`, then watch the pipeline catch up with what it held: from the kill or the cut,
        and from the broker's return (the moment its app is started again)."""
        fault.started = time.monotonic() - began
        mark, since = self.books.snapshot(), time.monotonic()
        if fault.kind == "kill":
            process = self.stack.role(fault.target)
            fault.detail = f"pid {process.pid}"
            process.kill()
            try:
                process.start()  # ready within READY_TIMEOUT, or RoleFailed
            except RoleFailed as exc:
                fault.detail += f"; did not come back: {str(exc)[:500]}"
                return
        elif fault.kind == "broker":
            self.broker.stop_app()
            time.sleep(self.config.broker_outage)
            mark = self.books.snapshot()
            self.broker.ctl("start_app")
            since = time.monotonic()
            self.broker.wait_running()
        else:
            database = self.stack.database_urls[fault.target].rsplit("/", 1)[1]
            fault.detail = f"{_terminate(self.stack.admin_url, database)} connections cut"
        fault.ended = time.monotonic() - began
        self.say(f"drill: {fault.kind} {fault.target} at {fault.started:.1f} s, done at {fault.ended:.1f} s")
        watcher = threading.Thread(
            target=watch_catch_up,
            args=(self.books, fault.catch_up, mark, since, self.config.catch_up_timeout),
            daemon=True,
        )
        watcher.start()
        self.watchers.append(watcher)

    def wait_idle(self, timeout: float) -> float | None:
        """Seconds until nothing is pending, every outbox is sent and every event's notifications
        are stored; None if that does not happen within `timeout`."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            mark = self.books.snapshot()
            idle = not mark["waiting"] and not self.books.pending(mark["last_transaction"])
            if idle and not self.books.unsent(mark["outbox"]):
                return time.monotonic() - began
            time.sleep(POLL_SECONDS)
        return None

    def balances(self) -> Decimal:
        total = self.books.value("accounts", "SELECT COALESCE(sum(balance_minor), 0) FROM accounts")
        return Decimal(format_minor(int(total)))


def check_against_clients(books: Books, traffic: TrafficReport) -> list[str]:
    """What the audit cannot know: the books against what the clients were told."""
    findings = [
        f"{o.operation} ended {o.label} after {o.attempts} attempts (no answer or an unexplained 5xx)"
        for o in traffic.unexplained
    ]
    answered = {t["id"]: t for t in traffic.acknowledged}
    sql = "SELECT id, status, amount_minor FROM transactions WHERE id IN :ids"
    booked = {row.id: row for row in books.rows("transactions", sql, ids=list(answered))} if answered else {}
    for transaction_id, told in answered.items():
        row = booked.get(transaction_id)
        if row is None:
            findings.append(f"transaction {transaction_id} was acknowledged but is not in the books")
        elif (row.status, format_minor(row.amount_minor)) != (told["status"], told["amount"]):
            findings.append(
                f"transaction {transaction_id} was answered {told['status']} {told['amount']},"
                f" booked {row.status} {format_minor(row.amount_minor)}"
            )
    return findings


def logged_500s(logs: dict[str, Path]) -> list[str]:
    """500s a client may never see (a role's call to another role): each role logs them."""
    findings = []
    for name, log in logs.items():
        lines = [line for line in log.read_text(errors="replace").splitlines() if UNHANDLED in line]
        if lines:
            findings.append(f"{name} answered {len(lines)} requests with a 500, the first: {lines[0][-120:]}")
    return findings


def _terminate(admin_url: str, database: str) -> int:
    return on_server(
        admin_url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()",
        db=database,
    )


def run_drill(config: DrillConfig, *, out: TextIO | None = sys.stderr, log_dir: Path | None = None) -> DrillReport:
    """The drill; the roles' logs stay in `log_dir` (a new temporary directory by default)."""
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="mbdrill-"))
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    with (
        RabbitNode(prometheus=False) as broker,
        BankStack(config.postgres_url, rabbit_url=broker.url, log_dir=log_dir, prefix="mbdrill", env=env) as stack,
    ):
        stack.start()
        drill = Drill(config, stack, broker, out)
        try:
            return drill.run()
        finally:
            drill.books.dispose()


def main(args: Any) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per readiness probe of every restart
    config = DrillConfig(
        **{name: getattr(args, name) for name in ("seed", "duration", "clients", "broker_outage", "customers")},
        postgres_url=args.postgres_url,
        faults=not args.no_faults,
    )
    report = run_drill(config)
    print(report.render())
    return 0 if report.clean else 1
