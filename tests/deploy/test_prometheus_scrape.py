"""A real Prometheus scrapes the split bank (each role a `microbank serve` process on its own
PostgreSQL database, events over a RabbitMQ node with its Prometheus plugin) with the laptop's
scrape configuration, during a short run of deposits, withdrawals, a refusal, a transfer,
notifications and a failed log-in. Then every query of every dashboard panel returns series, and
every alert rule evaluates, as Grafana and Prometheus would run them."""

from __future__ import annotations

import calendar
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import httpx
import pytest

from microbank.drills.rabbit_node import RabbitNode
from microbank.drills.stack import SPLIT_ROLES, BankStack
from microbank.monitoring import alerts, scraping
from microbank.monitoring.files import dashboard_documents
from tests.deploy.prometheus import Prometheus
from tests.factories import PASSWORD, BankClient, move, open_account, wait_until

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
RULES = Path(__file__).resolve().parents[2] / "deploy" / "monitoring" / "rules.yml"
SCRAPE_INTERVAL = "1s"
# What Grafana puts for the variables with "All" picked, and for $__rate_interval at a 1 s scrape.
VARIABLES = {"$namespace": ".*", "$role": ".*", "$__rate_interval": "1m"}

# Produced only in a cluster, by kube-state-metrics.
OUTSIDE = {"kube_pod_container_status_restarts_total"}
# Panels of counters a healthy bank never increments in a short run: the metric must be declared
# by the bank (Prometheus knows its metadata), and its query evaluates; an empty answer is right.
QUIET = {
    "Requests shed (503)": "http_requests_shed_total",
    "Publish failures per domain": "event_publish_failures_total",
    "Recovery re-drives by outcome": "recovery_redrives_total",
    "Dead-lettered messages": "notifier_messages_total",
}
METRIC = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


@pytest.fixture(scope="module")
def booting_rabbit() -> Iterator[tuple[RabbitNode, Future]]:
    """A RabbitMQ node with its Prometheus plugin, booting (10-20 s) while the bank's databases are made."""
    node = RabbitNode(prometheus=True)
    with ThreadPoolExecutor(1) as pool:
        booted = pool.submit(node.start)
        try:
            yield node, booted
        finally:
            wait([booted])
            node.delete()


@pytest.fixture(scope="module")
def rabbit(booting_rabbit: tuple[RabbitNode, Future]) -> RabbitNode:
    return booting_rabbit[1].result()  # the node, started


@pytest.fixture(scope="module")
def bank(booting_rabbit: tuple[RabbitNode, Future], tmp_path_factory: pytest.TempPathFactory) -> Iterator[BankStack]:
    node, booted = booting_rabbit
    with BankStack(ADMIN_URL, rabbit_url=node.url, log_dir=tmp_path_factory.mktemp("roles")) as stack:
        booted.result()
        yield stack.start()


@pytest.fixture(scope="module")
def prometheus(bank: BankStack, rabbit: RabbitNode) -> Iterator[Prometheus]:
    config = scraping.laptop_config(
        {name: f"127.0.0.1:{bank.roles[name].port}" for name in SPLIT_ROLES},
        dev=None,
        rabbitmq=f"127.0.0.1:{rabbit.prometheus_port}",
        interval=SCRAPE_INTERVAL,
        rule_files=(str(RULES),),
    )
    server = Prometheus(config).start()
    try:
        server.wait(lambda: _all_up(server, len(SPLIT_ROLES) + 1), 30, "scraping every role and RabbitMQ")
        yield server
    finally:
        server.stop()


def _all_up(server: Prometheus, expected: int) -> bool:
    targets = server.targets()
    return len(targets) == expected and all(t["health"] == "up" for t in targets)


def _scraped_since(server: Prometheus, moment: float) -> bool:
    def seconds(stamp: str) -> float:  # RFC 3339 in UTC, to the nanosecond; whole seconds will do
        return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))

    return all(seconds(t["lastScrape"]) > moment for t in server.targets())


def _traffic(bank: BankStack) -> None:
    """Two customers: deposits, a withdrawal, one refused, a transfer, a wrong password."""
    users, accounts, transactions = bank.roles["users"], bank.roles["accounts"], bank.roles["transactions"]
    with httpx.Client(base_url=users.url, timeout=30) as http:
        client = BankClient(http)
        (ann, ann_headers), (_, bob_headers) = client.customer(), client.customer()
        assert http.post("/api/auth/token", json={"email": ann["email"], "password": PASSWORD + "!"}).status_code == 401
    ann_account, bob_account = open_account(accounts, ann_headers), open_account(accounts, bob_headers)
    moves = [
        (ann_headers, {"account_id": ann_account, "type": "deposit", "amount": "100.00"}, 201),
        (bob_headers, {"account_id": bob_account, "type": "deposit", "amount": "20.00"}, 201),
        (ann_headers, {"account_id": ann_account, "type": "withdrawal", "amount": "10.00"}, 201),
        (bob_headers, {"account_id": bob_account, "type": "withdrawal", "amount": "500.00"}, "refused"),
        (
            ann_headers,
            {"account_id": ann_account, "type": "transfer", "amount": "5.00", "to_account_id": bob_account},
            201,
        ),
    ]
    for number, (headers, body, status) in enumerate(moves):
        response = move(transactions, headers, f"watch-{number}", **body)
        if status == "refused":
            assert response.status_code < 500 and "insufficient" in response.text.lower(), response.text
        else:
            assert response.status_code == status, response.text
    notifications = bank.roles["notifications"]
    with httpx.Client(base_url=notifications.url, headers=ann_headers, timeout=10) as http:
        # Welcome, account opened, deposit, withdrawal, transfer out.
        wait_until(lambda: len(http.get("/api/notifications").json()) >= 5, timeout=30, what="the notifications")


@pytest.fixture(scope="module")
def after_traffic(bank: BankStack, prometheus: Prometheus) -> Prometheus:
    _traffic(bank)
    # Two scrapes after the traffic: a counter born in its last moment has two samples to rate.
    for _ in range(2):
        moment = time.time()
        prometheus.wait(lambda moment=moment: _scraped_since(prometheus, moment), 15, "scraping after the traffic")
    return prometheus


def panel_queries() -> list[tuple[str, str, str]]:
    return [
        (document["title"], panel["title"], target["expr"])
        for document in dashboard_documents().values()
        for panel in document["panels"]
        for target in panel["targets"]
    ]


def grafana_would_send(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def metrics_of(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def family(metric: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", metric)


def test_every_role_and_rabbitmq_is_scraped_with_role_and_namespace_labels(prometheus: Prometheus) -> None:
    labels = {(t["labels"]["role"], t["labels"]["namespace"]) for t in prometheus.targets()}
    assert labels == {*((role, scraping.LAPTOP_NAMESPACE) for role in SPLIT_ROLES), ("rabbitmq", "laptop")}


def test_the_dashboards_variables_offer_the_namespace_and_every_role(prometheus: Prometheus) -> None:
    offered = {}
    for variable in next(iter(dashboard_documents().values()))["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(METRIC, LABEL), as Grafana asks Prometheus for it.
            metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]).groups()
            match = grafana_would_send(metric)
            offered[variable["name"]] = set(prometheus.api(f"label/{label}/values", **{"match[]": match}))
    assert offered == {"namespace": {scraping.LAPTOP_NAMESPACE}, "role": {*SPLIT_ROLES, "rabbitmq"}}


@pytest.mark.parametrize(("dashboard", "panel", "expr"), panel_queries(), ids=lambda v: str(v)[:60])
def test_every_panel_query_returns_series(after_traffic: Prometheus, dashboard: str, panel: str, expr: str) -> None:
    result = after_traffic.query(grafana_would_send(expr))

    metrics = metrics_of(expr)
    if metrics & OUTSIDE:
        return
    if QUIET.get(panel) in metrics and not result:
        known = after_traffic.api("metadata", metric=family(QUIET[panel]))
        assert known, f"{dashboard} / {panel}: no process declares {QUIET[panel]}"
        return
    assert result, f"{dashboard} / {panel}: no series for {expr}"


@pytest.mark.parametrize("alert", alerts.ALERTS, ids=lambda a: a.name)
def test_every_alert_expression_evaluates(after_traffic: Prometheus, alert: alerts.Alert) -> None:
    after_traffic.query(alert.expr)


def test_no_alert_fires_on_a_healthy_bank(after_traffic: Prometheus) -> None:
    firing = [a["labels"] for a in after_traffic.api("alerts")["alerts"] if a["state"] == "firing"]
    assert firing == []


def test_prometheus_loaded_every_rule_and_evaluates_them_cleanly(after_traffic: Prometheus) -> None:
    def evaluated() -> list[dict]:
        rules = [rule for group in after_traffic.api("rules")["groups"] for rule in group["rules"]]
        return rules if all(rule.get("lastEvaluation", "").startswith("2") for rule in rules) else []

    rules = after_traffic.wait(evaluated, 15, "evaluating the rules")
    assert {rule["name"] for rule in rules} == {alert.name for alert in alerts.ALERTS}
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
