"""The alert rules, once: rendered as a plain Prometheus rules file and as the PrometheusRule that
kube-prometheus-stack's operator loads. Each alert's runbook is an entry of the README's
"Watching the bank" section, named after the alert."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

GROUP = "microbank"
# The operator of kube-prometheus-stack loads rules labelled with the Helm release's name.
RELEASE_LABEL = {"release": "kube-prometheus-stack"}


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: Literal["warning", "critical"]
    summary: str
    description: str

    @property
    def runbook(self) -> str:
        return f"README.md#{runbook_anchor(self.name)}"

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary, "description": self.description, "runbook": self.runbook},
        }


def runbook_anchor(alert: str) -> str:
    """The GitHub anchor of the README heading `#### Alert: <name>`."""
    return f"alert-{alert.lower()}"


ALERTS = (
    Alert(
        "MicrobankHighErrorRatio",
        'sum by (namespace, role) (rate(http_requests_total{status="5xx"}[5m]))'
        " / sum by (namespace, role) (rate(http_requests_total[5m])) > 0.05",
        "5m",
        "critical",
        "{{ $labels.role }} answers more than 5% of requests with a 5xx",
        "{{ $labels.role }} in {{ $labels.namespace }} answered {{ $value | humanizePercentage }} of its"
        " requests with a server error over the last 5 minutes.",
    ),
    Alert(
        "MicrobankHighLatencyP95",
        "histogram_quantile(0.95, sum by (namespace, role, le) (rate(http_request_duration_seconds_bucket"
        '{handler!~"/metrics|/api/notifications/stream"}[5m]))) > 0.5',
        "10m",
        "warning",
        "{{ $labels.role }} serves its slowest 5% of requests in more than 0.5 s",
        "p95 latency of {{ $labels.role }} in {{ $labels.namespace }} is {{ $value | humanizeDuration }}.",
    ),
    Alert(
        "MicrobankRoleDown",
        'up{role!=""} == 0',
        "2m",
        "critical",
        "Prometheus cannot scrape {{ $labels.role }} at {{ $labels.instance }}",
        "The /metrics of {{ $labels.role }} in {{ $labels.namespace }} has not answered for 2 minutes:"
        " the process is down, or unreachable from Prometheus.",
    ),
    Alert(
        "MicrobankPodCrashLooping",
        'increase(kube_pod_container_status_restarts_total{container="microbank"}[10m]) >= 3',
        "0m",
        "critical",
        "{{ $labels.pod }} restarted {{ $value }} times in 10 minutes",
        "The microbank container of {{ $labels.pod }} in {{ $labels.namespace }} keeps restarting"
        " (kube-state-metrics): it crashes, or fails its liveness probe.",
    ),
    Alert(
        "MicrobankOutboxStuck",
        "max by (namespace, role, domain) (outbox_oldest_unsent_age_seconds) > 60",
        "2m",
        "warning",
        "The {{ $labels.domain }} outbox has held an event for more than a minute",
        "The oldest unpublished {{ $labels.domain }} event in {{ $labels.namespace }} is"
        " {{ $value | humanizeDuration }} old: the relay cannot reach RabbitMQ, or is not running.",
    ),
    Alert(
        "MicrobankTransactionPending",
        "max by (namespace, role) (transactions_oldest_pending_age_seconds) > 60",
        "1m",
        "critical",
        "A transaction has been pending for more than a minute",
        "The oldest pending transaction in {{ $labels.namespace }} is {{ $value | humanizeDuration }} old:"
        " money is on its way and not arriving (accounts unreachable, or recovery not running).",
    ),
    Alert(
        "MicrobankMessagesDeadLettered",
        '(sum by (namespace) (increase(notifier_messages_total{outcome="dead_lettered"}[10m])) > 0)'
        ' or (sum by (namespace) (rabbitmq_queue_messages{queue="notifications.dlq"}) > 0)',
        "0m",
        "warning",
        "Notifications are being dead-lettered",
        "The notifier in {{ $labels.namespace }} parked messages it could not handle in notifications.dlq:"
        " some customers will not see a notification until they are replayed.",
    ),
    Alert(
        "MicrobankEventLagHigh",
        "histogram_quantile(0.99, sum by (namespace, le) (rate(event_lag_seconds_bucket[5m]))) > 30",
        "5m",
        "warning",
        "Notifications arrive more than 30 s after the event",
        "p99 of the time from an event's commit to its notification in {{ $labels.namespace }} is"
        " {{ $value | humanizeDuration }}.",
    ),
    Alert(
        "MicrobankQueueBacklog",
        'sum by (namespace, queue) (rabbitmq_queue_messages_ready{queue="notifications"}) > 1000',
        "5m",
        "warning",
        "{{ $value }} messages wait in {{ $labels.queue }}",
        "RabbitMQ holds more than 1000 ready messages in {{ $labels.queue }} ({{ $labels.namespace }}):"
        " the notifier is down or slower than the bank.",
    ),
)


def rules_file() -> dict[str, Any]:
    """A Prometheus `rule_files` document."""
    return {"groups": [{"name": GROUP, "rules": [alert.rule() for alert in ALERTS]}]}


def prometheus_rule() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "microbank", "labels": {"app.kubernetes.io/name": "microbank", **RELEASE_LABEL}},
        "spec": rules_file(),
    }
