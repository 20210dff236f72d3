"""HTTP between microbank services: short-lived keep-alive, and one retry of a lost connection."""

from __future__ import annotations

from typing import Any

import httpx

# Connecting to a dead service fails in well under a second; a live but stalled one gets a few
# seconds before the caller answers 503.
TIMEOUT = httpx.Timeout(5.0, connect=1.0)
# uvicorn closes a connection idle for 5 s; keeping ours for less means we do not reuse one
# the server is closing at that very moment.
KEEPALIVE_EXPIRY = 2.0


def service_client(
    base_url: str, *, headers: dict[str, str] | None = None, timeout: httpx.Timeout = TIMEOUT
) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=50, keepalive_expiry=KEEPALIVE_EXPIRY)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=headers, limits=limits)


async def post_idempotent(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """POST a request that is safe to repeat. A pooled connection the server dropped before
    answering is tried once more on a fresh one; other failures are the caller's to handle."""
    try:
        return await client.post(url, **kwargs)
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
        return await client.post(url, **kwargs)
