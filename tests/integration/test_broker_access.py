"""RabbitMQ set up as Kubernetes sets it up: the committed topology and the role users `microbank
keys` makes, loaded at boot. Each role moves money end to end with its own user, and the broker
refuses what a role has no business doing."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import httpx
import pytest
from aiormq.exceptions import AMQPError

from microbank.drills.rabbit_node import RabbitNode
from microbank.drills.stack import BankStack
from microbank.keys import broker_access, generate
from tests.factories import BankClient
from tests.integration.conftest import ADMIN_URL

DEFINITIONS = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "definitions.json"


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return generate().rabbit_passwords


@pytest.fixture(scope="module")
def broker(passwords: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A node that loads what the rabbitmq StatefulSet mounts: topology first, then the users."""
    definitions = tmp_path_factory.mktemp("definitions.d")
    shutil.copy(DEFINITIONS, definitions / "10-topology.json")
    (definitions / "20-access.json").write_text(json.dumps(broker_access(passwords)))
    with RabbitNode(prometheus=False, config=f"load_definitions = {definitions}\n") as node:
        yield node


def url(node: RabbitNode, user: str, passwords: dict[str, str]) -> str:
    return f"amqp://{user}:{passwords[user]}@127.0.0.1:{node.amqp_port}/"


def refused(node: RabbitNode, user: str, passwords: dict[str, str], attempt) -> bool:
    async def run() -> bool:
        connection = await aio_pika.connect(url(node, user, passwords))
        try:
            channel = await connection.channel(publisher_confirms=True)
            await attempt(channel)
            await asyncio.sleep(0.2)  # a refusal closes the channel a moment later
            return channel.is_closed
        except AMQPError:
            return True
        finally:
            await connection.close()

    return asyncio.run(run())


def test_each_role_moves_money_with_only_its_own_user(
    broker: RabbitNode, passwords: dict[str, str], tmp_path: Path
) -> None:
    with BankStack(ADMIN_URL, log_dir=tmp_path, env={"RABBIT_TOPOLOGY": "verify"}) as bank:
        for role in ("users", "accounts", "transactions", "notifier"):
            bank.role(role).env["RABBIT_URL"] = url(broker, role, passwords)
        bank.start()
        clients = {name: httpx.Client(base_url=bank.role(name).url, timeout=30) for name in bank.roles}
        _, headers = BankClient(clients["users"]).customer()
        account = BankClient(clients["accounts"]).open_account(headers)["id"]
        BankClient(clients["transactions"]).deposit(headers, account, "10.00")

        told = [
            n["message"] for n in BankClient(clients["notifications"]).wait_for_notifications(headers, 3, timeout=30)
        ]

        assert "Deposit of $10.00 completed. New balance: $10.00" in told
        assert any(message.startswith("Welcome to microbank") for message in told)
        for client in clients.values():
            client.close()


async def publish(channel: aio_pika.abc.AbstractChannel, routing_key: str, exchange: str = "banking_events") -> None:
    target = await channel.get_exchange(exchange, ensure=False) if exchange else channel.default_exchange
    await target.publish(aio_pika.Message(b"{}"), routing_key=routing_key)


@pytest.mark.parametrize(
    ("user", "routing_key"),
    [
        ("users", "transaction.completed"),
        ("accounts", "user.registered"),
        ("transactions", "account.opened"),
        ("notifier", "transaction.completed"),
    ],
)
def test_a_role_cannot_announce_another_roles_event(broker, passwords, user: str, routing_key: str) -> None:
    assert refused(broker, user, passwords, lambda channel: publish(channel, routing_key))


def test_a_role_may_announce_its_own_event(broker, passwords) -> None:
    assert not refused(broker, "transactions", passwords, lambda channel: publish(channel, "transaction.rejected"))


@pytest.mark.parametrize("user", ["users", "accounts", "transactions"])
def test_a_publisher_cannot_read_put_straight_into_or_delete_the_queue(broker, passwords, user: str) -> None:
    async def consume(channel):
        queue = await channel.get_queue("notifications", ensure=False)
        await queue.get(fail=False)

    async def delete(channel):
        await channel.queue_delete("notifications")

    assert refused(broker, user, passwords, consume)
    assert refused(broker, user, passwords, lambda channel: publish(channel, "notifications", exchange=""))
    assert refused(broker, user, passwords, delete)


def test_the_notifier_can_park_but_not_declare(broker, passwords) -> None:
    async def declare(channel):
        await channel.declare_exchange("rogue", aio_pika.ExchangeType.FANOUT)

    assert not refused(
        broker, "notifier", passwords, lambda channel: publish(channel, "notifications", "banking_events.dlx")
    )
    assert refused(broker, "notifier", passwords, declare)


def test_there_is_no_guest(broker) -> None:
    with pytest.raises((AMQPError, ConnectionError)):
        asyncio.run(aio_pika.connect(broker.url))
