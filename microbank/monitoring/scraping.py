"""How Prometheus finds the bank, and how Grafana finds Prometheus and the dashboards.

Three ways to scrape, each adding the `role` and `namespace` target labels the dashboards and
alerts select on: ServiceMonitors for kube-prometheus-stack, a plain Kubernetes scrape config
(pods annotated `prometheus.io/scrape: "true"`) for a Prometheus without the operator, and static
targets for a laptop (`microbank dev`, or the roles run by hand).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from microbank.monitoring.alerts import RELEASE_LABEL

# Every role but `all`, which is `microbank dev` and scraped on its own.
SPLIT_ROLES = ("users", "accounts", "transactions", "notifications", "notifier", "ui")
LAPTOP_NAMESPACE = "laptop"
COMPONENT_LABEL = "__meta_kubernetes_pod_label_app_kubernetes_io_component"
# Per queue, whatever the broker's prometheus.return_per_object_metrics says.
RABBITMQ_METRICS = "/metrics/per-object"


def role_ports() -> dict[str, int]:
    from microbank.roles import ROLES

    return {role: ROLES[role].port for role in SPLIT_ROLES}


def _static(job: str, targets: Mapping[str, str], interval: str, path: str = "/metrics") -> dict[str, Any]:
    return {
        "job_name": job,
        "scrape_interval": interval,
        "metrics_path": path,
        "static_configs": [
            {"targets": [address], "labels": {"role": role, "namespace": LAPTOP_NAMESPACE}}
            for role, address in targets.items()
        ],
    }


def laptop_config(
    roles: Mapping[str, str],
    *,
    dev: str | None,
    rabbitmq: str | None,
    interval: str = "5s",
    rule_files: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A prometheus.yml of static targets: `roles` maps a role to its host:port."""
    jobs = [_static("microbank", roles, interval)]
    if dev:
        jobs.insert(0, _static("microbank-dev", {"all": dev}, interval))
    if rabbitmq:
        jobs.append(_static("rabbitmq", {"rabbitmq": rabbitmq}, interval, RABBITMQ_METRICS))
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": list(rule_files),
        "scrape_configs": jobs,
    }


def laptop() -> dict[str, Any]:
    """The roles on their README ports, `microbank dev` on :8000, RabbitMQ's plugin on :15692."""
    return laptop_config(
        {role: f"127.0.0.1:{port}" for role, port in role_ports().items()},
        dev="127.0.0.1:8000",
        rabbitmq="127.0.0.1:15692",
        rule_files=("rules.yml",),
    )


def _pods(job: str, app: str, port_name: str, role: list[dict[str, Any]], path: str = "/metrics") -> dict[str, Any]:
    keep = [
        {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "regex": "true", "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "regex": app, "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": port_name, "action": "keep"},
    ]
    labels = [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]
    return {
        "job_name": job,
        "metrics_path": path,
        "kubernetes_sd_configs": [{"role": "pod"}],
        "relabel_configs": [*keep, *labels, *role],
    }


def kubernetes_scrape_configs() -> dict[str, Any]:
    """`scrape_configs` for a Prometheus in the cluster without the operator."""
    return {
        "scrape_configs": [
            _pods("microbank", "microbank", "http", [{"source_labels": [COMPONENT_LABEL], "target_label": "role"}]),
            _pods(
                "rabbitmq",
                "rabbitmq",
                "prometheus",
                [{"target_label": "role", "replacement": "rabbitmq"}],
                RABBITMQ_METRICS,
            ),
        ]
    }


def _service_monitor(
    name: str, selector: dict[str, str], port: str, role: dict[str, Any], path: str = "/metrics"
) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "microbank", **RELEASE_LABEL}},
        "spec": {
            "selector": {"matchLabels": selector},
            "endpoints": [{"port": port, "path": path, "interval": "15s", "relabelings": [role]}],
        },
    }


def service_monitors() -> list[dict[str, Any]]:
    """One ServiceMonitor per role's Service, and RabbitMQ's plugin; the operator adds `namespace`."""
    monitors = [
        _service_monitor(
            role,
            {"app.kubernetes.io/name": "microbank", "app.kubernetes.io/component": role},
            "http",
            {"sourceLabels": [COMPONENT_LABEL], "targetLabel": "role"},
        )
        for role in SPLIT_ROLES
    ]
    monitors.append(
        _service_monitor(
            "rabbitmq",
            {"app.kubernetes.io/name": "rabbitmq"},
            "prometheus",
            {"targetLabel": "role", "replacement": "rabbitmq"},
            RABBITMQ_METRICS,
        )
    )
    return monitors


def grafana_datasource(url: str) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "datasources": [{"name": "Prometheus", "type": "prometheus", "access": "proxy", "url": url, "isDefault": True}],
    }


def grafana_dashboard_provider(path: str) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "microbank",
                "folder": "microbank",
                "type": "file",
                "allowUiUpdates": False,
                "options": {"path": path, "foldersFromFilesStructure": False},
            }
        ],
    }


def dashboard_config_map(name: str, filename: str, text: str) -> dict[str, Any]:
    """A dashboard as kube-prometheus-stack's Grafana sidecar loads it: a labelled ConfigMap."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"grafana-dashboard-{name}",
            "labels": {"grafana_dashboard": "1", "app.kubernetes.io/name": "microbank"},
            "annotations": {"grafana_folder": "microbank"},
        },
        "data": {filename: text},
    }
