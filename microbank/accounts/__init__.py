"""Accounts: accounts, balances and postings; owns the accounts database."""

from microbank.accounts.controller import AccountController, InternalPostingsController
from microbank.accounts.models import outbox
from microbank.accounts.service import LocalLedger
from microbank.platform.domain import Domain
from microbank.platform.outbox import relay_worker

domain = Domain(
    name="accounts",
    route_handlers=[AccountController, InternalPostingsController],
    workers=[relay_worker("accounts", outbox)],
)

__all__ = ["LocalLedger", "domain"]
