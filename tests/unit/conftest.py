"""Unit fixtures: a domain's tables on a throwaway SQLite file, no server."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from microbank.platform.db import Database


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Callable[[str], Database]]:
    """sqlite_db("accounts"): that domain's tables, created from its models, in a file of its own."""
    made: list[Database] = []

    def make(domain: str) -> Database:
        db = Database(domain, f"sqlite:///{tmp_path / f'{domain}.db'}")
        importlib.import_module(f"microbank.{domain}.models").metadata.create_all(db.engine)
        made.append(db)
        return db

    yield make
    for db in made:
        db.dispose()
