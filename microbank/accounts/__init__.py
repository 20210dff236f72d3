"""Accounts: accounts, balances and postings; owns the accounts database."""

from microbank.accounts.controller import AccountController, InternalPostingsController
from microbank.accounts.models import outbox
from microbank.accounts.service import apply_postings
from microbank.contracts.postings import InProcessLedger
from microbank.platform.db import Database
from microbank.platform.domain import Domain
from microbank.platform.outbox import relay_worker

domain = Domain(
    name="accounts",
    schema_revision="accounts_0004",
    route_handlers=[AccountController, InternalPostingsController],
    workers=[relay_worker("accounts", outbox)],
)


def ledger_in_process(db: Database) -> InProcessLedger:
    """The postings call answered by this process, for a role that serves accounts too."""
    return InProcessLedger(lambda request: apply_postings(db=db, request=request))


__all__ = ["domain", "ledger_in_process"]
