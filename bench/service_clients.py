"""CPU per call of the HTTP clients a role could use to call another role, side by side in one run,
against the same uvicorn server on loopback; prints a table.

    .venv/bin/python bench/service_clients.py [--calls 3000]

microbank's ServiceClient (the standard library's http.client, one keep-alive connection per
thread) is measured against httpx and, if installed, aiohttp and urllib3.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from microbank.drills.processes import free_port
from microbank.platform.service_http import ServiceClient

BODY = b'{"transaction_id":1,"type":"deposit","user_id":1,"account_id":1,"amount_minor":100}'
SERVER = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})
"""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def service_client(url: str, calls: int) -> None:
    client = ServiceClient(url)
    for _ in range(calls):
        client.post_idempotent("/internal/postings", BODY)


def httpx_async(url: str, calls: int) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(calls):
                (await client.post("/internal/postings", content=BODY)).read()

    asyncio.run(run())


def aiohttp_client(url: str, calls: int) -> None:
    import aiohttp

    async def run() -> None:
        async with aiohttp.ClientSession(url) as session:
            for _ in range(calls):
                async with session.post("/internal/postings", data=BODY) as response:
                    await response.read()

    asyncio.run(run())


def urllib3_pool(url: str, calls: int) -> None:
    import urllib3

    pool = urllib3.connection_from_url(url, maxsize=1)
    for _ in range(calls):
        pool.request("POST", "/internal/postings", body=BODY).data  # noqa: B018


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    clients: dict[str, Callable[[str, int], None]] = {"ServiceClient (http.client)": service_client}
    clients["httpx.AsyncClient"] = httpx_async
    for name, module, run in (("aiohttp", "aiohttp", aiohttp_client), ("urllib3", "urllib3", urllib3_pool)):
        if importlib.util.find_spec(module):
            clients[name] = run
    port = free_port()
    app = Path(__file__).with_name("_echo_app.py")
    app.write_text(SERVER)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "_echo_app:app", "--port", str(port), "--log-level", "warning"],
        cwd=app.parent,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(url)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        print(f"{'client':30} {'CPU µs/call':>12} {'wall µs/call':>13}")
        for name, run in clients.items():
            before, started = cpu(), time.perf_counter()
            run(url, args.calls)
            spent, wall = (cpu() - before) / args.calls * 1e6, (time.perf_counter() - started) / args.calls * 1e6
            print(f"{name:30} {spent:>12.0f} {wall:>13.0f}")
    finally:
        server.terminate()
        server.wait()
        app.unlink()


if __name__ == "__main__":
    main()
