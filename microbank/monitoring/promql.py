"""The PromQL the dashboards share: every bank query is narrowed to the `namespace` and `role`
target labels the scrape configurations add, through the dashboards' variables of those names."""

from __future__ import annotations

# Grafana fills these in; `$__rate_interval` is at least four scrape intervals, so a rate has samples.
RATE = "$__rate_interval"
BANK = 'namespace=~"$namespace", role=~"$role"'
# RabbitMQ's own exporter is one target of the namespace, whatever roles are picked.
BROKER = 'namespace=~"$namespace"'


def sel(*matchers: str, scope: str = BANK) -> str:
    return "{" + ", ".join((scope, *matchers)) + "}"


def rate(metric: str, *matchers: str, by: str = "", scope: str = BANK) -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{sel(*matchers, scope=scope)}[{RATE}]))"


def quantile(q: float, histogram: str, *matchers: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({histogram}_bucket{sel(*matchers)}[{RATE}])))"
