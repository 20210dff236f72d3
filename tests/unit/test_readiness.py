"""Readiness when the database answers nothing: a reason for the 503, never a crash."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine

from microbank.platform.db import schema_gap


def test_an_exhausted_connection_pool_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'users.db'}", pool_size=1, max_overflow=0, pool_timeout=0.1)
    with engine.connect():
        gap = schema_gap("users", engine, "users_0003")
    engine.dispose()
    assert gap == "users database unreachable: TimeoutError"
