import { useState, type FormEvent } from "react";
import { api } from "../api";
import { describeError, reasonText } from "../messages";
import { OneKeyPerMovement, type Outcome } from "../movement";
import { formatMoney } from "../money";
import { Alert, Field } from "../ui";
import { checkMove, type FieldErrors, type MoveForm, type MoveType } from "../validation";
import { accountName, useAccounts } from "./Accounts";

const VERBS: Record<MoveType, string> = { deposit: "Deposit", withdrawal: "Withdrawal", transfer: "Transfer" };

export function MoveMoney({ version }: { version: number }) {
  const [done, setDone] = useState(0);
  const accounts = useAccounts(version + done);
  const [form, setForm] = useState<MoveForm>({ type: "deposit", accountId: "", toAccountId: "", amount: "", description: "" });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [busy, setBusy] = useState(false);
  const [keys] = useState(() => new OneKeyPerMovement());

  const accountId = form.accountId || String(accounts.data?.[0]?.id ?? "");
  const update = (change: Partial<MoveForm>) => {
    keys.changed();
    setOutcome(null);
    setForm({ ...form, accountId, ...change });
  };

  async function submit(event: FormEvent) {
    event.preventDefault();
    const checked = checkMove({ ...form, accountId });
    setErrors(checked.ok ? {} : checked.errors);
    if (!checked.ok) return;
    setBusy(true);
    const result = await keys.send((key) => api.moveMoney(checked.value, key));
    if (result === null) return;
    setOutcome(result);
    setDone((n) => n + 1);
    setBusy(false);
  }

  const list = accounts.data ?? [];
  return (
    <section className="card" aria-labelledby="move-title">
      <h1 id="move-title">Move money</h1>
      {accounts.error !== undefined && <Alert kind="error">{describeError(accounts.error)}</Alert>}
      {accounts.data && list.length === 0 && <p>Open an account first, on the Accounts page.</p>}
      <form onSubmit={submit} noValidate>
        <fieldset>
          <legend>What to do</legend>
          <div className="choices">
            {(Object.keys(VERBS) as MoveType[]).map((type) => (
              <label key={type} className="choice">
                <input type="radio" name="move-type" value={type} checked={form.type === type}
                  onChange={() => update({ type })} />
                {VERBS[type]}
              </label>
            ))}
          </div>
        </fieldset>
        <Field id="move-account" label={form.type === "transfer" ? "From account" : "Account"} error={errors.accountId}>
          {(described) => (
            <select id="move-account" value={accountId} aria-describedby={described}
              onChange={(e) => update({ accountId: e.target.value })}>
              {list.map((account) => (
                <option key={account.id} value={account.id}>
                  {accountName(account)} · {formatMoney(account.balance, account.currency)}
                </option>
              ))}
            </select>
          )}
        </Field>
        {form.type === "transfer" && (
          <Field id="move-to" label="To account number" hint="The number of the account to pay; it may be someone else's."
            error={errors.toAccountId}>
            {(described, invalid) => (
              <input id="move-to" inputMode="numeric" autoComplete="off" value={form.toAccountId}
                aria-describedby={described} aria-invalid={invalid} onChange={(e) => update({ toAccountId: e.target.value })} />
            )}
          </Field>
        )}
        <Field id="move-amount" label="Amount" hint="Like 20.00; at most two decimals." error={errors.amount}>
          {(described, invalid) => (
            <input id="move-amount" inputMode="decimal" autoComplete="off" value={form.amount}
              aria-describedby={described} aria-invalid={invalid} onChange={(e) => update({ amount: e.target.value })} />
          )}
        </Field>
        <Field id="move-description" label="Note (optional)" error={errors.description}>
          {(described, invalid) => (
            <input id="move-description" autoComplete="off" value={form.description} maxLength={200}
              aria-describedby={described} aria-invalid={invalid} onChange={(e) => update({ description: e.target.value })} />
          )}
        </Field>
        <button type="submit" disabled={busy || list.length === 0}>
          {busy ? "Sending…" : outcome?.kind === "pending" ? "Check again" : VERBS[form.type]}
        </button>
      </form>
      <div aria-live="polite">{outcome && <OutcomeText outcome={outcome} />}</div>
    </section>
  );
}

function OutcomeText({ outcome }: { outcome: Outcome }) {
  if (outcome.kind === "completed") {
    const t = outcome.transaction;
    const balance = t.balance_after ? ` New balance: ${formatMoney(t.balance_after, t.currency ?? "USD")}.` : "";
    return (
      <Alert kind="ok">
        Completed: {VERBS[t.type as MoveType] ?? t.type} of {formatMoney(t.amount, t.currency ?? "USD")}.{balance}
      </Alert>
    );
  }
  if (outcome.kind === "rejected") {
    const t = outcome.transaction;
    return (
      <Alert kind="error">
        Refused: {VERBS[t.type as MoveType] ?? t.type} of {formatMoney(t.amount, t.currency ?? "USD")}. {reasonText(t.reason)} No money moved.
      </Alert>
    );
  }
  return <Alert kind={outcome.kind === "pending" ? "info" : "error"}>{outcome.text}</Alert>;
}
