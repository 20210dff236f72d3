"""Transactions: deposits, withdrawals, transfers and their history; owns the transactions database."""

from microbank.platform.domain import Domain
from microbank.platform.outbox import relay_worker
from microbank.transactions.controller import TransactionController
from microbank.transactions.models import outbox
from microbank.transactions.workers import recovery_loop

domain = Domain(
    name="transactions",
    route_handlers=[TransactionController],
    workers=[recovery_loop, relay_worker("transactions", outbox)],
)

__all__ = ["domain"]
