"""The committed deployment exports are what the code generates now, and say what they should.

deploy/rabbitmq/definitions.json is loaded by RabbitMQ in Kubernetes; docs/asyncapi.json
documents the events. Both are generated (`microbank rabbit-definitions`, `microbank asyncapi`)
from the same declarations the services use, so a change to the topology or to BankEvent
that is not re-exported fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from microbank.cli import asyncapi, rabbit_definitions
from tests.processes import MICROBANK

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"
ASYNCAPI = ROOT / "docs" / "asyncapi.json"
ROUTING_KEYS = {"transaction.completed", "transaction.rejected", "account.opened", "user.registered"}
REGENERATE = "regenerate it: microbank {command} --output {path}"


def committed(path: Path) -> Any:
    return json.loads(path.read_text())


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


# --- RabbitMQ definitions ----------------------------------------------------------------


@pytest.fixture(scope="module")
def definitions() -> dict[str, Any]:
    return committed(DEFINITIONS)


def test_the_committed_definitions_are_what_the_code_generates(definitions):
    assert definitions == json.loads(rabbit_definitions()), REGENERATE.format(
        command="rabbit-definitions", path=DEFINITIONS.relative_to(ROOT)
    )


def test_the_events_exchange_is_a_durable_topic(definitions):
    exchange = by_name(definitions["exchanges"])["banking_events"]
    assert exchange["type"] == "topic"
    assert exchange["durable"] is True
    assert exchange["auto_delete"] is False


def test_the_dead_letter_exchange_exists(definitions):
    exchange = by_name(definitions["exchanges"])["banking_events.dlx"]
    assert exchange["durable"] is True


def test_the_notifications_queue_is_quorum_and_dead_letters(definitions):
    queue = by_name(definitions["queues"])["notifications"]
    assert queue["durable"] is True
    assert queue["arguments"]["x-queue-type"] == "quorum"
    assert queue["arguments"]["x-dead-letter-exchange"] == "banking_events.dlx"
    assert queue["arguments"]["x-dead-letter-routing-key"] == "notifications"
    assert queue["arguments"]["x-delivery-limit"] > 0


def test_the_dead_letter_queue_exists(definitions):
    queue = by_name(definitions["queues"])["notifications.dlq"]
    assert queue["durable"] is True
    assert queue["arguments"]["x-queue-type"] == "quorum"


def test_notifications_is_bound_to_the_four_routing_keys(definitions):
    keys = [
        b["routing_key"]
        for b in definitions["bindings"]
        if b["source"] == "banking_events" and b["destination"] == "notifications"
    ]
    assert sorted(keys) == sorted(ROUTING_KEYS)
    assert all(b["destination_type"] == "queue" for b in definitions["bindings"])


def test_the_dead_letter_queue_is_bound_to_the_dead_letter_exchange(definitions):
    bindings = [
        (b["source"], b["routing_key"]) for b in definitions["bindings"] if b["destination"] == "notifications.dlq"
    ]
    assert bindings == [("banking_events.dlx", "notifications")]


def test_every_item_is_in_the_vhost_the_file_declares(definitions):
    vhosts = {v["name"] for v in definitions["vhosts"]}
    items = [*definitions["exchanges"], *definitions["queues"], *definitions["bindings"]]
    assert {item["vhost"] for item in items} <= vhosts


def test_the_command_writes_the_same_document(tmp_path):
    output = tmp_path / "out" / "x.json"

    result = subprocess.run(
        [str(MICROBANK), "rabbit-definitions", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(output.read_text()) == committed(DEFINITIONS)
    assert output.read_text() == rabbit_definitions() + "\n"


def test_the_command_prints_the_document_without_output(tmp_path):
    result = subprocess.run(
        [str(MICROBANK), "rabbit-definitions"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == committed(DEFINITIONS)


# --- AsyncAPI ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return committed(ASYNCAPI)


def test_the_committed_asyncapi_is_what_the_code_generates(spec):
    assert spec == json.loads(asyncapi()), REGENERATE.format(command="asyncapi", path=ASYNCAPI.relative_to(ROOT))


def test_asyncapi_declares_version_3(spec):
    assert spec["asyncapi"] == "3.0.0"


def test_asyncapi_has_a_channel_per_routing_key_and_the_queue(spec):
    assert set(spec["channels"]) == {*ROUTING_KEYS, "notifications"}
    for key in ROUTING_KEYS:
        channel = spec["channels"][key]
        assert channel["address"] == key
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "banking_events"
        assert channel["bindings"]["amqp"]["exchange"]["type"] == "topic"
    queue = spec["channels"]["notifications"]
    assert queue["bindings"]["amqp"]["is"] == "queue"
    assert queue["bindings"]["amqp"]["queue"]["name"] == "notifications"


def test_asyncapi_publishes_to_the_keys_and_receives_from_the_queue(spec):
    actions = {name: operation["action"] for name, operation in spec["operations"].items()}
    assert actions == {**dict.fromkeys(ROUTING_KEYS, "send"), "notifications": "receive"}


def test_every_asyncapi_message_carries_a_bank_event(spec):
    payloads = {message["payload"]["$ref"] for message in spec["components"]["messages"].values()}
    assert payloads == {"#/components/schemas/BankEvent"}


def test_the_bank_event_schema_lists_the_seed_fields_and_the_envelope(spec):
    schema = spec["components"]["schemas"]["BankEvent"]
    seed = {"user_id", "message", "transaction_id", "transaction_type", "timestamp"}
    envelope = {"event_id", "event_type", "occurred_at", "schema_version"}
    assert seed | envelope <= set(schema["properties"])
    assert {"event_id", "event_type", "occurred_at", "user_id", "message", "timestamp"} <= set(schema["required"])
    assert schema["properties"]["user_id"]["type"] == "integer"
    assert schema["properties"]["occurred_at"]["format"] == "date-time"
