"""`microbank keys`: every credential a deployment needs, made fresh, never committed.

For Kubernetes it prints the Secrets the manifests in deploy/k8s mount: the token keys, the
service token, a database URL per domain, a RabbitMQ user per role with least privilege (and the
broker's side of them, as a definitions file it loads at boot), and an operator login for the
RabbitMQ management UI. For the roles run by hand it writes the token keys and the service token
to files instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microbank.platform.auth import generate_keypair
from microbank.platform.broker import EVENTS_EXCHANGE, GRANTS, BrokerGrant
from microbank.platform.settings import ConfigError

DOMAINS = ("users", "accounts", "transactions", "notifications")
RABBIT_HOST = "rabbitmq:5672"
RABBIT_OPERATOR = "operator"
VHOST = "/"
KEY_FILES = ("jwt-private-key.pem", "jwt-public-key.pem", "service-token")


@dataclass(frozen=True)
class Credentials:
    jwt_private_key: str
    jwt_public_key: str
    service_token: str
    database_passwords: dict[str, str]
    rabbit_passwords: dict[str, str]


def generate() -> Credentials:
    private, public = generate_keypair()
    return Credentials(
        jwt_private_key=private,
        jwt_public_key=public,
        service_token=_password(),
        database_passwords={domain: _password() for domain in DOMAINS},
        rabbit_passwords={user: _password() for user in (*(g.user for g in GRANTS), RABBIT_OPERATOR)},
    )


def _password() -> str:
    return secrets.token_urlsafe(32)


def in_cluster_database_url(domain: str, password: str) -> str:
    """The URL of the PostgreSQL StatefulSet the kind overlay runs for `domain`."""
    return f"postgresql+psycopg2://{domain}:{password}@{domain}-db:5432/{domain}"


def rabbit_password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _exactly(names: tuple[str, ...]) -> str:
    return f"^({'|'.join(re.escape(n) for n in names)})$" if names else "^$"


def broker_access(passwords: Mapping[str, str]) -> dict[str, Any]:
    """The broker's half of the role users: a definitions file with the users, what each may
    write and read (regexes over exchange and queue names), and which routing keys each may
    publish on the events exchange. Loaded at boot beside deploy/rabbitmq/definitions.json."""

    def user(name: str, tags: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "password_hash": rabbit_password_hash(passwords[name]),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": tags,
        }

    def permission(grant: BrokerGrant) -> dict[str, str]:
        return {
            "user": grant.user,
            "vhost": VHOST,
            "configure": "^$",
            "write": _exactly(grant.writes()),
            "read": _exactly(grant.queues),
        }

    operator = {"user": RABBIT_OPERATOR, "vhost": VHOST, "configure": ".*", "write": ".*", "read": ".*"}
    return {
        "vhosts": [{"name": VHOST}],
        "users": [*(user(g.user, []) for g in GRANTS), user(RABBIT_OPERATOR, ["administrator"])],
        "permissions": [*(permission(g) for g in GRANTS), operator],
        "topic_permissions": [
            {
                "user": g.user,
                "vhost": VHOST,
                "exchange": EVENTS_EXCHANGE,
                "write": _exactly(g.routing_keys),
                "read": "^$",
            }
            for g in GRANTS
        ],
    }


def _secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "microbank"}},
        "type": "Opaque",
        "stringData": data,
    }


def kubernetes_secrets(
    credentials: Credentials, *, namespace: str = "microbank", database_urls: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The Secrets the manifests mount, as one List. Without database_urls the URLs point at the
    in-cluster PostgreSQL StatefulSets (kind); with them (prod), at the databases you name."""
    database_urls = database_urls or {}
    items = [
        _secret("token-signing-key", namespace, {"private-key.pem": credentials.jwt_private_key}),
        _secret("token-verify-key", namespace, {"public-key.pem": credentials.jwt_public_key}),
        _secret("service-token", namespace, {"token": credentials.service_token}),
    ]
    for domain in DOMAINS:
        password = credentials.database_passwords[domain]
        if domain in database_urls:
            data = {"url": database_urls[domain]}
        else:
            data = {
                "url": in_cluster_database_url(domain, password),
                "username": domain,
                "password": password,
                "database": domain,
            }
        items.append(_secret(f"{domain}-database", namespace, data))
    passwords = credentials.rabbit_passwords
    for grant in GRANTS:
        url = f"amqp://{grant.user}:{passwords[grant.user]}@{RABBIT_HOST}/"
        items.append(_secret(f"{grant.user}-rabbitmq", namespace, {"url": url}))
    items.append(_secret("rabbitmq-access", namespace, {"access.json": json.dumps(broker_access(passwords))}))
    operator = {"username": RABBIT_OPERATOR, "password": passwords[RABBIT_OPERATOR]}
    items.append(_secret("rabbitmq-operator", namespace, operator))
    return {"apiVersion": "v1", "kind": "List", "items": items}


def write_files(credentials: Credentials, directory: Path) -> list[Path]:
    """The token keys and the service token as files (mode 0600), for *_FILE variables."""
    directory.mkdir(parents=True, exist_ok=True)
    if existing := [name for name in KEY_FILES if (directory / name).exists()]:
        raise ConfigError(f"{directory} already holds {', '.join(existing)}: keys are never overwritten")
    contents = (credentials.jwt_private_key, credentials.jwt_public_key, credentials.service_token)
    files = dict(zip(KEY_FILES, contents, strict=True))
    written = []
    for name, content in files.items():
        path = directory / name
        path.touch(mode=0o600)
        path.write_text(content)
        written.append(path)
    return written
