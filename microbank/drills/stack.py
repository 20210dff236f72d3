"""A whole bank for a drill, a benchmark or a test: the roles as `microbank serve` processes, each
domain on a PostgreSQL database made for it (and dropped afterwards), with fresh token keys and
service token, and events over the broker RABBIT_URL names."""

from __future__ import annotations

import secrets
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from microbank.drills.processes import RoleProcess
from microbank.platform.auth import Caller, TokenIssuer, generate_keypair
from microbank.platform.migrations import upgrade

DOMAINS = ("users", "accounts", "transactions", "notifications")
# The roles a split deployment runs, in the order they can start.
SPLIT_ROLES = ("users", "accounts", "transactions", "notifications", "notifier")


def on_server(admin_url: str, sql: str, **params: object) -> object:
    """`sql` run outside a transaction on the server of `admin_url`; its one value, if it has one."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            result = connection.execute(text(sql), params)
            return result.scalar_one() if result.returns_rows else None
    finally:
        engine.dispose()


def create_database(admin_url: str, name: str) -> str:
    """Create database `name` on the server of `admin_url`; its URL."""
    on_server(admin_url, f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    on_server(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class BankStack:
    """The split bank on fresh databases. `with BankStack(admin_url, rabbit_url=...) as bank:`
    creates and migrates the databases; `bank.start()` starts the roles; leaving stops them and
    drops the databases."""

    def __init__(
        self,
        admin_url: str,
        *,
        rabbit_url: str | None = None,
        log_dir: Path | None = None,
        prefix: str = "mbstack",
        env: dict[str, str] | None = None,
    ) -> None:
        self.admin_url = admin_url
        self.prefix = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        self.private_key, self.public_key = generate_keypair()
        self.service_token = secrets.token_urlsafe(32)
        self.database_urls: dict[str, str] = {}
        self.roles: dict[str, RoleProcess] = {}
        self.env = {
            **(env or {}),
            "JWT_PUBLIC_KEY": self.public_key,
            "SERVICE_TOKEN": self.service_token,
            "DATA_DIR": str(self.log_dir),
        }
        if rabbit_url:
            self.env["RABBIT_URL"] = rabbit_url

    def create_databases(self) -> None:
        for domain in DOMAINS:
            self.database_urls[domain] = create_database(self.admin_url, f"{self.prefix}_{domain}")
            upgrade(domain, self.database_urls[domain])
            self.env[f"{domain.upper()}_DATABASE_URL"] = self.database_urls[domain]

    def role(self, name: str) -> RoleProcess:
        """The process of role `name`, made (not started) on first use, with its environment:
        only users holds the private key; transactions and accounts find each other."""
        if name not in self.roles:
            env = dict(self.env)
            if name in ("users", "all"):
                env["JWT_PRIVATE_KEY"] = self.private_key
            self.roles[name] = RoleProcess(name, env, self.log_dir)
            self._link(name)
        return self.roles[name]

    def _link(self, name: str) -> None:
        urls = {"accounts": "ACCOUNTS_URL", "transactions": "TRANSACTIONS_URL"}
        for other, process in self.roles.items():
            if other in urls and other != name:
                self.roles[name].env[urls[other]] = process.url
            if name in urls and other != name:
                process.env[urls[name]] = self.roles[name].url

    def start(self, roles: Iterable[str] = SPLIT_ROLES) -> BankStack:
        names = list(roles)
        for name in names:
            self.role(name)  # every address is known before the first process starts
        for name in names:
            self.roles[name].start()
        return self

    def token(self, user_id: int, role: str = "customer", *, ttl_seconds: int = 3600) -> str:
        """A bearer token for `user_id`, signed as the users role would sign it."""
        issuer = TokenIssuer(self.private_key, ttl_seconds=ttl_seconds)
        return issuer.issue(Caller(user_id=user_id, role=role))  # type: ignore[arg-type]

    def stop(self) -> None:
        for process in reversed(list(self.roles.values())):
            process.stop()

    def drop_databases(self) -> None:
        for domain in list(self.database_urls):
            drop_database(self.admin_url, f"{self.prefix}_{domain}")
            del self.database_urls[domain]

    def __enter__(self) -> BankStack:
        try:
            self.create_databases()
        except BaseException:
            self.drop_databases()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.stop()
        finally:
            self.drop_databases()
