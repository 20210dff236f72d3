"""The transactions role's recovery of pending transactions."""

from __future__ import annotations

import asyncio
import logging

from microbank.platform.domain import Runtime
from microbank.transactions.service import recover_pending

log = logging.getLogger("microbank.transactions")

RECOVERY_INTERVAL_SECONDS = 2.0


async def recovery_loop(runtime: Runtime) -> None:
    db, ledger = runtime.databases["transactions"], runtime.ports["ledger"]
    while True:
        try:
            if finished := await recover_pending(db=db, ledger=ledger):
                log.info("recovery finished %d pending transactions", finished)
        except Exception:  # a failed round must not end recovery; the next one retries
            log.exception("recovery round failed")
        await asyncio.sleep(RECOVERY_INTERVAL_SECONDS)
