"""End-to-end fixtures: the bank as the README's first command starts it, on SQLite files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import BankClient
from tests.processes import RoleProcess

# What `microbank dev` must not inherit from the test run: it is the embedded default.
SERVICE_SETTINGS = ("DATABASE_URL", "RABBIT_URL", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "SERVICE_TOKEN", "ROLE")


@pytest.fixture
def dev_process(tmp_path: Path) -> Iterator[Callable[[], RoleProcess]]:
    """Make (not start) `microbank dev` on a data directory of its own."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SERVICE_SETTINGS and not name.endswith("_DATABASE_URL")
    }
    env["DATA_DIR"] = str(tmp_path / "data")
    made: list[RoleProcess] = []

    def make() -> RoleProcess:
        made.append(RoleProcess("all", env, tmp_path, command="dev"))
        return made[-1]

    yield make
    for process in made:
        process.stop()


@pytest.fixture
def dev_service(dev_process: Callable[[], RoleProcess]) -> RoleProcess:
    """`microbank dev`, started and ready."""
    return dev_process().start()


@pytest.fixture
def dev_bank(dev_service: RoleProcess) -> Iterator[BankClient]:
    with httpx.Client(base_url=dev_service.url, timeout=30) as http:
        yield BankClient(http)
