"""Deposits per second through the split roles (accounts and transactions as separate processes,
each on its own PostgreSQL database), at rising client concurrency; prints a table.

    .venv/bin/python bench/deposits.py [--seconds 5] [--clients 16,32,64,128]

It creates and drops its own databases on the server the tests use (TEST_POSTGRES_URL, default
the local one). The reference point, from the design notes: the seed's design managed ~95-107
deposits/s at 16-48 clients and stalled completely at 56-64.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from microbank.platform.auth import Caller, TokenIssuer, generate_keypair
from microbank.platform.migrations import upgrade

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
MICROBANK = Path(sys.executable).parent / "microbank"


def admin(sql: str) -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(sql))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(role: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [str(MICROBANK), "serve"],
        env={**env, "ROLE": role, "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{role} did not become ready:\n{log.read_text()}")


async def run_level(base: str, clients: int, seconds: float, token: str, account: int) -> dict:
    """`clients` concurrent loops of deposits for `seconds`; each request its own key."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    body = {"account_id": account, "type": "deposit", "amount": "1.00"}

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/api/transactions", json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
                )
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    latencies.sort()
    return {
        "clients": clients,
        "ok": statuses.get(201, 0),
        "per_second": statuses.get(201, 0) / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": sum(n for status, n in statuses.items() if status != 201),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", default="16,32,64,128")
    args = parser.parse_args()

    prefix = f"mbbench_{uuid.uuid4().hex[:6]}"
    private, public = generate_keypair()
    env = {**os.environ, "JWT_PUBLIC_KEY": public, "SERVICE_TOKEN": uuid.uuid4().hex}
    processes: list[subprocess.Popen] = []
    try:
        for domain in ("accounts", "transactions"):
            admin(f'CREATE DATABASE "{prefix}_{domain}"')
            url = make_url(ADMIN_URL).set(database=f"{prefix}_{domain}").render_as_string(hide_password=False)
            upgrade(domain, url)
            env[f"{domain.upper()}_DATABASE_URL"] = url
        logs = Path(tempfile.mkdtemp(prefix="mbbench"))
        accounts_port, transactions_port = free_port(), free_port()
        env["ACCOUNTS_URL"] = f"http://127.0.0.1:{accounts_port}"
        processes.append(serve("accounts", env, accounts_port, logs / "accounts.log"))
        processes.append(serve("transactions", env, transactions_port, logs / "transactions.log"))

        token = TokenIssuer(private, ttl_seconds=3600).issue(Caller(user_id=1, role="customer"))
        account = httpx.post(
            f"{env['ACCOUNTS_URL']}/api/accounts",
            json={"account_type": "checking"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["id"]
        base = f"http://127.0.0.1:{transactions_port}"
        print(f"deposits through accounts + transactions processes, {args.seconds:g} s per level")
        print(f"{'clients':>8} {'deposits':>9} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for clients in (int(c) for c in args.clients.split(",")):
            row = asyncio.run(run_level(base, clients, args.seconds, token, account))
            print(
                f"{row['clients']:>8} {row['ok']:>9} {row['per_second']:>8.0f} "
                f"{row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['errors']:>7}"
            )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)
        for domain in ("accounts", "transactions"):
            admin(f'DROP DATABASE IF EXISTS "{prefix}_{domain}" WITH (FORCE)')


if __name__ == "__main__":
    main()
