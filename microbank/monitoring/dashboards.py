"""The four Grafana dashboards, panel by panel: the seed's panels, kept, and what a bank adds.

Each panel is described here as data (title, kind, queries, unit) and rendered with Grafana's own
typed builders (grafana-foundation-sdk), so the JSON is what Grafana's schema says it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from microbank.monitoring.promql import BROKER, RATE, quantile, rate, sel

Kind = Literal["timeseries", "stat", "gauge", "piechart"]
DATASOURCE = "datasource"
TAG = "microbank"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    description: str
    kind: Kind = "timeseries"
    unit: str = "short"
    # (from value, colour); the first step's value is None: "everything below the next".
    thresholds: tuple[tuple[float | None, str], ...] = ()
    min: float | None = None
    max: float | None = None
    width: int = 12
    # value -> (text, colour), e.g. up's 1 and 0 shown as UP and DOWN.
    mappings: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default=())

    @property
    def filename(self) -> str:
        return f"{self.uid.removeprefix('microbank-')}.json"


COMPLETED, REJECTED = 'status="completed"', 'status="rejected"'
OK, SERVER_ERROR = 'status="2xx"', 'status="5xx"'
NOT_SCRAPES = 'handler!="/metrics"'
# /metrics is Prometheus itself; the stream is one request per open page, held for hours.
NOT_TIMED = 'handler!~"/metrics|/api/notifications/stream"'
CREATED = ('handler=~"/api/users|/api/accounts"', 'method="POST"', OK)
DEAD_LETTER_QUEUE = 'queue="notifications.dlq"'
DEAD_LETTERED = 'outcome="dead_lettered"'


def q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


SERVICES = Dashboard(
    "microbank-services",
    "microbank / services overview",
    "Requests, errors and latency of every role, and what they wait on (in-flight requests, pools).",
    (
        Panel(
            "Request rate (req/s)",
            (q(rate("http_requests_total", by="role"), "{{role}}"),),
            "Requests served per second by each role, /metrics scrapes included.",
            unit="reqps",
        ),
        Panel(
            "Average response time",
            (
                q(
                    f"{rate('http_request_duration_seconds_sum', by='role')}"
                    f" / {rate('http_request_duration_seconds_count', by='role')}",
                    "{{role}}",
                ),
            ),
            "Mean time to serve a request, per role.",
            unit="s",
        ),
        Panel(
            "Total requests",
            (q(f"sum(http_requests_total{sel()})"),),
            "Requests served since the processes started.",
            kind="stat",
            width=6,
        ),
        Panel(
            "Requests by service",
            (q(f"sum by (role) (http_requests_total{sel()})", "{{role}}"),),
            "Share of all requests each role served.",
            kind="piechart",
            width=6,
        ),
        Panel(
            "Requests by status code",
            (q(rate("http_requests_total", by="status"), "{{status}}"),),
            "2xx, 4xx and 5xx per second: an error spike shows here first.",
            unit="reqps",
        ),
        Panel(
            "Requests by handler",
            (q(rate("http_requests_total", NOT_SCRAPES, by="handler, role"), "{{role}} {{handler}}"),),
            "Which route templates are busy (no raw paths: ids never become labels).",
            unit="reqps",
        ),
        Panel(
            "Error ratio (5xx)",
            (
                # A role without a 5xx shows 0 rather than no line at all.
                q(
                    f"({rate('http_requests_total', SERVER_ERROR, by='role')}"
                    f" or {rate('http_requests_total', by='role')} * 0)"
                    f" / {rate('http_requests_total', by='role')}",
                    "{{role}}",
                ),
            ),
            "Share of requests answered with a 5xx; the MicrobankHighErrorRatio alert fires above 5%.",
            unit="percentunit",
        ),
        Panel(
            "Latency p50 / p95 / p99 by role",
            tuple(
                q(quantile(p, "http_request_duration_seconds", NOT_TIMED, by="role"), f"p{round(p * 100)} {{{{role}}}}")
                for p in (0.5, 0.95, 0.99)
            ),
            "Request duration percentiles per role (the live stream excluded).",
            unit="s",
        ),
        Panel(
            "Latency p95 by handler",
            (
                q(
                    f"histogram_quantile(0.95, sum by (le, role, handler) "
                    f"(rate(http_request_duration_seconds_bucket{sel(NOT_TIMED)}[{RATE}])))",
                    "{{role}} {{handler}}",
                ),
            ),
            "The slowest routes: p95 duration per route template.",
            unit="s",
        ),
        Panel(
            "Requests in progress",
            (q(f"sum by (role) (http_requests_in_progress{sel()})", "{{role}}"),),
            "Requests being served right now; a climb with flat throughput means something is waiting.",
        ),
        Panel(
            "Requests shed (503)",
            (q(rate("http_requests_shed_total", by="role, handler"), "{{role}} {{handler}}"),),
            "Requests refused by back-pressure with a 503 and Retry-After, instead of queueing forever.",
            unit="reqps",
        ),
        Panel(
            "Connection pool saturation",
            (
                q(
                    f"sum by (role, domain) (db_pool_checked_out{sel()}) / sum by (role, domain) (db_pool_size{sel()})",
                    "{{role}} {{domain}}",
                ),
            ),
            "Database connections in use over the pool's size; at 100% requests queue for a connection.",
            unit="percentunit",
            min=0,
            max=1,
        ),
        Panel(
            "Waiting for a database connection",
            (q(f"sum by (role, domain) (db_pool_waiting{sel()})", "{{role}} {{domain}}"),),
            "Requests queued for a pooled connection: the explanation of a 503 under load.",
        ),
    ),
)

BUSINESS = Dashboard(
    "microbank-business",
    "microbank / business",
    "Money moving: transactions by type and outcome, amounts, refusals, sign-ups and notifications.",
    (
        Panel(
            "Transaction rate (per minute)",
            (q(f"{rate('transactions_total', COMPLETED)} * 60", "completed"),),
            "Completed deposits, withdrawals and transfers per minute.",
            unit="short",
        ),
        Panel(
            "User & account creation rate (per minute)",
            (
                q(
                    f"{rate('http_requests_total', *CREATED, by='handler')} * 60",
                    "{{handler}}",
                ),
            ),
            "Sign-ups and accounts opened per minute.",
        ),
        Panel(
            "Total transactions (today)",
            (q(f"sum(increase(transactions_total{sel(COMPLETED)}[24h]))"),),
            "Transactions completed in the last 24 hours.",
            kind="stat",
            width=6,
        ),
        Panel(
            "Total users created (today)",
            (q(f"sum(increase(signups_total{sel()}[24h]))"),),
            "Sign-ups in the last 24 hours.",
            kind="stat",
            width=6,
        ),
        Panel(
            "Notifications sent (today)",
            (q(f"sum(increase(notifications_stored_total{sel()}[24h]))"),),
            "Notifications stored for customers in the last 24 hours.",
            kind="stat",
            width=6,
        ),
        Panel(
            "Success rate (%)",
            (q(f"{rate('http_requests_total', OK, NOT_SCRAPES)} / {rate('http_requests_total', NOT_SCRAPES)} * 100"),),
            "Share of requests answered 2xx. Red below 90%, yellow to 95%, green above.",
            kind="gauge",
            unit="percent",
            thresholds=((None, "red"), (90, "yellow"), (95, "green")),
            min=0,
            max=100,
            width=6,
        ),
        Panel(
            "Error rate by service",
            (q(rate("http_requests_total", 'status=~"4xx|5xx"', by="role"), "{{role}}"),),
            "4xx and 5xx answers per second by role: refused input and failures.",
            unit="reqps",
        ),
        Panel(
            "Transactions by type and outcome (per minute)",
            (q(f"{rate('transactions_total', by='type, status')} * 60", "{{type}} {{status}}"),),
            "Every transaction that reached its outcome, by type and outcome.",
        ),
        Panel(
            "Money moved by type and currency (per minute)",
            (q(f"{rate('money_moved_minor_units_total', by='type, currency')} * 60 / 100", "{{type}} {{currency}}"),),
            "Amounts of completed transactions per minute, in major units of two-decimal currencies.",
        ),
        Panel(
            "Refusals by reason (per minute)",
            (q(f"{rate('transactions_total', REJECTED, by='type, reason')} * 60", "{{type}} {{reason}}"),),
            "Transactions the bank refused, and why (insufficient funds, closed or foreign account...).",
        ),
        Panel(
            "Sign-ups (per minute)",
            (q(f"{rate('signups_total')} * 60", "sign-ups"),),
            "New customers per minute.",
        ),
        Panel(
            "Log-in attempts by outcome (per minute)",
            (q(f"{rate('login_attempts_total', by='outcome')} * 60", "{{outcome}}"),),
            "Succeeded, wrong password and throttled log-ins: a wall of wrong passwords is an attack.",
        ),
    ),
)

SYSTEM = Dashboard(
    "microbank-system",
    "microbank / system health",
    "The processes: memory, CPU, file descriptors, garbage collection, up and restarts.",
    (
        Panel(
            "Memory usage by service",
            (q(f"process_resident_memory_bytes{sel()}", "{{role}} {{instance}}"),),
            "Resident memory of each process; the pods' limit is 256 MiB.",
            unit="bytes",
        ),
        Panel(
            "CPU usage by service",
            (q(f"rate(process_cpu_seconds_total{sel()}[{RATE}])", "{{role}} {{instance}}"),),
            "CPU time per second of each process (1 = one core).",
            unit="percentunit",
        ),
        Panel(
            "Open file descriptors",
            (q(f"process_open_fds{sel()}", "{{role}} {{instance}}"),),
            "Sockets and files each process holds open; a steady climb is a leak.",
        ),
        Panel(
            "Python GC collections",
            (q(rate("python_gc_collections_total", by="role, generation"), "{{role}} gen {{generation}}"),),
            "Garbage collections per second by generation.",
        ),
        Panel(
            "Service status",
            (q(f"min by (role) (up{sel()})", "{{role}}"),),
            "Whether Prometheus reaches each role's /metrics: 1 up (green), 0 down (red).",
            kind="stat",
            thresholds=((None, "red"), (1, "green")),
            mappings=(("1", "UP", "green"), ("0", "DOWN", "red")),
            width=24,
        ),
        Panel(
            "Container restarts (1h)",
            (
                q(
                    "sum by (namespace, pod) (increase(kube_pod_container_status_restarts_total"
                    '{namespace=~"$namespace", container="microbank"}[1h]))',
                    "{{pod}}",
                ),
            ),
            "Restarts of the bank's containers, from kube-state-metrics; a rising line is a crash loop.",
        ),
        Panel(
            "Process restarts (1h)",
            (q(f"changes(process_start_time_seconds{sel()}[1h])", "{{role}} {{instance}}"),),
            "How often each process started again in the last hour, wherever it runs.",
        ),
        Panel(
            "Build",
            (q(f"max by (role, version) (microbank_build_info{sel()})", "{{role}} {{version}}"),),
            "The version each role runs: two versions side by side mean a roll-out is under way.",
            kind="stat",
        ),
    ),
)

PIPELINE = Dashboard(
    "microbank-pipeline",
    "microbank / event pipeline",
    "From the outbox to the notifier: backlogs, publishing, outcomes, lag, dead letters and stuck money.",
    (
        Panel(
            "Outbox backlog per domain",
            (q(f"max by (domain) (outbox_backlog{sel()})", "{{domain}}"),),
            "Events committed but not yet published; it should drain to 0 between bursts.",
        ),
        Panel(
            "Outbox oldest unsent event age",
            (q(f"max by (domain) (outbox_oldest_unsent_age_seconds{sel()})", "{{domain}}"),),
            "How long the oldest undelivered event has waited; MicrobankOutboxStuck fires above 60 s.",
            unit="s",
        ),
        Panel(
            "Events published per domain",
            (q(rate("events_published_total", by="domain"), "{{domain}}"),),
            "Outbox events delivered to RabbitMQ per second.",
            unit="ops",
        ),
        Panel(
            "Publish failures per domain",
            (q(rate("event_publish_failures_total", by="domain"), "{{domain}}"),),
            "Publishes the broker refused or did not confirm; the relay retries them.",
            unit="ops",
        ),
        Panel(
            "Notifier outcomes",
            (q(rate("notifier_messages_total", by="outcome"), "{{outcome}}"),),
            "Messages the notifier stored, found duplicate, retried or dead-lettered, per second.",
            unit="ops",
        ),
        Panel(
            "Event lag p50 / p99",
            tuple(
                q(
                    f"histogram_quantile({p}, sum by (le) (rate(event_lag_seconds_bucket{sel()}[{RATE}])))",
                    f"p{round(p * 100)}",
                )
                for p in (0.5, 0.99)
            ),
            "From an event's commit to its notification being stored.",
            unit="s",
        ),
        Panel(
            "Dead-lettered messages",
            (
                q(f"sum by (queue) (rabbitmq_queue_messages{sel(DEAD_LETTER_QUEUE, scope=BROKER)})", "in {{queue}}"),
                q(f"sum(increase(notifier_messages_total{sel(DEAD_LETTERED)}[1h]))", "dead-lettered (1h)"),
            ),
            "Messages parked in the dead-letter queue, and how many the notifier parked in the last hour.",
        ),
        Panel(
            "Pending transactions",
            (
                q(f"sum(transactions_pending{sel()})", "pending"),
                q(f"max(transactions_oldest_pending_age_seconds{sel()})", "oldest age (s)"),
            ),
            "Money on its way: transactions recorded but not finished, and the age of the oldest.",
        ),
        Panel(
            "Recovery re-drives by outcome",
            (q(rate("recovery_redrives_total", by="outcome"), "{{outcome}}"),),
            "Pending transactions recovery drove again, and what came of it.",
            unit="ops",
        ),
        Panel(
            "RabbitMQ queue depth",
            (
                q(f"sum by (queue) (rabbitmq_queue_messages_ready{sel(scope=BROKER)})", "ready {{queue}}"),
                q(f"sum by (queue) (rabbitmq_queue_messages_unacked{sel(scope=BROKER)})", "unacked {{queue}}"),
            ),
            "Messages waiting in each queue and delivered but not acknowledged (RabbitMQ's own plugin).",
        ),
    ),
)

DASHBOARDS = (SERVICES, BUSINESS, SYSTEM, PIPELINE)


# grafana-foundation-sdk is a development dependency (generating is a dev-time command), imported
# where it is used, so that the package imports without it.


def _datasource():
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    return DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE}}}")


def _variables() -> list:
    from grafana_foundation_sdk.builders.dashboard import DatasourceVariable, QueryVariable
    from grafana_foundation_sdk.models.dashboard import VariableRefresh, VariableSort

    def label_values(name: str, label: str, query: str) -> QueryVariable:
        return (
            QueryVariable(name)
            .label(label)
            .datasource(_datasource())
            .query(query)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )

    return [
        DatasourceVariable(DATASOURCE).label("Data source").type("prometheus"),
        # `up` has the target labels of every scraped role, whatever its code exports.
        label_values("namespace", "Namespace", 'label_values(up{role!=""}, namespace)'),
        label_values("role", "Role", 'label_values(up{namespace=~"$namespace", role!=""}, role)'),
    ]


def _panel(number: int, panel: Panel):
    from grafana_foundation_sdk.builders import gauge, piechart, prometheus, stat, timeseries

    kinds = {"timeseries": timeseries, "stat": stat, "gauge": gauge, "piechart": piechart}
    builder = (
        kinds[panel.kind]
        .Panel()
        .id(number)
        .title(panel.title)
        .description(panel.description)
        .datasource(_datasource())
        .height(8)
        .span(panel.width)
    )
    for ref, query in zip("ABCDEFGH", panel.queries, strict=False):
        target = prometheus.Dataquery().expr(query.expr).ref_id(ref)
        builder = builder.with_target(target.legend_format(query.legend) if query.legend else target)
    return _with_fields(builder, panel)


def _with_fields(builder, panel: Panel):
    """The panel's unit, range, thresholds and value mappings."""
    from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
    from grafana_foundation_sdk.models.dashboard import Threshold, ThresholdsMode, ValueMap, ValueMappingResult

    builder = builder.unit(panel.unit)
    if panel.thresholds:
        steps = [Threshold(value=value, color=colour) for value, colour in panel.thresholds]
        builder = builder.thresholds(ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
    if panel.mappings:
        shown = {value: ValueMappingResult(text=text, color=colour) for value, text, colour in panel.mappings}
        builder = builder.mappings([ValueMap(options=shown)])
    if panel.min is not None:
        builder = builder.min(panel.min)
    if panel.max is not None:
        builder = builder.max(panel.max)
    return builder


def build(dashboard: Dashboard):
    from grafana_foundation_sdk.builders.dashboard import Dashboard as DashboardBuilder
    from grafana_foundation_sdk.builders.dashboard import DashboardLink
    from grafana_foundation_sdk.models.dashboard import DashboardLinkType

    # The other three, a click away, keeping the time range and the namespace and role picked.
    siblings = (
        DashboardLink("microbank")
        .type(DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    )

    builder = (
        DashboardBuilder(dashboard.title)
        .uid(dashboard.uid)
        .description(dashboard.description)
        .tags([TAG])
        .link(siblings)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .variables(_variables())
    )
    for number, panel in enumerate(dashboard.panels, start=1):
        builder = builder.with_panel(_panel(number, panel))
    return builder.build()


def render(dashboard: Dashboard) -> str:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    return json.dumps(json.loads(JSONEncoder(sort_keys=True).encode(build(dashboard))), indent=2, sort_keys=True)
