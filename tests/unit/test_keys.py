"""`microbank keys`: fresh credentials in the shapes Kubernetes, RabbitMQ and the roles read."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from microbank.keys import broker_access, generate, kubernetes_secrets, rabbit_password_hash, write_files
from microbank.platform.auth import TokenVerifier
from microbank.platform.settings import ConfigError

MICROBANK = Path(sys.executable).parent / "microbank"


def test_the_rabbit_hash_is_rabbitmqs_salted_sha256() -> None:
    hashed = base64.b64decode(rabbit_password_hash("s3cret", salt=b"\x01\x02\x03\x04"))

    assert hashed[:4] == b"\x01\x02\x03\x04"
    assert hashed[4:] == hashlib.sha256(b"\x01\x02\x03\x04s3cret").digest()


def test_every_run_makes_new_credentials() -> None:
    first, second = generate(), generate()

    assert first.service_token != second.service_token
    assert first.jwt_private_key != second.jwt_private_key
    assert set(first.rabbit_passwords.values()).isdisjoint(second.rabbit_passwords.values())
    assert len(set(first.database_passwords.values())) == 4


def test_the_public_key_verifies_what_the_private_key_signs() -> None:
    from microbank.platform.auth import Caller, TokenIssuer

    made = generate()
    token = TokenIssuer(made.jwt_private_key, ttl_seconds=60).issue(Caller(user_id=7, role="customer"))

    assert TokenVerifier(made.jwt_public_key).verify(token).user_id == 7


def test_no_user_may_configure_and_each_publishes_only_its_own_keys() -> None:
    access = broker_access(generate().rabbit_passwords)
    permissions = {p["user"]: p for p in access["permissions"]}
    topics = {t["user"]: t["write"] for t in access["topic_permissions"]}

    for user in ("users", "accounts", "transactions", "notifier"):
        assert permissions[user]["configure"] == "^$"
    assert re.fullmatch(topics["users"], "user.registered") and not re.fullmatch(topics["users"], "account.opened")
    assert re.fullmatch(topics["transactions"], "transaction.completed")
    assert not re.fullmatch(topics["transactions"], "transaction.completedX")
    assert topics["notifier"] == "^$"
    assert re.fullmatch(permissions["notifier"]["read"], "notifications")
    assert not re.fullmatch(permissions["notifier"]["read"], "notifications.dlq")
    assert "guest" not in {u["name"] for u in access["users"]}
    assert all("password" not in u for u in access["users"]), "only hashes go to the broker"


def test_managed_database_urls_replace_the_in_cluster_ones() -> None:
    managed = "postgresql+psycopg2://bank:pw@db.example.com:5432/users"
    secrets = {
        s["metadata"]["name"]: s for s in kubernetes_secrets(generate(), database_urls={"users": managed})["items"]
    }

    assert secrets["users-database"]["stringData"] == {"url": managed}
    assert secrets["accounts-database"]["stringData"]["url"].startswith("postgresql+psycopg2://accounts:")
    assert "@accounts-db:5432/accounts" in secrets["accounts-database"]["stringData"]["url"]


def test_key_files_are_private_and_never_overwritten(tmp_path: Path) -> None:
    written = write_files(generate(), tmp_path / "keys")

    assert sorted(p.name for p in written) == ["jwt-private-key.pem", "jwt-public-key.pem", "service-token"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in written)
    with pytest.raises(ConfigError, match="never overwritten"):
        write_files(generate(), tmp_path / "keys")


def test_the_command_prints_secrets_kubectl_can_apply(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(MICROBANK), "keys", "--namespace", "bank", "--database-url", "users=postgresql+psycopg2://u:p@h/users"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["kind"] == "List"
    assert {item["metadata"]["namespace"] for item in document["items"]} == {"bank"}


def test_the_command_names_a_bad_database_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(MICROBANK), "keys", "--database-url", "ledger=x"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )

    assert result.returncode == 2
    assert "DOMAIN=URL" in result.stderr and "Traceback" not in result.stderr
