"""Transactions: deposits, withdrawals, transfers and their history; owns the transactions database."""

from microbank.contracts.deposits import InProcessDeposits
from microbank.contracts.postings import Ledger
from microbank.platform.db import Database
from microbank.platform.domain import Domain
from microbank.platform.outbox import relay_worker
from microbank.transactions.controller import TransactionController
from microbank.transactions.models import outbox
from microbank.transactions.service import open_with_deposit
from microbank.transactions.workers import recovery_loop

domain = Domain(
    name="transactions",
    schema_revision="transactions_0003",
    route_handlers=[TransactionController],
    workers=[recovery_loop, relay_worker("transactions", outbox)],
)


def deposits_in_process(db: Database, ledger: Ledger) -> InProcessDeposits:
    """Opening deposits made by this process, for a role that serves accounts too."""
    return InProcessDeposits(lambda request: open_with_deposit(db=db, ledger=ledger, request=request))


__all__ = ["deposits_in_process", "domain"]
