"""`microbank traffic` against `microbank dev`, as its README section runs it: a short seeded run
that ends with a table, exit 0, and books that audit clean."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.processes import MICROBANK, RoleProcess


def audit_when_delivered(env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    """`microbank audit` once the in-process relays have delivered the last events."""
    deadline = time.monotonic() + timeout
    while True:
        audit = subprocess.run([str(MICROBANK), "audit"], env=env, capture_output=True, text=True, timeout=60)
        if audit.returncode == 0 or time.monotonic() > deadline:
            return audit
        time.sleep(0.5)


def test_a_short_traffic_run_moves_money_answers_every_request_and_leaves_clean_books(dev_service: RoleProcess):
    flags = ["--duration", "5", "--concurrency", "4", "--customers", "4", "--seed", "7"]
    run = subprocess.run(
        [str(MICROBANK), "traffic", "--url", dev_service.url, *flags],
        env=dev_service.env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    for row in ("deposit        201 completed", "overdraw       201 rejected insufficient_funds", "transfer"):
        assert row in run.stdout, run.stdout
    assert "0 not as expected, 0 money requests with an unexplained 5xx" in run.stdout
    assert "req/s" in run.stderr  # the progress line
    audit = audit_when_delivered(dev_service.env)
    assert audit.returncode == 0, audit.stdout


def test_traffic_against_a_bank_that_is_not_there_says_so_and_fails():
    run = subprocess.run(
        [str(MICROBANK), "traffic", "--url", "http://127.0.0.1:9", "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 2
    assert "cannot enrol customers at http://127.0.0.1:9" in run.stderr


def test_the_same_scenario_runs_in_locust_without_a_failure(dev_service: RoleProcess, tmp_path):
    locustfile = Path(__file__).parents[2] / "bench" / "locustfile.py"
    locust = [str(MICROBANK.with_name("locust")), "-f", str(locustfile), "--host", dev_service.url]
    flags = ["--headless", "-u", "4", "-r", "4", "-t", "4s", "--only-summary", "--csv", str(tmp_path / "locust")]
    run = subprocess.run(
        [*locust, *flags],
        env={**dev_service.env, "TRAFFIC_SEED": "3"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stdout + run.stderr  # Locust exits 1 on any failed request
    stats = (tmp_path / "locust_stats.csv").read_text()
    for operation in ("deposit", "transfer", "overdraw", "history", "bad_request"):
        assert f",{operation}," in stats, stats
