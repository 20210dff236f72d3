"""ROLE -> the app to boot. Composition only: which domains a role serves, on which port, and
which adapters connect its domains to the others (in process, over HTTP, or over RabbitMQ)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from microbank.platform.domain import Domain, Runtime, open_databases
from microbank.platform.http import create_http_app
from microbank.platform.settings import ConfigError, Settings

DOMAINS = ("users", "accounts", "transactions", "notifications")


@dataclass(frozen=True)
class Role:
    name: str
    domains: tuple[str, ...]
    port: int
    serves_api: bool = True
    # "with_broker": consume events from RabbitMQ when RABBIT_URL is set, else take them in process.
    consumes: Literal["never", "always", "with_broker"] = "never"


ROLES = {
    role.name: role
    for role in (
        Role("users", ("users",), 8001),
        Role("accounts", ("accounts",), 8002),
        Role("transactions", ("transactions",), 8003),
        Role("notifications", ("notifications",), 8004),
        Role("notifier", ("notifications",), 8005, serves_api=False, consumes="always"),
        Role("all", DOMAINS, 8000, consumes="with_broker"),
    )
}


def role_named(name: str | None) -> Role:
    if name in ROLES:
        return ROLES[name]
    valid = ", ".join(ROLES)
    raise ConfigError(f"ROLE must be one of: {valid} (got {name!r})" if name else f"set ROLE to one of: {valid}")


def load_domains(role: Role) -> list[Domain]:
    """Import only the domains the role serves, so a role process stays small."""
    return [importlib.import_module(f"microbank.{name}").domain for name in role.domains]


def runs_consumers(role: Role, settings: Settings) -> bool:
    if role.consumes == "always" and not settings.rabbit_url:
        raise ConfigError(f"the {role.name} role consumes from RabbitMQ: set RABBIT_URL")
    return role.consumes == "always" or (role.consumes == "with_broker" and settings.rabbit_url is not None)


def compose_runtime(role: Role, domains: list[Domain], settings: Settings) -> Runtime:
    """The role's databases, and its ports: in process where the role serves the other side too."""
    runtime = Runtime(settings=settings, databases=open_databases(domains, settings))
    if role.serves_api:
        runtime.ports["event_sink"] = _event_sink(role, runtime)
    if "transactions" in role.domains:
        runtime.ports["ledger"] = _ledger(role, runtime)
    if "accounts" in role.domains:
        runtime.ports["deposits"] = _deposits(role, runtime)
    return runtime


def _event_sink(role: Role, runtime: Runtime) -> Any:
    """Where outbox relays deliver: RabbitMQ if configured, else notifications in process."""
    if runtime.settings.rabbit_url:
        from microbank.platform.broker import RabbitSink

        return RabbitSink(runtime.settings.rabbit_url, verify_only=runtime.settings.rabbit_topology == "verify")
    if "notifications" in role.domains:
        from microbank.notifications import LocalNotifier

        return LocalNotifier(runtime.databases["notifications"])
    return None


def _ledger(role: Role, runtime: Runtime) -> Any:
    if "accounts" in role.domains:
        from microbank.accounts import LocalLedger

        return LocalLedger(runtime.databases["accounts"])
    from microbank.transactions.ledger import HttpLedger

    return HttpLedger(runtime.settings.accounts_url, runtime.settings.service_token)


def _deposits(role: Role, runtime: Runtime) -> Any:
    if "transactions" in role.domains:
        from microbank.transactions.service import LocalDeposits

        return LocalDeposits(runtime.databases["transactions"], runtime.ports["ledger"])
    from microbank.accounts.deposits import HttpDeposits

    return HttpDeposits(runtime.settings.transactions_url)


def create_app(settings: Settings) -> Any:
    role = role_named(settings.role)
    domains = load_domains(role)
    api = domains if role.serves_api else []
    consumers = [c for d in domains for c in d.consumers] if runs_consumers(role, settings) else []
    return create_http_app(
        name=role.name,
        runtime=compose_runtime(role, domains, settings),
        route_handlers=[h for d in api for h in d.route_handlers],
        workers=[*(w for d in api for w in d.workers), *consumers],
        issues_tokens=any(d.issues_tokens for d in api),
    )
