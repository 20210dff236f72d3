"""What a domain hands the platform so that a role can serve it, and what a running role shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from litestar.datastructures import State
from litestar.di import Provide

from microbank.platform.db import Database
from microbank.platform.settings import Settings


@dataclass
class Runtime:
    """A role's process: its settings, its domains' databases, and the ports composed for it
    (microbank.contracts.Ports: e.g. the ledger, accounts over HTTP or in process)."""

    settings: Settings
    databases: dict[str, Database]
    ports: Any
    # Beyond its databases, what must answer for the role to be ready, e.g. the broker.
    readiness_checks: list[Callable[[], Awaitable[str | None]]] = field(default_factory=list)

    def close(self) -> None:
        for database in self.databases.values():
            database.dispose()


Worker = Callable[[Runtime], Awaitable[None]]


@dataclass(frozen=True)
class Domain:
    name: str
    # The migration of migrations/<name>/ this code expects its database at (a test keeps it the head).
    schema_revision: str
    route_handlers: Sequence[Any]
    issues_tokens: bool = False
    # Long-running tasks started with the app's API and cancelled at shutdown.
    workers: Sequence[Worker] = ()
    # Message consumers, run by the roles that consume (notifier; all, given a broker).
    consumers: Sequence[Worker] = ()


def open_databases(domains: Sequence[Domain], settings: Settings) -> dict[str, Database]:
    return {
        domain.name: Database(
            domain.name,
            settings.database_url(domain.name),
            pool_size=settings.db_pool_size,
            schema_revision=domain.schema_revision,
        )
        for domain in domains
    }


def database_dependency(domain: str) -> Provide:
    """Controllers of `domain` get its Database as the `db` dependency."""

    def provide_database(state: State) -> Database:
        return state.runtime.databases[domain]

    return Provide(provide_database, sync_to_thread=False)


def port_dependency(name: str) -> Provide:
    """Controllers get the role's port `name` (a field of microbank.contracts.Ports)."""

    def provide_port(state: State) -> Any:
        return getattr(state.runtime.ports, name)

    return Provide(provide_port, sync_to_thread=False)
