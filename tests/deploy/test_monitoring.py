"""The monitoring an operator installs: the committed dashboards, rules and scrape configs are what
`microbank monitoring` generates now; the dashboards load in Grafana's own types; the rules pass
promtool's check and its unit tests (every alert fires when it should and only then); every alert's
runbook is a README entry; and every scrape configuration labels targets with role and namespace."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from microbank.monitoring import alerts, dashboards, scraping
from microbank.monitoring.files import generated
from tests.deploy.kube import named, of_kind
from tests.deploy.prometheus import Prometheus
from tests.processes import MICROBANK, free_port

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES_TEST = MONITORING / "rules-test.yml"
README = ROOT / "README.md"


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is not installed (apt-get install prometheus)"
    return found


# --- generated files -------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(generated()))
def test_the_committed_file_is_what_the_code_generates(path: str) -> None:
    committed = ROOT / path
    assert committed.exists(), f"{path} is missing: regenerate with `microbank monitoring`"
    assert committed.read_text() == generated()[path], f"{path} drifted: regenerate with `microbank monitoring`"


def test_the_command_writes_every_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(MICROBANK), "monitoring", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )

    assert result.returncode == 0, result.stderr
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert written == set(generated())
    assert (tmp_path / "dashboards" / "services.json").read_text() == (
        ROOT / "dashboards" / "services.json"
    ).read_text()


# --- the dashboards --------------------------------------------------------------------------


def committed_dashboards() -> dict[str, dict]:
    return {
        board.filename: json.loads((ROOT / "dashboards" / board.filename).read_text())
        for board in dashboards.DASHBOARDS
    }


@pytest.mark.parametrize("filename", [board.filename for board in dashboards.DASHBOARDS])
def test_the_dashboard_loads_in_grafanas_types_without_losing_a_field(filename: str) -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard

    document = committed_dashboards()[filename]

    decoded = Dashboard.from_json(document)

    assert json.loads(JSONEncoder().encode(decoded)) == document
    assert {panel["type"] for panel in document["panels"]} <= {"timeseries", "stat", "gauge", "piechart"}


def test_there_are_the_four_dashboards_with_the_seeds_panels() -> None:
    titles = {board.title: {panel.title for panel in board.panels} for board in dashboards.DASHBOARDS}
    seed = {
        "microbank / services overview": {
            "Request rate (req/s)",
            "Average response time",
            "Total requests",
            "Requests by service",
            "Requests by status code",
            "Requests by handler",
        },
        "microbank / business": {
            "Transaction rate (per minute)",
            "User & account creation rate (per minute)",
            "Total transactions (today)",
            "Total users created (today)",
            "Notifications sent (today)",
            "Error rate by service",
            "Success rate (%)",
        },
        "microbank / system health": {
            "Memory usage by service",
            "CPU usage by service",
            "Open file descriptors",
            "Python GC collections",
            "Service status",
        },
        "microbank / event pipeline": {"Outbox backlog per domain", "RabbitMQ queue depth", "Dead-lettered messages"},
    }
    for title, panels in seed.items():
        assert panels <= titles[title], f"{title} lost {panels - titles[title]}"


@pytest.mark.parametrize("filename", [board.filename for board in dashboards.DASHBOARDS])
def test_every_panel_queries_the_datasource_variable_and_the_namespace(filename: str) -> None:
    document = committed_dashboards()[filename]
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "role"} <= set(variables)
    for panel in document["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert 'namespace=~"$namespace"' in target["expr"], f"{panel['title']}: {target['expr']}"


def test_the_success_gauge_keeps_the_seeds_thresholds() -> None:
    gauge = next(p for p in committed_dashboards()["business.json"]["panels"] if p["title"] == "Success rate (%)")
    steps = gauge["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["value"], s["color"]) for s in steps] == [(None, "red"), (90, "yellow"), (95, "green")]


# --- the alert rules -------------------------------------------------------------------------


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(MONITORING / "rules.yml")], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(alerts.ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run([promtool(), "test", "rules", str(RULES_TEST)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_stays_silent() -> None:
    cases = yaml.safe_load(RULES_TEST.read_text())["tests"]
    fired, silent = set(), set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {alert.name for alert in alerts.ALERTS}
    assert fired == names
    assert silent == names


def test_the_prometheus_rule_holds_the_same_rules_as_the_plain_file() -> None:
    plain = yaml.safe_load((MONITORING / "rules.yml").read_text())
    operator = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())

    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"] == plain


def github_anchors(markdown: str) -> set[str]:
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_alert_has_a_summary_a_description_and_a_runbook_in_the_readme() -> None:
    anchors = github_anchors(README.read_text())
    for alert in alerts.ALERTS:
        annotations = alert.rule()["annotations"]
        assert annotations["summary"] and annotations["description"], alert.name
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "README.md"
        assert anchor in anchors, f"{alert.name}: README has no heading for #{anchor}"


def test_the_readme_troubleshoots_what_the_seed_did() -> None:
    anchors = github_anchors(README.read_text())
    assert {"watching-the-bank", "metrics-return-404", "targets-are-down", "panels-show-no-data"} <= anchors
    assert "grafana-cannot-reach-prometheus" in anchors


# --- scraping --------------------------------------------------------------------------------


def test_promtool_checks_the_laptop_config() -> None:
    result = subprocess.run(
        [promtool(), "check", "config", str(MONITORING / "prometheus-laptop.yml")], capture_output=True, text=True
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_laptop_config_scrapes_dev_and_every_role_on_its_readme_port() -> None:
    config = yaml.safe_load((MONITORING / "prometheus-laptop.yml").read_text())
    targets = {
        static["labels"]["role"]: static["targets"][0]
        for job in config["scrape_configs"]
        for static in job["static_configs"]
    }
    assert targets["all"] == "127.0.0.1:8000"
    assert {
        role: int(address.rsplit(":", 1)[1]) for role, address in targets.items() if role not in ("all", "rabbitmq")
    } == scraping.role_ports()
    assert targets["rabbitmq"] == "127.0.0.1:15692"


def _pod(name: str, app: str, port: str, *, annotated: bool = True, component: str = "") -> dict:
    """A target as Prometheus' Kubernetes pod discovery describes one container port."""
    labels = {
        "__meta_kubernetes_namespace": "bank",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
        "__meta_kubernetes_pod_label_app_kubernetes_io_component": component,
        "__meta_kubernetes_pod_container_port_name": port,
    }
    if annotated:
        labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] = "true"
    return {"targets": [f"127.0.0.1:{free_port()}"], "labels": labels}


def test_the_kubernetes_scrape_configs_keep_the_metrics_ports_and_label_role_and_namespace(tmp_path: Path) -> None:
    # Debian's Prometheus is built without Kubernetes discovery: the same relabelling, fed what it discovers.
    pods = [
        _pod("users-1", "microbank", "http", component="users"),
        _pod("notifier-1", "microbank", "http", component="notifier"),
        _pod("users-1", "microbank", "debug", component="users"),
        _pod("stranger-1", "microbank", "http", annotated=False, component="users"),
        _pod("rabbitmq-0", "rabbitmq", "prometheus", component="broker"),
        _pod("rabbitmq-0", "rabbitmq", "amqp", component="broker"),
        _pod("grafana-1", "grafana", "http", component="grafana"),
    ]
    (tmp_path / "pods.json").write_text(json.dumps(pods))
    jobs = yaml.safe_load((MONITORING / "prometheus-kubernetes.yml").read_text())["scrape_configs"]
    for job in jobs:
        del job["kubernetes_sd_configs"]
        job["file_sd_configs"] = [{"files": [str(tmp_path / "pods.json")]}]
    server = Prometheus({"global": {"scrape_interval": "1h"}, "scrape_configs": jobs}).start()
    try:
        targets = server.wait(lambda: len(server.targets()) >= 3 and server.targets(), 15, "discovering the pods")
        kept = {
            (t["labels"]["job"], t["labels"]["pod"], t["labels"]["role"], t["labels"]["namespace"]) for t in targets
        }
    finally:
        server.stop()

    assert kept == {
        ("microbank", "users-1", "users", "bank"),
        ("microbank", "notifier-1", "notifier", "bank"),
        ("rabbitmq", "rabbitmq-0", "rabbitmq", "bank"),
    }


def test_the_kubernetes_config_labels_targets_with_role_and_namespace() -> None:
    config = yaml.safe_load((MONITORING / "prometheus-kubernetes.yml").read_text())
    for job in config["scrape_configs"]:
        targets = {relabel.get("target_label") for relabel in job["relabel_configs"]}
        assert {"role", "namespace"} <= targets, job["job_name"]


def test_every_pod_prometheus_scrapes_is_annotated_and_names_its_metrics_port(objects: list) -> None:
    for workload in of_kind(objects, "Deployment", "StatefulSet"):
        template = workload["spec"]["template"]
        app = template["metadata"]["labels"]["app.kubernetes.io/name"]
        if app not in ("microbank", "rabbitmq"):
            continue
        assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true", workload["metadata"]["name"]
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert ("http" if app == "microbank" else "prometheus") in ports


def test_every_service_monitor_selects_a_service_with_its_port(objects: list) -> None:
    monitors = of_kind(objects, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {*scraping.SPLIT_ROLES, "rabbitmq"}
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = [
            s for s in of_kind(objects, "Service") if selector.items() <= s["metadata"].get("labels", {}).items()
        ]
        assert services, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        ports = {p["name"] for s in services for p in s["spec"]["ports"]}
        assert monitor["spec"]["endpoints"][0]["port"] in ports
        assert monitor["spec"]["endpoints"][0]["relabelings"][0]["targetLabel"] == "role"


def test_the_overlays_carry_the_rules_and_the_dashboards(objects: list) -> None:
    rule = named(objects, "PrometheusRule", "microbank")
    assert rule["spec"] == alerts.rules_file()
    boards = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
    loaded = {name: json.loads(text) for board in boards for name, text in board["data"].items()}
    assert loaded == committed_dashboards()
