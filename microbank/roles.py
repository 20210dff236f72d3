"""ROLE -> the app to boot. Composition only: which domains a role serves, on which port, and
which adapters connect its domains to the others (in process, over HTTP, or over RabbitMQ)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

import anyio.to_thread

from microbank.contracts import Ports
from microbank.contracts.deposits import Deposits
from microbank.contracts.postings import Ledger
from microbank.platform import webui
from microbank.platform.domain import Domain, Runtime, open_databases
from microbank.platform.http import create_http_app
from microbank.platform.outbox import EventSink
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
    # The built web app at /, on the same origin as the API the role serves (if any).
    serves_ui: bool = False


ROLES = {
    role.name: role
    for role in (
        Role("users", ("users",), 8001),
        Role("accounts", ("accounts",), 8002),
        Role("transactions", ("transactions",), 8003),
        Role("notifications", ("notifications",), 8004),
        Role("notifier", ("notifications",), 8005, serves_api=False, consumes="always"),
        Role("ui", (), 8080, serves_api=False, serves_ui=True),
        Role("all", DOMAINS, 8000, consumes="with_broker", serves_ui=True),
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


def open_role(role: Role, settings: Settings, *, ports: Ports | None = None) -> Runtime:
    """The role's databases and its ports: those given, else the ones composed for it."""
    if ports is None and _calls_between_services(role) and not settings.service_token:
        raise ConfigError(
            f"the {role.name} role and the service it talks to present a shared credential: "
            "set SERVICE_TOKEN (or SERVICE_TOKEN_FILE) to the same value in accounts and transactions"
        )
    runtime = Runtime(settings=settings, databases=open_databases(load_domains(role), settings), ports=Ports())
    runtime.ports = ports if ports is not None else compose_ports(role, runtime)
    return runtime


def compose_ports(role: Role, runtime: Runtime) -> Ports:
    """In process where the role serves the other side of a call too, over HTTP otherwise."""
    ledger = _ledger(role, runtime) if "transactions" in role.domains else None
    return Ports(
        ledger=ledger,
        deposits=_deposits(role, runtime, ledger) if "accounts" in role.domains else None,
        event_sink=_event_sink(role, runtime) if role.serves_api else None,
    )


def _calls_between_services(role: Role) -> bool:
    """Serving accounts or transactions without the other: the role calls, or is called by, it."""
    return ("accounts" in role.domains) != ("transactions" in role.domains)


def _ledger(role: Role, runtime: Runtime) -> Ledger:
    if "accounts" in role.domains:
        from microbank.accounts import ledger_in_process

        return ledger_in_process(runtime.databases["accounts"])
    from microbank.contracts.postings import HttpLedger

    settings = runtime.settings
    assert settings.service_token
    ledger = HttpLedger(_service_url("ACCOUNTS_URL", settings.accounts_url), settings.service_token)
    runtime.readiness_checks.append(lambda: anyio.to_thread.run_sync(ledger.credential_problem))
    return ledger


def _deposits(role: Role, runtime: Runtime, ledger: Ledger | None) -> Deposits:
    if "transactions" in role.domains:
        from microbank.transactions import deposits_in_process

        assert ledger is not None
        return deposits_in_process(runtime.databases["transactions"], ledger)
    from microbank.contracts.deposits import HttpDeposits

    return HttpDeposits(_service_url("TRANSACTIONS_URL", runtime.settings.transactions_url))


def _service_url(variable: str, url: str) -> str:
    if not url.startswith("http://"):
        raise ConfigError(f"{variable} must look like http://host:port, got {url!r}")
    return url


def _event_sink(role: Role, runtime: Runtime) -> EventSink | None:
    """Where outbox relays deliver: RabbitMQ if configured, else notifications in process."""
    if runtime.settings.rabbit_url:
        from microbank.platform.broker import RabbitSink

        return RabbitSink(runtime.settings.rabbit_url, verify_only=runtime.settings.rabbit_topology == "verify")
    if "notifications" in role.domains:
        from microbank.notifications import LocalNotifier

        return LocalNotifier(runtime.databases["notifications"])
    return None


def create_app(settings: Settings, *, ports: Ports | None = None) -> Any:
    role = role_named(settings.role)
    runtime = open_role(role, settings, ports=ports)
    domains = load_domains(role)
    api = domains if role.serves_api else []
    consumers = [c for d in domains for c in d.consumers] if runs_consumers(role, settings) else []
    public = webui.route_handlers(settings.ui_dist_dir) if role.serves_ui else []
    return create_http_app(
        name=role.name,
        runtime=runtime,
        route_handlers=[h for d in api for h in d.route_handlers],
        workers=[*(w for d in api for w in d.workers), *consumers],
        issues_tokens=any(d.issues_tokens for d in api),
        public_handlers=public,
    )
