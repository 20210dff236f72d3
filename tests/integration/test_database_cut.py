"""A database that cuts a role's connection mid-transaction (a restart, a failover,
`pg_terminate_backend`, as the drill does): the role says the database is unavailable, or
repeats the work on a fresh connection where it may, and never answers with a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from microbank.platform.db import Database
from microbank.platform.errors import Unavailable


@pytest.fixture
def db(fresh_database: str) -> Iterator[Database]:
    database = Database("accounts", fresh_database)
    yield database
    database.dispose()


def cut_own_connection(connection) -> None:
    connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))


def test_work_whose_connection_is_cut_once_is_repeated_on_a_fresh_one(db: Database):
    attempts = []

    def work(connection) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            cut_own_connection(connection)
        return connection.execute(text("SELECT 42")).scalar_one()

    assert db.run(work) == 42
    assert len(attempts) == 2


def test_work_whose_connection_is_cut_every_time_is_unavailable_not_an_internal_error(db: Database):
    with pytest.raises(Unavailable):
        db.run(cut_own_connection)


def test_a_transaction_whose_connection_is_cut_is_unavailable_not_an_internal_error(db: Database):
    with pytest.raises(Unavailable), db.begin() as connection:
        cut_own_connection(connection)
