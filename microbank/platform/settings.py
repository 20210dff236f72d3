"""Typed settings, read from the environment (secrets also from *_FILE)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """The environment does not describe a runnable process."""


def _read_secret(name: str) -> str | None:
    """A secret comes from NAME, or from the file named by NAME_FILE (Kubernetes Secret mounts)."""
    if value := os.environ.get(name):
        return value
    if path := os.environ.get(f"{name}_FILE"):
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path}: {exc.strerror}") from exc
    return None


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    role: str | None
    host: str
    port: int | None
    data_dir: Path
    jwt_private_key: str | None = field(repr=False)
    jwt_public_key: str | None = field(repr=False)
    service_token: str | None = field(repr=False)
    token_ttl_seconds: int
    db_pool_size: int
    # Back-pressure: requests in progress, requests waiting, and how long one may wait.
    max_in_flight: int
    max_queued: int
    queue_timeout_seconds: float
    rabbit_url: str | None = field(repr=False)
    # "declare": the roles declare the exchanges and queues; "verify": the broker loads them at boot
    # (Kubernetes) and the roles, whose broker users may not configure anything, only check them.
    rabbit_topology: str
    accounts_url: str
    transactions_url: str
    log_level: str
    # "json" or "console"; None: the command's own (json for serve and migrate, console otherwise).
    log_format: str | None
    # The built web UI (UI_DIST_DIR); None: ui/dist of the checkout the package runs from.
    ui_dist_dir: Path | None = None

    def database_url(self, domain: str) -> str:
        """DOMAIN_DATABASE_URL, else DATABASE_URL, else a SQLite file in the data directory (each URL
        also from its *_FILE).

        DATABASE_URL names the one database of a single-domain role; under ROLE=all it would
        point four domains at one database, so there only the per-domain names count.
        """
        for variable in (f"{domain.upper()}_DATABASE_URL", *(("DATABASE_URL",) if self.role != "all" else ())):
            if url := (_read_secret(variable) or "").strip():
                return _database_url(variable, url)
        return f"sqlite:///{self.data_dir / f'{domain}.db'}"


def _database_url(variable: str, url: str) -> str:
    """The URL, if it names a driver this package has: psycopg2 for PostgreSQL, or SQLite."""
    scheme = url.partition("://")[0]
    if scheme in ("postgresql+psycopg2", "sqlite"):
        return url
    if scheme.startswith("postgres"):
        raise ConfigError(f"{variable} must use the postgresql+psycopg2:// scheme (got {scheme}://)")
    raise ConfigError(f"{variable} must be a postgresql+psycopg2:// or sqlite:/// URL (got {scheme or url!r})")


def _rabbit_topology() -> str:
    mode = os.environ.get("RABBIT_TOPOLOGY") or "declare"
    if mode not in ("declare", "verify"):
        raise ConfigError(f"RABBIT_TOPOLOGY must be declare or verify, got {mode!r}")
    return mode


def _log_format() -> str | None:
    log_format = os.environ.get("LOG_FORMAT") or None
    if log_format not in (None, "json", "console"):
        raise ConfigError(f"LOG_FORMAT must be json or console, got {log_format!r}")
    return log_format


def load_settings() -> Settings:
    return Settings(
        role=os.environ.get("ROLE") or None,
        host=os.environ.get("HOST", "0.0.0.0"),
        port=_int("PORT", 0) or None,
        data_dir=Path(os.environ.get("DATA_DIR", ".microbank")).resolve(),
        jwt_private_key=_read_secret("JWT_PRIVATE_KEY"),
        jwt_public_key=_read_secret("JWT_PUBLIC_KEY"),
        service_token=(_read_secret("SERVICE_TOKEN") or "").strip() or None,
        token_ttl_seconds=_int("TOKEN_TTL_SECONDS", 900),
        db_pool_size=_int("DB_POOL_SIZE", 16),
        max_in_flight=_int("MAX_IN_FLIGHT", 32),
        max_queued=_int("MAX_QUEUED", 512),
        queue_timeout_seconds=_int("QUEUE_TIMEOUT_SECONDS", 5),
        rabbit_url=(_read_secret("RABBIT_URL") or "").strip() or None,
        rabbit_topology=_rabbit_topology(),
        accounts_url=os.environ.get("ACCOUNTS_URL", "http://127.0.0.1:8002"),
        transactions_url=os.environ.get("TRANSACTIONS_URL", "http://127.0.0.1:8003"),
        log_level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        log_format=_log_format(),
        ui_dist_dir=Path(os.environ["UI_DIST_DIR"]) if os.environ.get("UI_DIST_DIR") else None,
    )
