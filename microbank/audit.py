"""`microbank audit`: check the bank's invariants across the four databases and name every breach.

It reads each database directly (it is an operator's tool, not a domain), so it sees what
is stored rather than what any service reports.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from microbank.platform.events import decode_event
from microbank.platform.money import format_minor
from microbank.platform.settings import Settings
from microbank.roles import DOMAINS


@dataclass
class AuditReport:
    checked: Counter = field(default_factory=Counter)
    discrepancies: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.discrepancies

    def breach(self, message: str) -> None:
        self.discrepancies.append(message)

    def render(self) -> str:
        lines = [f"checked {count} {what}" for what, count in self.checked.items()]
        lines += [f"DISCREPANCY: {d}" for d in self.discrepancies]
        lines.append("audit clean" if self.clean else f"audit FAILED: {len(self.discrepancies)} discrepancies")
        return "\n".join(lines)


def run_audit(settings: Settings) -> AuditReport:
    return audit_databases({name: settings.database_url(name) for name in DOMAINS})


def audit_databases(urls: dict[str, str]) -> AuditReport:
    """The audit of the four databases at `urls`, by domain."""
    report = AuditReport()
    # Opening a SQLite file that is not there would create an empty one in the wrong place.
    if missing := [str(path) for path in map(sqlite_file, urls.values()) if path and not path.exists()]:
        report.breach(f"cannot read the databases: no database file at {', '.join(missing)}")
        return report
    engines = {name: create_engine(url) for name, url in urls.items()}
    try:
        check_balances(engines["accounts"], report)
        check_transactions_match_postings(engines["transactions"], engines["accounts"], report)
        outboxes = [engines[name] for name in ("users", "accounts", "transactions")]
        check_notifications(outboxes, engines["transactions"], engines["notifications"], report)
    except SQLAlchemyError as exc:
        # Unreachable, or not migrated: the audit cannot vouch for anything it did not read.
        report.breach(f"cannot read the databases: {getattr(exc, 'orig', None) or exc}")
    finally:
        for engine in engines.values():
            engine.dispose()
    return report


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _rows(engine: Engine, sql: str) -> list:
    with engine.connect() as connection:
        return list(connection.execute(text(sql)))


def check_balances(accounts: Engine, report: AuditReport) -> None:
    """Each balance equals the sum of its postings, never goes below zero, and each posting's
    balance_after is the running sum up to it."""
    for row in _rows(
        accounts,
        "SELECT a.id, a.balance_minor, COALESCE(SUM(p.amount_minor), 0) AS posted "
        "FROM accounts a LEFT JOIN postings p ON p.account_id = a.id GROUP BY a.id, a.balance_minor",
    ):
        report.checked["accounts"] += 1
        if row.balance_minor != row.posted:
            # PostgreSQL sums BIGINTs as NUMERIC: a Decimal of whole minor units.
            balance, posted = format_minor(row.balance_minor), format_minor(int(row.posted))
            report.breach(f"account {row.id}: balance {balance} != sum of postings {posted}")
        if row.balance_minor < 0:
            report.breach(f"account {row.id}: negative balance {format_minor(row.balance_minor)}")
    for row in _rows(
        accounts,
        "SELECT id, account_id, balance_after_minor, running FROM ("
        " SELECT id, account_id, balance_after_minor,"
        " SUM(amount_minor) OVER (PARTITION BY account_id ORDER BY id) AS running FROM postings) s "
        "WHERE balance_after_minor <> running",
    ):
        report.breach(f"posting {row.id} on account {row.account_id}: balance_after != running sum of postings")


def expected_postings(tx) -> Counter:
    if tx.status != "completed":
        return Counter()
    if tx.type == "deposit":
        return Counter({(tx.account_id, tx.amount_minor): 1})
    if tx.type == "withdrawal":
        return Counter({(tx.account_id, -tx.amount_minor): 1})
    return Counter({(tx.account_id, -tx.amount_minor): 1, (tx.to_account_id, tx.amount_minor): 1})


def check_transactions_match_postings(transactions: Engine, accounts: Engine, report: AuditReport) -> None:
    """Completed transactions have exactly their postings; every posting belongs to one."""
    postings: dict[int, Counter] = defaultdict(Counter)
    for row in _rows(accounts, "SELECT transaction_id, account_id, amount_minor FROM postings"):
        postings[row.transaction_id][(row.account_id, row.amount_minor)] += 1
        report.checked["postings"] += 1
    seen = set()
    for tx in _rows(transactions, "SELECT id, type, status, account_id, to_account_id, amount_minor FROM transactions"):
        report.checked["transactions"] += 1
        seen.add(tx.id)
        if tx.status == "pending":
            report.breach(f"transaction {tx.id}: still pending")
            continue
        actual, expected = postings.get(tx.id, Counter()), expected_postings(tx)
        if actual != expected:
            report.breach(
                f"transaction {tx.id} ({tx.status} {tx.type}): postings {dict(actual)} != expected {dict(expected)}"
            )
    for transaction_id in sorted(set(postings) - seen):
        report.breach(f"postings for transaction {transaction_id}, which does not exist")


def check_notifications(
    outboxes: list[Engine], transactions: Engine, notifications: Engine, report: AuditReport
) -> None:
    """Every finished transaction has one event; every event of every outbox has told each of
    its recipients exactly once, and every notification comes from such an event."""
    delivered = Counter(
        (row.event_id, row.user_id) for row in _rows(notifications, "SELECT event_id, user_id FROM notifications")
    )
    report.checked["notifications"] = sum(delivered.values())
    expected: set[tuple[str, int]] = set()
    events_per_transaction: Counter = Counter()
    rows = [row for outbox in outboxes for row in _rows(outbox, "SELECT event_id, payload, published_at FROM outbox")]
    for row in rows:
        event = decode_event(row.payload)
        report.checked["events"] += 1
        if event.transaction_id is not None:
            events_per_transaction[event.transaction_id] += 1
        if row.published_at is None:
            report.breach(f"event {event.event_id} ({event.event_type}): not delivered yet")
            continue
        for recipient in event.recipients:
            key = (event.event_id, recipient.user_id)
            expected.add(key)
            if delivered[key] != 1:
                times = delivered[key]
                report.breach(
                    f"event {event.event_id} ({event.event_type}): user {recipient.user_id} notified {times} times"
                )
    for event_id, user_id in sorted(set(delivered) - expected):
        report.breach(f"notification for user {user_id} from event {event_id}, which no outbox holds")
    for tx in _rows(transactions, "SELECT id FROM transactions WHERE status <> 'pending'"):
        if events_per_transaction[tx.id] != 1:
            report.breach(f"transaction {tx.id}: {events_per_transaction[tx.id]} events instead of 1")
