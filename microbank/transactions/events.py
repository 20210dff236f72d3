"""The events a finished transaction publishes, with the text its people are told."""

from __future__ import annotations

from sqlalchemy import Row

from microbank.contracts.postings import PostingsOutcome
from microbank.platform.events import (
    TRANSACTION_COMPLETED,
    TRANSACTION_REJECTED,
    BankEvent,
    Recipient,
    new_event,
)
from microbank.platform.money import display, format_minor

_REASONS = {
    "insufficient_funds": "insufficient funds",
    "account_not_found": "account not found",
    "recipient_not_found": "recipient account not found",
    "currency_mismatch": "the accounts hold different currencies",
}


def transaction_finished(transaction: Row, outcome: PostingsOutcome) -> BankEvent:
    """transaction.completed or .rejected: "Deposit of $200.00 completed. New balance: $900.00"."""
    if outcome.status == "rejected":
        rejection = Recipient(transaction.user_id, _rejected_message(transaction, outcome))
        return _event(TRANSACTION_REJECTED, transaction, [rejection])
    recipients = [Recipient(transaction.user_id, _initiator_message(transaction, outcome))]
    receiver = outcome.to_account_owner_id
    if transaction.type == "transfer" and receiver is not None and receiver != transaction.user_id:
        recipients.append(Recipient(receiver, _receiver_message(transaction, outcome)))
    return _event(TRANSACTION_COMPLETED, transaction, recipients)


def _initiator_message(transaction: Row, outcome: PostingsOutcome) -> str:
    amount = _money(transaction.amount_minor, outcome)
    balance = _money(outcome.balance_after_minor or 0, outcome)
    what = f"{transaction.type.capitalize()} of {amount}"
    if transaction.type == "transfer":
        what += f" to account {transaction.to_account_id}"
    return f"{what} completed. New balance: {balance}"


def _rejected_message(transaction: Row, outcome: PostingsOutcome) -> str:
    reason = _REASONS.get(outcome.reason or "", outcome.reason or "rejected")
    return f"{transaction.type.capitalize()} of {_money(transaction.amount_minor, outcome)} rejected: {reason}."


def _receiver_message(transaction: Row, outcome: PostingsOutcome) -> str:
    amount = _money(transaction.amount_minor, outcome)
    balance = _money(outcome.to_balance_after_minor or 0, outcome)
    return (
        f"Received {amount} from account {transaction.account_id} into account "
        f"{transaction.to_account_id}. New balance: {balance}"
    )


def _money(minor: int, outcome: PostingsOutcome) -> str:
    return display(minor, outcome.currency) if outcome.currency else format_minor(minor)


def _event(event_type: str, transaction: Row, recipients: list[Recipient]) -> BankEvent:
    return new_event(
        event_type, recipients=recipients, transaction_id=transaction.id, transaction_type=transaction.type
    )
