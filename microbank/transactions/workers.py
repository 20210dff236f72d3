"""The transactions role's recovery of pending transactions, and the gauges of money still pending."""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from microbank.platform.db import Database, utcnow
from microbank.platform.domain import Runtime
from microbank.platform.retry import FailureLog
from microbank.transactions.models import transactions
from microbank.transactions.service import recover_pending

log = logging.getLogger("microbank.transactions")

RECOVERY_INTERVAL_SECONDS = 2.0


async def recovery_loop(runtime: Runtime) -> None:
    db, ledger = runtime.databases["transactions"], runtime.ports.ledger
    failures = FailureLog(log, "recovery of pending transactions")
    PENDING.watch(db)
    try:
        while True:
            try:
                if finished := await anyio.to_thread.run_sync(lambda: recover_pending(db=db, ledger=ledger)):
                    log.info("recovery finished %d pending transactions", finished)
                failures.recovered()
            except Exception as exc:  # a failed round must not end recovery; the next one retries
                failures.failed(exc)
            await asyncio.sleep(RECOVERY_INTERVAL_SECONDS)
    finally:
        PENDING.forget(db)


class PendingTransactions(Collector):
    """transactions_pending and transactions_oldest_pending_age_seconds, read from the database at
    each scrape: money that is stuck shows even when nothing in this process is moving it."""

    def __init__(self) -> None:
        self._databases: list[Database] = []

    def watch(self, db: Database) -> None:
        self._databases.append(db)

    def forget(self, db: Database) -> None:
        self._databases.remove(db)

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> list[GaugeMetricFamily]:
        count_family, age_family = self._families()
        pending = select(func.count(), func.min(transactions.c.created_at)).where(transactions.c.status == "pending")
        for db in self._databases[:1]:  # one transactions database per process
            try:
                with db.begin() as connection:
                    count, oldest = connection.execute(pending).one()
            except Exception as exc:  # a scrape reports what it can; readiness reports the outage
                log.debug("pending transactions unreadable: %r", exc)
                continue
            count_family.add_metric([], count)
            age_family.add_metric([], (utcnow() - oldest).total_seconds() if oldest else 0.0)
        return [count_family, age_family]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("transactions_pending", "Transactions recorded but not yet finished"),
            GaugeMetricFamily("transactions_oldest_pending_age_seconds", "Age of the oldest pending transaction"),
        )


PENDING = PendingTransactions()
REGISTRY.register(PENDING)
