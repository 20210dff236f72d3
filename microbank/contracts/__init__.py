"""The calls between domains: each module holds one call's contract (request, outcome, errors)
and both of its adapters, in process and over HTTP. Ports is what a role's code is wired with."""

from __future__ import annotations

from dataclasses import dataclass

from microbank.contracts.deposits import Deposits
from microbank.contracts.postings import Ledger
from microbank.platform.outbox import EventSink


@dataclass(frozen=True)
class Ports:
    """The other side of each cross-domain call a role makes; None where the role makes none."""

    # transactions -> accounts: apply a transaction's postings.
    ledger: Ledger | None = None
    # accounts -> transactions: the deposit that funds a newly opened account.
    deposits: Deposits | None = None
    # outbox relays -> RabbitMQ, or the notifications domain in process.
    event_sink: EventSink | None = None


__all__ = ["Ports"]
