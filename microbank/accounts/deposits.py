"""The transactions service's API, called over HTTP on the customer's behalf with their own token."""

from __future__ import annotations

import httpx

from microbank.platform.ledger import OpeningDeposit, opening_status_of
from microbank.platform.money import format_minor
from microbank.platform.service_http import post_idempotent, service_client


class HttpDeposits:
    def __init__(self, base_url: str) -> None:
        # Longer than transactions' own wait for accounts, so its answer (even a 503) arrives.
        self.client = service_client(base_url, timeout=httpx.Timeout(10.0, connect=1.0))

    async def deposit(
        self, *, caller_token: str, user_id: int, account_id: int, amount_minor: int, key: str
    ) -> OpeningDeposit:
        try:
            # Safe to repeat: the Idempotency-Key makes it one deposit, whatever the calls.
            response = await post_idempotent(
                self.client,
                "/api/transactions",
                json={
                    "account_id": account_id,
                    "type": "deposit",
                    "amount": format_minor(amount_minor),
                    "description": "opening deposit",
                },
                headers={"Authorization": f"Bearer {caller_token}", "Idempotency-Key": key},
            )
        except httpx.ConnectError:
            return OpeningDeposit(status="failed", reason="transactions_unavailable")
        except httpx.HTTPError:
            # Sent, but no answer: transactions may have recorded it, and then finishes it.
            return OpeningDeposit(status="pending", reason="transactions_unavailable")
        if response.status_code != 201:
            error = response.json().get("error", "")
            return OpeningDeposit(status=opening_status_of(error), reason=error)
        body = response.json()
        return OpeningDeposit(status=body["status"], transaction_id=body["id"], reason=body["reason"])

    async def aclose(self) -> None:
        await self.client.aclose()
