"""Replicas starting together each run `microbank migrate` (Kubernetes init containers): they
take turns, and every one of them succeeds."""

from __future__ import annotations

import os
import subprocess

from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from microbank.platform.migrations import head_revision
from tests.processes import MICROBANK


def test_four_migrations_at_once_all_succeed_and_leave_the_head(fresh_database: str) -> None:
    env = {**os.environ, "ROLE": "transactions", "DATABASE_URL": fresh_database}
    env.pop("TRANSACTIONS_DATABASE_URL", None)
    processes = [
        subprocess.Popen([str(MICROBANK), "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(4)
    ]

    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]

    assert [p.returncode for p in processes] == [0, 0, 0, 0], "\n".join(outputs)
    engine = create_engine(fresh_database)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision("transactions")
    engine.dispose()
