import { useState } from "react";
import { api, type Page, type Posting, type Transaction } from "../api";
import { describeError, reasonText } from "../messages";
import { formatMoney } from "../money";
import { Alert, Field, formatTime, Link, useLoad } from "../ui";
import { accountName } from "./Accounts";

const TYPES = [
  ["", "All types"],
  ["deposit", "Deposits"],
  ["withdrawal", "Withdrawals"],
  ["transfer", "Transfers"],
] as const;

/** A cursor-paged list: the first page on load, more on request, restarted when `deps` change. */
function usePaged<T>(fetchPage: (cursor?: string) => Promise<Page<T>>, deps: unknown[]) {
  const first = useLoad(() => fetchPage(), deps);
  const [more, setMore] = useState<{ key: unknown; items: T[]; next: string | null } | null>(null);
  const [error, setError] = useState<unknown>();
  const depsKey = first.data;
  const extra = more && more.key === depsKey ? more : null;
  const items = [...(first.data?.items ?? []), ...(extra?.items ?? [])];
  const next = extra ? extra.next : (first.data?.next ?? null);
  const loadMore = () => {
    if (!next) return;
    fetchPage(next).then(
      (page) => setMore({ key: depsKey, items: [...(extra?.items ?? []), ...page.items], next: page.next }),
      setError,
    );
  };
  return { items, next, loadMore, error: first.error ?? error, loading: first.loading, reload: first.reload };
}

export function History({ accountId, version }: { accountId: number; version: number }) {
  const account = useLoad(() => api.account(accountId), [accountId, version]);
  const [type, setType] = useState("");
  const transactions = usePaged((cursor) => api.transactions({ accountId, type: type || undefined, cursor }), [accountId, type, version]);
  const statement = usePaged((cursor) => api.postings(accountId, cursor), [accountId, version]);
  const currency = account.data?.currency ?? "USD";

  return (
    <>
      <section className="card" aria-labelledby="history-title">
        <p><Link to="/accounts">← All accounts</Link></p>
        <h1 id="history-title">{account.data ? accountName(account.data) : `Account ${accountId}`}</h1>
        {account.error !== undefined && <Alert kind="error">{describeError(account.error)}</Alert>}
        {account.data && <p className="big">Balance: <strong>{formatMoney(account.data.balance, currency)}</strong></p>}
      </section>
      <section className="card" aria-labelledby="tx-title">
        <h2 id="tx-title">Transactions</h2>
        <Field id="tx-type" label="Show">
          {() => (
            <select id="tx-type" value={type} onChange={(e) => setType(e.target.value)}>
              {TYPES.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
            </select>
          )}
        </Field>
        {transactions.error !== undefined && <Alert kind="error">{describeError(transactions.error)}</Alert>}
        {!transactions.loading && transactions.items.length === 0 && <p>No transactions yet.</p>}
        {transactions.items.length > 0 && <TransactionTable items={transactions.items} />}
        {transactions.next && <button type="button" className="secondary" onClick={transactions.loadMore}>Show older transactions</button>}
      </section>
      <section className="card" aria-labelledby="statement-title">
        <h2 id="statement-title">Statement</h2>
        {statement.error !== undefined && <Alert kind="error">{describeError(statement.error)}</Alert>}
        {!statement.loading && statement.items.length === 0 && <p>No money has moved in this account yet.</p>}
        {statement.items.length > 0 && <StatementTable items={statement.items} currency={currency} />}
        {statement.next && <button type="button" className="secondary" onClick={statement.loadMore}>Show older entries</button>}
      </section>
    </>
  );
}

function describe(t: Transaction): string {
  const kind = t.type[0]!.toUpperCase() + t.type.slice(1);
  const where = t.type === "transfer" ? ` to account ${t.to_account_id}` : "";
  return `${kind}${where}${t.description ? ` · ${t.description}` : ""}`;
}

function TransactionTable({ items }: { items: Transaction[] }) {
  return (
    <table className="stack">
      <caption className="visually-hidden">Transactions, newest first</caption>
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">What</th>
          <th scope="col" className="num">Amount</th>
          <th scope="col">Outcome</th>
        </tr>
      </thead>
      <tbody>
        {items.map((t) => (
          <tr key={t.id}>
            <td data-label="When">{formatTime(t.timestamp)}</td>
            <td data-label="What">{describe(t)}</td>
            <td data-label="Amount" className="num">{formatMoney(t.amount, t.currency ?? "USD")}</td>
            <td data-label="Outcome">
              {t.status === "rejected" ? `Refused: ${reasonText(t.reason)}` : t.status === "pending" ? "Pending" : "Completed"}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function StatementTable({ items, currency }: { items: Posting[]; currency: string }) {
  return (
    <table className="stack">
      <caption className="visually-hidden">Statement with the running balance, newest first</caption>
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Transaction</th>
          <th scope="col" className="num">Amount</th>
          <th scope="col" className="num">Balance</th>
        </tr>
      </thead>
      <tbody>
        {items.map((p) => (
          <tr key={p.id}>
            <td data-label="When">{formatTime(p.timestamp)}</td>
            <td data-label="Transaction">#{p.transaction_id}</td>
            <td data-label="Amount" className="num">{formatMoney(p.amount, currency)}</td>
            <td data-label="Balance" className="num">{formatMoney(p.balance_after, currency)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
