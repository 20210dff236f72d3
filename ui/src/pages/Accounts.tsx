import { useState, type FormEvent } from "react";
import { allPages, api, type Account } from "../api";
import { describeError, reasonText } from "../messages";
import { formatMoney } from "../money";
import { Alert, Field, Link, useLoad } from "../ui";
import { checkOpenAccount, type FieldErrors } from "../validation";

const TYPE_NAMES: Record<string, string> = { checking: "Checking", savings: "Savings" };

export const accountName = (account: Account) =>
  `${TYPE_NAMES[account.account_type] ?? account.account_type} ${account.id}`;

/** All of the caller's accounts (an admin's: everyone's), reloaded whenever `version` moves. */
export function useAccounts(version: number) {
  return useLoad(() => allPages(api.accounts), [version]);
}

export function AccountTable({ accounts, caption }: { accounts: Account[]; caption: string }) {
  return (
    <table className="stack">
      <caption>{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Type</th>
          <th scope="col">Number</th>
          <th scope="col">Currency</th>
          <th scope="col" className="num">Balance</th>
        </tr>
      </thead>
      <tbody>
        {accounts.map((account) => (
          <tr key={account.id} data-testid={`account-${account.id}`}>
            <td data-label="Type">{TYPE_NAMES[account.account_type] ?? account.account_type}</td>
            <td data-label="Number">
              <Link to={`/accounts/${account.id}`}>{account.id}</Link>
            </td>
            <td data-label="Currency">{account.currency}</td>
            <td data-label="Balance" className="num balance">{formatMoney(account.balance, account.currency)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Accounts({ version }: { version: number }) {
  const [opened, setOpened] = useState(0);
  const accounts = useAccounts(version + opened);
  return (
    <>
      <section className="card" aria-labelledby="accounts-title">
        <h1 id="accounts-title">Your accounts</h1>
        {accounts.error !== undefined && <Alert kind="error">{describeError(accounts.error)}</Alert>}
        {accounts.data && accounts.data.length === 0 && <p>You have no account yet: open one below.</p>}
        {accounts.data && accounts.data.length > 0 && (
          <>
            <AccountTable accounts={accounts.data} caption="Choose an account number to see its history." />
            <p><Link to="/move" className="button">Move money</Link></p>
          </>
        )}
        {accounts.loading && !accounts.data && <p>Loading your accounts…</p>}
      </section>
      <OpenAccount onOpened={() => setOpened((n) => n + 1)} />
    </>
  );
}

function OpenAccount({ onOpened }: { onOpened: () => void }) {
  const [accountType, setAccountType] = useState("checking");
  const [initialDeposit, setInitialDeposit] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [outcome, setOutcome] = useState<{ kind: "ok" | "error" | "info"; text: string } | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (busy) return;
    const checked = checkOpenAccount({ accountType, initialDeposit });
    setErrors(checked.ok ? {} : checked.errors);
    if (!checked.ok) return;
    setBusy(true);
    setOutcome(null);
    try {
      const account = await api.openAccount(checked.value);
      setOutcome(openedText(account));
      setInitialDeposit("");
      onOpened();
    } catch (error) {
      setOutcome({ kind: "error", text: describeError(error) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby="open-title">
      <h2 id="open-title">Open an account</h2>
      {outcome && <Alert kind={outcome.kind}>{outcome.text}</Alert>}
      <form onSubmit={submit} noValidate className="inline-form">
        <Field id="open-type" label="Account type" error={errors.accountType}>
          {(described) => (
            <select id="open-type" value={accountType} aria-describedby={described}
              onChange={(e) => setAccountType(e.target.value)}>
              <option value="checking">Checking</option>
              <option value="savings">Savings</option>
            </select>
          )}
        </Field>
        <Field id="open-deposit" label="Initial deposit (optional)" hint="In US dollars, like 100.00."
          error={errors.initialDeposit}>
          {(described, invalid) => (
            <input id="open-deposit" inputMode="decimal" autoComplete="off" value={initialDeposit}
              aria-describedby={described} aria-invalid={invalid} onChange={(e) => setInitialDeposit(e.target.value)} />
          )}
        </Field>
        <button type="submit" disabled={busy}>{busy ? "Opening…" : "Open account"}</button>
      </form>
    </section>
  );
}

function openedText(account: Account): { kind: "ok" | "info"; text: string } {
  const opened = `${accountName(account)} is open.`;
  const deposit = account.opening_deposit;
  if (!deposit || deposit.status === "completed") {
    return { kind: "ok", text: `${opened} Balance: ${formatMoney(account.balance, account.currency)}.` };
  }
  if (deposit.status === "pending") return { kind: "info", text: `${opened} The initial deposit is pending; it will finish shortly.` };
  return { kind: "info", text: `${opened} The initial deposit did not go through: ${reasonText(deposit.reason ?? null)}` };
}
