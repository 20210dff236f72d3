"""The microbank command: serve | migrate | dev | audit | recover | grant-admin | keys | exports | monitoring |
traffic | drill."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from microbank.platform.errors import DomainError
from microbank.platform.settings import ConfigError, Settings, load_settings

log = logging.getLogger("microbank")


def serve(settings: Settings) -> None:
    import uvicorn

    from microbank.platform.server import BoundedHttpToolsProtocol
    from microbank.roles import create_app, role_named, runs_consumers

    role = role_named(settings.role)
    if not runs_consumers(role, settings):
        # Litestar loads its pydantic plugin whenever pydantic is installed, and FastStream brings
        # it: a role that neither consumes nor validates with pydantic would carry 16 MiB and
        # 0.2 s of start-up for nothing. Unimportable here, the plugin is simply not loaded.
        sys.modules.setdefault("pydantic", None)  # type: ignore[arg-type]
    app = create_app(settings)
    port = settings.port or role.port
    log.info("serving role %s on %s:%d", role.name, settings.host, port)
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_level=settings.log_level.lower(),
        # uvicorn's loggers write through the process's own handler (platform/logging.py); the
        # access line is the platform's, with the request id and the route template.
        log_config=None,
        access_log=False,
        proxy_headers=True,
        http=BoundedHttpToolsProtocol,
        timeout_graceful_shutdown=10,
    )


def migrate(settings: Settings) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from microbank.platform.migrations import upgrade
    from microbank.roles import role_named

    for domain in role_named(settings.role).domains:
        url = settings.database_url(domain)
        log.info("migrating %s database to head", domain)
        try:
            upgrade(domain, url)
        except OperationalError as exc:
            where = make_url(url).render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0]
            raise ConfigError(f"cannot migrate the {domain} database at {where}: {reason}") from None


def dev(settings: Settings) -> None:
    """Every role in one process on SQLite files, with a throwaway signing key: a laptop bank."""
    from microbank.platform.auth import generate_keypair
    from microbank.roles import role_named

    os.environ["ROLE"] = "all"
    if not settings.jwt_private_key:
        os.environ["JWT_PRIVATE_KEY"], os.environ["JWT_PUBLIC_KEY"] = generate_keypair()
    if not settings.service_token:
        os.environ["SERVICE_TOKEN"] = secrets.token_urlsafe(32)
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings)
    log.info("data in %s; open http://localhost:%d", settings.data_dir, settings.port or role_named("all").port)
    serve(settings)


def grant_admin(settings: Settings, email: str) -> None:
    from microbank.roles import ROLES, open_role
    from microbank.users.service import grant_admin as grant

    runtime = open_role(ROLES["users"], replace(settings, role="users"))
    try:
        user = grant(db=runtime.databases["users"], email=email)
    finally:
        runtime.close()
    print(f"user {user.id} ({user.email}) is now an admin")


def audit(settings: Settings) -> int:
    from microbank.audit import run_audit

    # The audit reads all four databases, so each is found by its own *_DATABASE_URL.
    report = run_audit(replace(settings, role="all"))
    print(report.render())
    return 0 if report.clean else 1


def recover(settings: Settings) -> int:
    """Finish every pending transaction now, whatever its lease, through the accounts role the
    transactions role itself would call."""
    from microbank.contracts.postings import LedgerUnavailable
    from microbank.roles import ROLES, open_role
    from microbank.transactions.service import recover_all_pending

    runtime = open_role(ROLES["transactions"], replace(settings, role="transactions"))
    try:
        finished = recover_all_pending(db=runtime.databases["transactions"], ledger=runtime.ports.ledger)
    except LedgerUnavailable as exc:
        print(f"microbank: recovery stopped, {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.close()
    print(f"finished {finished} pending transactions")
    return 0


def export(text: str, output: str | None) -> int:
    if output is None:
        print(text)
    else:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text + "\n")
    return 0


def rabbit_definitions() -> str:
    from microbank.platform.broker import TOPOLOGY

    return json.dumps(TOPOLOGY.definitions(), indent=2, sort_keys=True)


def keys(args: argparse.Namespace) -> int:
    from microbank import keys as credentials

    made = credentials.generate()
    if args.output_dir:
        for path in credentials.write_files(made, Path(args.output_dir)):
            print(f"wrote {path}")
        return 0
    urls = dict(_domain_url(pair) for pair in args.database_url)
    print(json.dumps(credentials.kubernetes_secrets(made, namespace=args.namespace, database_urls=urls), indent=2))
    return 0


def _domain_url(pair: str) -> tuple[str, str]:
    from microbank.keys import DOMAINS

    domain, _, url = pair.partition("=")
    if domain not in DOMAINS or not url:
        raise ConfigError(f"--database-url takes DOMAIN=URL with DOMAIN one of {', '.join(DOMAINS)}, got {pair!r}")
    return domain, url


def nginx_config() -> str:
    from microbank.routes import nginx_config as render

    return render()


def asyncapi() -> str:
    """The AsyncAPI document of the events, generated by FastStream from the notifier itself."""
    from faststream import FastStream
    from faststream.specification import AsyncAPI

    from microbank.notifications.consumer import build_notifier
    from microbank.platform.consuming import document_publishers
    from microbank.platform.db import Database

    # Nothing connects: the document is built from the declarations alone.
    broker = build_notifier(url="amqp://rabbitmq:5672/", db=Database("notifications", "sqlite://"))
    document_publishers(broker)
    app = FastStream(
        broker,
        specification=AsyncAPI(
            title="microbank events", version="1.0.0", description="Events on the banking_events exchange."
        ),
    )
    return json.dumps(json.loads(app.schema.to_specification().to_json()), indent=2, sort_keys=True)


def monitoring(output_dir: str) -> int:
    """Write the dashboards, alert rules, scrape configs and Grafana provisioning under `output_dir`."""
    from microbank.monitoring.files import generated

    try:
        files = generated()
    except ImportError as exc:  # the generator's libraries are development tools
        raise ConfigError(
            f"microbank monitoring needs the development extras (pip install -e '.[dev]'): {exc}"
        ) from None
    for path, text in files.items():
        target = Path(output_dir) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microbank", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the role named by ROLE")
    commands.add_parser("migrate", help="upgrade the databases of the role named by ROLE")
    commands.add_parser("dev", help="migrate and serve every role in one process on SQLite")
    commands.add_parser("audit", help="check the invariants across the four databases; exit 1 on a breach")
    commands.add_parser("recover", help="finish every pending transaction (needs ACCOUNTS_URL, SERVICE_TOKEN)")
    for name, about in (
        ("rabbit-definitions", "the RabbitMQ topology as a definitions file"),
        ("asyncapi", "the AsyncAPI document of the events"),
    ):
        command = commands.add_parser(name, help=f"print or write {about}")
        command.add_argument("--output", help="write to this file instead of printing")
    nginx = commands.add_parser("nginx-config", help="print or write the nginx config for the roles run by hand")
    nginx.add_argument("--output", help="write to this file instead of printing")
    made = commands.add_parser("keys", help="make fresh credentials: Kubernetes Secrets, or key files")
    made.add_argument("--namespace", default="microbank", help="namespace of the Secrets (default: microbank)")
    made.add_argument(
        "--database-url",
        action="append",
        default=[],
        metavar="DOMAIN=URL",
        help="a managed database for DOMAIN (repeat per domain); else the in-cluster PostgreSQL",
    )
    made.add_argument("--output-dir", help="write the token keys and the service token here instead")
    # microbank traffic: the scenario and its flags live in microbank/drills/traffic.py.
    traffic = commands.add_parser("traffic", help="customers using the bank: a seeded mix at a rate or concurrency")
    traffic.add_argument("--url", help="one address for every path: microbank dev, nginx or the ingress")
    traffic.add_argument("--role-url", action="append", default=[], metavar="ROLE=URL", help="a role run by hand")
    traffic.add_argument("--rate", type=float, help="requests per second (open loop); else --concurrency")
    traffic.add_argument("--concurrency", type=int, default=8, help="clients each waiting for its answer")
    traffic.add_argument("--duration", type=float, default=30.0, help="seconds of traffic (0: until --count)")
    traffic.add_argument("--count", type=int, help="stop after this many requests")
    traffic.add_argument("--customers", type=int, default=20, help="customers signed up for the run")
    traffic.add_argument("--seed", type=int, default=1, help="the same seed draws the same calls")
    traffic.add_argument("--give-up-after", type=float, default=60.0, help="seconds a money request is retried")
    # microbank drill: faults during traffic, then the audit (microbank/drills/drill.py).
    drill = commands.add_parser("drill", help="kill roles, stop RabbitMQ and cut a database during traffic; audit")
    drill.add_argument("--seed", type=int, default=1, help="the same seed plans the same faults and calls")
    drill.add_argument("--duration", "--seconds", type=float, default=80.0, help="seconds of traffic")
    drill.add_argument("--clients", type=int, default=16, help="traffic clients, each waiting for its answer")
    drill.add_argument("--customers", type=int, default=32, help="customers signed up for the run")
    drill.add_argument("--broker-outage", type=float, default=30.0, help="seconds RabbitMQ is away (0: never)")
    drill.add_argument("--no-faults", action="store_true", help="the same traffic with nothing killed: a baseline")
    drill.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server the drill may create (and drop) its databases on",
    )
    watch = commands.add_parser("monitoring", help="write the dashboards, alert rules and scrape configs")
    watch.add_argument("--output-dir", default=".", help="the repository to write them into (default: here)")
    admin = commands.add_parser("grant-admin", help="give a user the admin role")
    admin.add_argument("email")
    return parser


# What deployments run writes JSON lines for a log collector; what people run, readable lines.
_JSON_LOGS_BY_DEFAULT = ("serve", "migrate")


def configure_logging(command: str, settings: Settings) -> None:
    from microbank.platform.logging import configure_logging as configure

    default = "json" if command in _JSON_LOGS_BY_DEFAULT else "console"
    role = "all" if command == "dev" else settings.role
    configure(level=settings.log_level, log_format=settings.log_format or default, role=role)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"microbank: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.command, settings)
    try:
        if args.command == "serve":
            serve(settings)
        elif args.command == "migrate":
            migrate(settings)
        elif args.command == "dev":
            dev(settings)
        elif args.command == "audit":
            return audit(settings)
        elif args.command == "recover":
            return recover(settings)
        elif args.command == "rabbit-definitions":
            return export(rabbit_definitions(), args.output)
        elif args.command == "asyncapi":
            return export(asyncapi(), args.output)
        elif args.command == "nginx-config":
            return export(nginx_config(), args.output)
        elif args.command == "keys":
            return keys(args)
        elif args.command == "traffic":
            from microbank.drills import traffic

            return traffic.main(args)
        elif args.command == "drill":
            from microbank.drills import drill

            return drill.main(args)
        elif args.command == "monitoring":
            return monitoring(args.output_dir)
        elif args.command == "grant-admin":
            grant_admin(settings, args.email)
    except (ConfigError, DomainError) as exc:
        print(f"microbank: {exc}", file=sys.stderr)
        return 2
    return 0
