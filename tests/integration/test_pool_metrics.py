"""The connection pool gauges, read as a scrape reads them, while callers queue for a connection."""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY

from microbank.platform.db import Database
from microbank.platform.metrics import CONNECTION_POOLS
from tests.factories import wait_until


def pool_gauge(name: str, domain: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"domain": domain})


def test_a_caller_waiting_for_the_only_connection_shows_on_the_pool_gauges(fresh_database: str) -> None:
    db = Database("pooltest", fresh_database, pool_size=1)
    CONNECTION_POOLS.watch(db)
    got_one = threading.Event()

    def wait_for_a_connection() -> None:
        with db.begin():
            got_one.set()

    try:
        with db.begin():
            assert (pool_gauge("db_pool_size", "pooltest"), pool_gauge("db_pool_checked_out", "pooltest")) == (1, 1)
            assert pool_gauge("db_pool_waiting", "pooltest") == 0
            waiter = threading.Thread(target=wait_for_a_connection)
            waiter.start()
            wait_until(lambda: pool_gauge("db_pool_waiting", "pooltest") == 1, timeout=3, what="the caller to queue")
            assert not got_one.is_set()
        waiter.join(timeout=10)
        assert got_one.is_set()
        assert (pool_gauge("db_pool_checked_out", "pooltest"), pool_gauge("db_pool_waiting", "pooltest")) == (0, 0)
    finally:
        CONNECTION_POOLS.forget(db)
        db.dispose()
    assert pool_gauge("db_pool_size", "pooltest") is None
