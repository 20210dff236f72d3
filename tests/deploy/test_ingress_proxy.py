"""The kind overlay's Ingress in a real nginx, in front of the split bank (each role a `microbank
serve` process on its own PostgreSQL database, events over RabbitMQ): the README's walk-through and
the live notification stream pass through it, /internal does not, and the nginx config committed
for the roles run by hand is the one the route table renders."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from microbank.drills.stack import BankStack
from microbank.roles import ROLES
from microbank.routes import nginx_config
from tests.deploy.kube import ROOT, named, of_kind, render, selects
from tests.deploy.proxy import Nginx, free_port, nginx_conf_from_ingresses
from tests.deploy.walkthrough import Reader, Step, curl_home, steps
from tests.factories import PASSWORD, BankClient, bearer, empty_database, metric_value

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
RABBIT_HOST = os.environ.get("TEST_RABBIT_HOST", "127.0.0.1")
HOST = "microbank.local"
COMMITTED_NGINX = ROOT / "deploy" / "nginx" / "microbank.conf"


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def rabbit_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of this module's own on the machine's broker, deleted afterwards."""
    vhost = f"mbtest_{uuid.uuid4().hex[:8]}"
    try:
        rabbitmqctl("add_vhost", vhost)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.fail(f"RabbitMQ (rabbitmqctl) is unavailable: {exc}", pytrace=False)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBIT_HOST}:5672/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def bank(rabbit_vhost: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BankStack]:
    roles = ["users", "accounts", "transactions", "notifications", "notifier", *(["ui"] if "ui" in ROLES else [])]
    with BankStack(ADMIN_URL, rabbit_url=rabbit_vhost, log_dir=tmp_path_factory.mktemp("roles")) as stack:
        yield stack.start(roles)


def upstreams(objects: list, bank: BankStack) -> dict[str, str]:
    """Each Service of the overlay -> the address of the role process its pods would be."""
    addresses = {}
    for service in of_kind(objects, "Service"):
        selector = {"matchLabels": service["spec"]["selector"]}
        roles = [
            d["metadata"]["name"]
            for d in of_kind(objects, "Deployment")
            if selects(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        if roles:
            running = bank.roles.get(roles[0])
            # A role this build cannot run yet gets an address where nothing listens.
            addresses[service["metadata"]["name"]] = f"127.0.0.1:{running.port if running else free_port()}"
    return addresses


@pytest.fixture(scope="module")
def ingress(bank: BankStack) -> Iterator[Nginx]:
    objects = render("kind")
    proxy = Nginx()
    proxy.start(nginx_conf_from_ingresses(objects, upstreams(objects, bank), port=proxy.port, prefix=proxy.prefix))
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def through_ingress(ingress: Nginx) -> Iterator[BankClient]:
    with httpx.Client(base_url=ingress.url, headers={"Host": HOST}, timeout=30) as http:
        yield BankClient(http)


@pytest.fixture
def empty_books(bank: BankStack) -> None:
    """The four databases as a fresh deployment has them: no rows, ids from 1."""
    for url in bank.database_urls.values():
        empty_database(url)


def test_the_readme_walk_through_runs_through_the_ingress_and_logs_no_secret(
    empty_books: None, ingress: Nginx, bank: BankStack, tmp_path: Path
) -> None:
    env = curl_home(tmp_path / "home", HOST, ingress.port)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env |= {name: value for name, value in bank.env.items() if name.endswith("_DATABASE_URL")}
    reader = Reader(f"http://{HOST}:{ingress.port}", tmp_path, env)
    walk = steps()
    assert len(walk) >= 15, "the walk-through lost its steps"

    for step in walk:
        got, expected = reader.follow(step)

        assert got == expected, step.command

    logged = "\n".join(log.read_text() for log in sorted(bank.log_dir.glob("*.log")))
    assert "POST /api/auth/token 200" in logged, "the roles logged no access line: nothing was searched"
    for name, secret in secrets_of_the_walk(walk, reader, bank).items():
        assert secret not in logged, f"a log line holds {name}"


def secrets_of_the_walk(walk: list[Step], reader: Reader, bank: BankStack) -> dict[str, str]:
    """What must never reach a log line: the walk's passwords and tokens (a token's signature
    alone is enough to be a leak), the service token and the signing key's lines."""
    found = {f"password {i}": p for i, p in enumerate(re.findall(r'"password": "([^"]+)"', str(walk)))}
    for name in ("TOKEN", "BOB_TOKEN"):
        token = reader.variables[name]
        found |= {name: token, f"the signature of {name}": token.rpartition(".")[2]}
    found["SERVICE_TOKEN"] = bank.service_token
    key_lines = [line for line in bank.private_key.splitlines() if line and not line.startswith("-----")]
    found |= {f"line {i} of the private key": line for i, line in enumerate(key_lines)}
    assert len(found) >= 8, found
    return found


def test_a_notification_streams_through_the_ingress_as_it_happens(through_ingress: BankClient) -> None:
    _, headers = through_ingress.customer()
    account = through_ingress.open_account(headers)["id"]
    through_ingress.wait_for_notifications(headers, 2, timeout=30)  # the welcome and the account: older than the stream
    events: list[str] = []
    connected = threading.Event()

    def listen() -> None:
        http = httpx.Client(base_url=str(through_ingress.http.base_url), headers={"Host": HOST}, timeout=30)
        with http, http.stream("GET", "/api/notifications/stream", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            connected.set()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(line)
                    if "Deposit of $12.34 completed" in line:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(20), "the stream did not open through the ingress"
    through_ingress.deposit(headers, account, "12.34")
    listener.join(25)

    assert not listener.is_alive(), "no event came through the ingress while the stream stayed open"
    assert len(events) == 1, events


def test_internal_postings_are_not_reachable_through_the_ingress(through_ingress: BankClient, bank: BankStack) -> None:
    _, headers = through_ingress.customer()
    account = through_ingress.open_account(headers)["id"]
    accounts = httpx.Client(base_url=bank.role("accounts").url, timeout=10)
    handled = metric_value(accounts, "http_requests_total", handler="/internal/postings", method="POST", status="2xx")
    body = {"transaction_id": 999_999, "postings": [{"account_id": account, "amount_minor": 10_000}]}

    for method in ("POST", "GET"):
        response = through_ingress.http.request(
            method, "/internal/postings", json=body, headers={"Authorization": f"Bearer {bank.service_token}"}
        )
        assert response.status_code >= 400, response.text

    assert through_ingress.balance(headers, account) == "0.00"
    after = metric_value(accounts, "http_requests_total", handler="/internal/postings", method="POST", status="2xx")
    assert after == handled
    accounts.close()


def test_an_unknown_host_gets_nothing(ingress: Nginx) -> None:
    response = httpx.get(f"{ingress.url}/api/users/me", headers={"Host": "elsewhere.example"}, timeout=10)

    assert response.status_code == 404


@pytest.mark.skipif("ui" not in ROLES, reason="ROLE=ui arrives with the UI (issue 10)")
def test_the_root_reaches_the_ui_role(through_ingress: BankClient) -> None:
    response = through_ingress.http.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_a_login_through_the_ingress_is_the_users_role(through_ingress: BankClient) -> None:
    user = through_ingress.sign_up()
    response = through_ingress.http.post("/api/auth/token", json={"email": user["email"], "password": PASSWORD})

    assert response.status_code == 200
    me = through_ingress.http.get("/api/users/me", headers=bearer(response.json()["access_token"]))
    assert me.json()["email"] == user["email"]


# --- the nginx config for the roles run by hand ---------------------------------------------


def test_the_committed_nginx_config_is_what_the_route_table_renders() -> None:
    assert COMMITTED_NGINX.read_text() == nginx_config() + "\n", (
        "regenerate it: microbank nginx-config --output deploy/nginx/microbank.conf"
    )


def test_nginx_accepts_the_committed_config(tmp_path: Path) -> None:
    proxy = Nginx()
    try:
        conf = proxy.prefix / "nginx.conf"
        conf.write_text(f"pid {proxy.prefix / 'pid'};\nevents {{}}\nhttp {{\n    include {COMMITTED_NGINX};\n}}\n")
        checked = subprocess.run(
            [proxy.binary, "-t", "-p", str(proxy.prefix), "-c", str(conf), "-e", "stderr"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        proxy.stop()

    assert checked.returncode == 0, checked.stderr


def test_the_local_config_routes_as_the_ingress_does() -> None:
    objects = render("kind")
    ingress_paths = {p["path"] for i in of_kind(objects, "Ingress") for p in i["spec"]["rules"][0]["http"]["paths"]}
    local = nginx_config()

    for path in ingress_paths - {"/"}:
        assert f"location = {path} " in local and f"location {path}/ " in local
    assert "location / " in local
    assert "/internal" not in local
    assert named(objects, "Service", "ui")["spec"]["ports"][0]["port"] == 8080
