"""The drill, short: 20 s of traffic against the five roles as processes while each is SIGKILLed
(transactions twice), RabbitMQ is away 5 s and the accounts database loses its connections. The
books must audit clean and hold every transaction a client was told of, as it was told.

The catch-up bounds here are generous, for a loaded 2-core CI machine; the targets (a 1,000-event
backlog stored within 5 s of the broker's return) are measured by hand in bench/RESULTS.md."""

from __future__ import annotations

from collections import Counter

from microbank.drills.drill import DrillConfig, plan_faults, run_drill
from tests.integration.conftest import ADMIN_URL

CONFIG = DrillConfig(seed=3, duration=20, clients=8, customers=16, broker_outage=5, postgres_url=ADMIN_URL)


def test_the_same_seed_plans_the_same_faults_each_role_killed_and_transactions_twice():
    faults = plan_faults(CONFIG.seed, CONFIG.duration, CONFIG.broker_outage)

    assert [(f.at, f.kind, f.target) for f in faults] == [
        (f.at, f.kind, f.target) for f in plan_faults(CONFIG.seed, CONFIG.duration, CONFIG.broker_outage)
    ]
    assert Counter((f.kind, f.target) for f in faults) == {
        ("kill", "users"): 1,
        ("kill", "accounts"): 1,
        ("kill", "transactions"): 2,
        ("kill", "notifications"): 1,
        ("kill", "notifier"): 1,
        ("broker", "rabbitmq"): 1,
        ("cut", "accounts"): 1,
    }
    assert all(CONFIG.duration * 0.1 <= f.at <= CONFIG.duration * 0.75 for f in faults)


def test_a_20_second_drill_ends_with_clean_books_holding_every_acknowledged_transaction(postgres, tmp_path):
    report = run_drill(CONFIG, out=None, log_dir=tmp_path)

    rendered = report.render()
    assert report.audit.clean, rendered
    assert report.findings == [], rendered  # acknowledged = booked, balances = money told in, every fault done
    assert report.clean, rendered
    assert report.money[0] == report.money[1]
    assert len(report.traffic.acknowledged) > 200, rendered  # the faults hit a bank under load
    assert all(fault.ended is not None for fault in report.faults), rendered
    assert all(fault.catch_up.seconds is not None for fault in report.faults), rendered
    assert report.traffic.unexplained == [], rendered
