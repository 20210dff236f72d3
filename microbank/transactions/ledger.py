"""The accounts service's postings endpoint, called over HTTP with the service credential."""

from __future__ import annotations

import httpx
import msgspec

from microbank.platform.auth import SERVICE_TOKEN_HEADER
from microbank.platform.ledger import LedgerUnavailable, PostingsOutcome, PostingsRequest
from microbank.platform.service_http import post_idempotent, service_client


class HttpLedger:
    def __init__(self, base_url: str, service_token: str | None) -> None:
        self.client = service_client(base_url, headers={SERVICE_TOKEN_HEADER: service_token or ""})

    async def apply(self, request: PostingsRequest) -> PostingsOutcome:
        try:
            # Safe to repeat: accounts applies a transaction's postings once, whatever the calls.
            response = await post_idempotent(
                self.client,
                "/internal/postings",
                content=msgspec.json.encode(request),
                headers={"content-type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise LedgerUnavailable(f"accounts did not answer: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise LedgerUnavailable(f"accounts answered {response.status_code}: {response.text[:200]}")
        return msgspec.json.decode(response.content, type=PostingsOutcome)

    async def aclose(self) -> None:
        await self.client.aclose()
