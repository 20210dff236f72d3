"""The deposit pipeline end to end, measured as the issue asks, printed as one table.

    .venv/bin/python bench/pipeline.py [--seconds 20] [--levels 16,64,256]

It starts its own PostgreSQL server and RabbitMQ node (so every CPU second they spend is counted
and nobody else's work is), the five split roles as `microbank serve` processes (notifier
included), and drives deposits with wrk (closed loop, one keep-alive connection per client), then
open loop at half of the 64-client rate. Only deposits answered inside the window count; after
each level it waits until every completed deposit's notification is stored, and CPU is read from
/proc/PID/stat of every role, every PostgreSQL process and the broker, before and after, drain
included. The same run measures pgbench's TPC-B-like tps on the same server, the CPU of idle
roles, their RSS, and the time from start to /readyz. The load generator's own CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from microbank.drills.postgres_node import POSTGRES_BIN, PostgresNode, as_postgres_user
from microbank.drills.rabbit_node import RabbitNode
from microbank.drills.stack import SPLIT_ROLES, BankStack

TICKS = os.sysconf("SC_CLK_TCK")
SHORT = {
    "users": "users",
    "accounts": "acct",
    "transactions": "txn",
    "notifications": "ntf-api",
    "notifier": "notifier",
    "postgresql": "pg",
    "rabbitmq": "rmq",
}
ACCOUNTS = 512
WRK_SCRIPT = r"""
counter, statuses = 0, {}
local token, accounts, prefix = os.getenv("BENCH_TOKEN"), tonumber(os.getenv("BENCH_ACCOUNTS")), ""
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  prefix = os.getenv("BENCH_RUN") .. "-" .. tid .. "-"
  statuses = {}
end
function request()
  counter = counter + 1
  local account = (counter * 7 + tid * 131) % accounts + 1
  local body = '{"account_id":' .. account .. ',"type":"deposit","amount":"1.00"}'
  return wrk.format("POST", "/api/transactions", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = prefix .. counter,
  }, body)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for k, v in pairs(s) do merged[tostring(k)] = (merged[tostring(k)] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(merged) do table.insert(parts, '"' .. k .. '":' .. v) end
  io.write(string.format('BENCH {"requests":%d,"p50":%d,"p99":%d,"timeouts":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"statuses":{%s}}\n', summary.requests, latency:percentile(50), latency:percentile(99),
    summary.errors.timeout, summary.errors.connect, summary.errors.read, table.concat(parts, ",")))
end
"""


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children_of(root: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == root:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@dataclass
class Bench:
    stack: BankStack
    postgres: PostgresNode
    broker: RabbitNode
    token: str = ""
    results: dict = field(default_factory=dict)

    def pids(self) -> dict[str, list[int]]:
        broker_root = int((self.broker.home / "pid").read_text().strip())
        groups = {name: [p.pid] for name, p in self.stack.roles.items() if p.pid}
        groups["postgresql"] = self.postgres.pids()
        groups["rabbitmq"] = [broker_root, *children_of(broker_root)]
        return groups

    def cpu(self) -> dict[tuple[str, int], float]:
        return {(group, pid): cpu_seconds(pid) for group, pids in self.pids().items() for pid in pids}

    @staticmethod
    def spent(before: dict, after: dict) -> dict[str, float]:
        by_group: dict[str, float] = {}
        for (group, pid), seconds in after.items():
            by_group[group] = by_group.get(group, 0.0) + seconds - before.get((group, pid), 0.0)
        return by_group

    def sql(self, domain: str, query: str) -> object:
        engine = create_engine(self.stack.database_urls[domain])
        try:
            with engine.connect() as connection:
                return connection.execute(text(query)).scalar()
        finally:
            engine.dispose()

    def completed(self) -> int:
        return int(self.sql("transactions", "SELECT count(*) FROM transactions WHERE status = 'completed'"))

    def notified(self) -> int:
        return int(
            self.sql("notifications", "SELECT count(*) FROM notifications WHERE event_type = 'transaction.completed'")
        )

    def drain(self, timeout: float = 300) -> float:
        """Wait until every finished transaction is settled and notified; how long it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            pending = int(self.sql("transactions", "SELECT count(*) FROM transactions WHERE status = 'pending'"))
            if not pending and self.notified() >= self.completed():
                return time.monotonic() - started
            time.sleep(0.2)
        raise SystemExit("the pipeline did not drain")

    def lag_p99(self, since_id: int) -> float:
        lags = self.sql(
            "notifications",
            "SELECT array_agg(EXTRACT(EPOCH FROM created_at - occurred_at)) FROM notifications "
            f"WHERE event_type = 'transaction.completed' AND transaction_id > {since_id}",
        )
        return percentile(sorted(float(lag) for lag in lags or [0]), 99)

    def last_transaction(self) -> int:
        return int(self.sql("transactions", "SELECT COALESCE(max(id), 0) FROM transactions"))

    def measured(self, load: Callable[[], dict]) -> dict:
        first_id, before, wall = self.last_transaction(), self.cpu(), time.monotonic()
        row = load()
        row["drain_s"] = self.drain()
        row["cpu"] = self.spent(before, self.cpu())
        row["wall_s"] = time.monotonic() - wall
        row["lag_p99_ms"] = self.lag_p99(first_id) * 1000
        return row


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def wrk(base: str, clients: int, seconds: float, env: dict[str, str], script: Path) -> dict:
    threads = min(2, clients)
    command = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{int(seconds)}s", "--timeout", "30s"]
    finished = subprocess.run(
        [*command, "-s", str(script), base],
        env=env,
        capture_output=True,
        text=True,
    )
    if finished.returncode != 0:
        raise SystemExit(f"wrk failed: {finished.stdout}{finished.stderr}")
    output = finished.stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    result = json.loads(line[len("BENCH ") :])
    statuses = {int(k): v for k, v in result["statuses"].items()}
    failures = result["timeouts"] + result["connect_errors"] + result["read_errors"]
    return {
        "clients": clients,
        "deposits": statuses.get(201, 0),
        "per_second": statuses.get(201, 0) / seconds,
        "p50_ms": result["p50"] / 1000,
        "p99_ms": result["p99"] / 1000,
        "shed": statuses.get(503, 0),
        "errors": failures + sum(n for status, n in statuses.items() if status not in (201, 503)),
    }


async def open_loop(host: str, port: int, rate: float, seconds: float, token: str, run: str) -> dict:
    """Deposits sent on a fixed schedule whatever the answers; latency from each send's scheduled time,
    so a stall shows in it instead of silently slowing the sender."""
    # Kept-alive connections and when each was last used: uvicorn closes one idle for 5 s.
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def deposit(n: int, scheduled: float) -> None:
        body = json.dumps({"account_id": n % ACCOUNTS + 1, "type": "deposit", "amount": "1.00"}).encode()
        request = (
            f"POST /api/transactions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nIdempotency-Key: {run}-open-{n}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        while idle and time.monotonic() - idle[-1][2] > 3.0:
            idle.pop()[1].close()
        reader, writer, _ = idle.pop() if idle else (*await asyncio.open_connection(host, port), 0.0)
        try:
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            idle.append((reader, writer, time.monotonic()))
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            status = 0
            writer.close()
        latencies.append(time.monotonic() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1

    started, tasks = time.monotonic(), []
    for n in range(int(rate * seconds)):
        scheduled = started + n / rate
        await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
        tasks.append(asyncio.create_task(deposit(n, scheduled)))
    await asyncio.gather(*tasks)
    for _, writer, _ in idle:
        writer.close()
    latencies.sort()
    return {
        "clients": f"open {rate:.0f}/s",
        "deposits": statuses.get(201, 0),
        "per_second": statuses.get(201, 0) / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "shed": statuses.get(503, 0),
        "errors": sum(n for status, n in statuses.items() if status not in (201, 503)),
    }


def pgbench_tps(postgres: PostgresNode, seconds: int) -> float:
    common = ["-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres"]
    subprocess.run([*as_postgres_user(), str(POSTGRES_BIN / "createdb"), *common, "pgbench"], check=True)
    subprocess.run(
        [*as_postgres_user(), str(POSTGRES_BIN / "pgbench"), *common, "-i", "-s", "10", "-q", "pgbench"],
        check=True,
        capture_output=True,
    )
    load = ["-b", "tpcb-like", "-c", "16", "-j", "2", "-T", str(seconds)]
    output = subprocess.run(
        [*as_postgres_user(), str(POSTGRES_BIN / "pgbench"), *common, *load, "pgbench"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("tps ="))
    return float(line.split()[2])


def open_accounts(bench: Bench) -> None:
    accounts = bench.stack.role("accounts").url
    headers = {"Authorization": f"Bearer {bench.token}"}
    with httpx.Client(base_url=accounts, headers=headers, timeout=30) as client:
        for _ in range(ACCOUNTS):
            client.post("/api/accounts", json={"account_type": "checking"}).raise_for_status()


def idle_cpu(bench: Bench, seconds: float) -> dict[str, float]:
    before = bench.cpu()
    time.sleep(seconds)
    return {group: spent * 1000 / seconds for group, spent in bench.spent(before, bench.cpu()).items()}


def restart_times(bench: Bench) -> dict[str, tuple[float, float]]:
    """Per role, the wall time from start to /readyz and the CPU the process spent getting there:
    on a loaded machine the first mostly measures the queue for a core, the second does not."""
    times = {}
    for name in SPLIT_ROLES:
        process = bench.stack.role(name)
        process.stop()
        started = time.monotonic()
        process.start()
        times[name] = (time.monotonic() - started, cpu_seconds(process.pid))
    return times


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, load {load[0]:.2f} at start"


def print_table(bench: Bench, rows: list[dict], extra: dict) -> None:
    groups = [*SPLIT_ROLES, "postgresql", "rabbitmq"]
    print(f"\nmachine: {machine()}")
    print(f"pgbench -b tpcb-like -c 16 on the same server: {extra['pgbench']:.0f} tps\n")
    header = f"{'load':>13} {'deposits':>9} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8} {'shed':>6} {'errors':>6}"
    header += f" {'lag p99':>8} {'drain s':>7} {'CPU ms/dep':>10}  split (ms per deposit)"
    print(header)
    for row in rows:
        total = sum(row["cpu"].values())
        per = total * 1000 / max(row["deposits"], 1)
        split = " ".join(
            f"{SHORT[g]}={row['cpu'].get(g, 0) * 1000 / max(row['deposits'], 1):.1f}" for g in groups if g in row["cpu"]
        )
        print(
            f"{row['clients']!s:>13} {row['deposits']:>9} {row['per_second']:>7.0f} {row['p50_ms']:>8.1f} "
            f"{row['p99_ms']:>8.1f} {row['shed']:>6} {row['errors']:>6} {row['lag_p99_ms']:>7.0f}ms "
            f"{row['drain_s']:>7.1f} {per:>10.1f}  {split}"
        )
    by_clients = {row["clients"]: row for row in rows}
    print()
    if 64 in by_clients:
        share = by_clients[64]["per_second"] / extra["pgbench"] * 100
        print(f"deposits/s at 64 clients as a share of pgbench tps: {share:.1f}%  (target >= 10%)")
    if 64 in by_clients and 256 in by_clients:
        ratio = by_clients[256]["per_second"] / max(by_clients[64]["per_second"], 1e-9) * 100
        print(f"throughput at 256 clients vs 64: {ratio:.0f}%, {by_clients[256]['errors']} errors  (target >= 90%, 0)")
    print("idle CPU per role, ms/s: " + ", ".join(f"{g}={v:.1f}" for g, v in extra["idle"].items()))
    print("RSS after the run, MiB:  " + ", ".join(f"{g}={v:.0f}" for g, v in extra["rss"].items()))
    ready = extra["ready"].items()
    print("start to /readyz, s:     " + ", ".join(f"{g}={wall:.2f}" for g, (wall, _) in ready))
    print("CPU until /readyz, s:    " + ", ".join(f"{g}={cpu:.2f}" for g, (_, cpu) in ready))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each load level")
    parser.add_argument("--levels", default="16,64,256", help="closed-loop client counts")
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]

    logs = Path(tempfile.mkdtemp(prefix="mbbench-"))
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    with (
        PostgresNode() as postgres,
        RabbitNode(prometheus=False) as broker,
        BankStack(postgres.admin_url, rabbit_url=broker.url, log_dir=logs, env=env) as stack,
    ):
        bench = Bench(stack, postgres, broker)
        stack.start()
        bench.token = stack.token(1)
        open_accounts(bench)
        bench.drain()
        extra: dict = {"idle": idle_cpu(bench, 10)}
        script = logs / "deposit.lua"
        script.write_text(WRK_SCRIPT)
        base = stack.role("transactions").url
        wrk_env = {**os.environ, "BENCH_TOKEN": bench.token, "BENCH_ACCOUNTS": str(ACCOUNTS)}
        wrk(base, 16, 3, {**wrk_env, "BENCH_RUN": "warmup"}, script)
        bench.drain()
        rows = []
        for clients in levels:
            run_env = {**wrk_env, "BENCH_RUN": f"c{clients}"}
            rows.append(bench.measured(lambda c=clients, e=run_env: wrk(base, c, args.seconds, e, script)))
        capacity = next((r["per_second"] for r in rows if r["clients"] == 64), rows[-1]["per_second"])
        port = stack.role("transactions").port
        rows.append(
            bench.measured(
                lambda: asyncio.run(open_loop("127.0.0.1", port, capacity / 2, args.seconds, bench.token, "o"))
            )
        )
        extra["rss"] = {name: rss_mib(p.pid) for name, p in stack.roles.items() if p.pid}
        extra["pgbench"] = pgbench_tps(postgres, args.pgbench_seconds)
        extra["ready"] = restart_times(bench)
        print_table(bench, rows, extra)
        print(f"\nlogs: {logs}; command: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
