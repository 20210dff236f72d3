// The server's rules for each form, checked before sending so a person learns at once what to
// fix. The server checks again: these only save a round trip.
import { parseAmount } from "./money";

export type FieldErrors = Record<string, string>;

export const MIN_PASSWORD = 12;

export interface SignUpForm {
  name: string;
  email: string;
  password: string;
}

export function validateSignUp(form: SignUpForm): FieldErrors {
  const errors: FieldErrors = {};
  if (!form.name.trim()) errors.name = "Enter your name.";
  else if (form.name.length > 100) errors.name = "Use at most 100 characters.";
  const email = emailProblem(form.email);
  if (email) errors.email = email;
  if (form.password.length < MIN_PASSWORD) {
    errors.password = `Use at least ${MIN_PASSWORD} characters; a few words together make a good one.`;
  } else if (form.password.length > 1024) errors.password = "Use at most 1024 characters.";
  return errors;
}

export function validateLogIn(form: { email: string; password: string }): FieldErrors {
  const errors: FieldErrors = {};
  const email = emailProblem(form.email);
  if (email) errors.email = email;
  if (!form.password) errors.password = "Enter your password.";
  return errors;
}

function emailProblem(email: string): string | null {
  const value = email.trim();
  if (!value) return "Enter your email address.";
  if (value.length > 254 || !/^[^\s@]+@[^\s@]+$/.test(value)) return "Enter an email address like ann@example.com.";
  return null;
}

export type MoveType = "deposit" | "withdrawal" | "transfer";

export interface MoveForm {
  type: MoveType;
  accountId: string;
  toAccountId: string;
  amount: string;
  description: string;
}

export interface Movement {
  type: MoveType;
  account_id: number;
  amount: string;
  to_account_id?: number;
  description?: string;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; errors: FieldErrors };

export function checkMove(form: MoveForm): Checked<Movement> {
  const errors: FieldErrors = {};
  const accountId = accountIdOf(form.accountId);
  if (accountId === null) errors.accountId = "Choose one of your accounts.";
  const amount = parseAmount(form.amount);
  if (!amount.ok) errors.amount = amount.error;
  let toAccountId: number | null = null;
  if (form.type === "transfer") {
    toAccountId = accountIdOf(form.toAccountId);
    if (toAccountId === null) errors.toAccountId = "Enter the number of the account to pay, like 12.";
    else if (toAccountId === accountId) errors.toAccountId = "Choose an account other than the one paying.";
  }
  if (form.description.length > 200) errors.description = "Use at most 200 characters.";
  if (Object.keys(errors).length || accountId === null || !amount.ok) return { ok: false, errors };
  const movement: Movement = { type: form.type, account_id: accountId, amount: amount.amount };
  if (toAccountId !== null) movement.to_account_id = toAccountId;
  if (form.description.trim()) movement.description = form.description.trim();
  return { ok: true, value: movement };
}

export interface OpenAccountForm {
  accountType: string;
  initialDeposit: string;
}

export function checkOpenAccount(
  form: OpenAccountForm,
): Checked<{ account_type: string; initial_deposit?: string }> {
  if (form.accountType !== "checking" && form.accountType !== "savings") {
    return { ok: false, errors: { accountType: "Choose checking or savings." } };
  }
  if (!form.initialDeposit.trim()) return { ok: true, value: { account_type: form.accountType } };
  const deposit = parseAmount(form.initialDeposit);
  if (!deposit.ok) return { ok: false, errors: { initialDeposit: deposit.error } };
  return { ok: true, value: { account_type: form.accountType, initial_deposit: deposit.amount } };
}

/** An account number as typed: a whole number from 1 up, else null. */
export function accountIdOf(text: string): number | null {
  const value = text.trim().replace(/^#/, "");
  if (!/^[1-9]\d{0,17}$/.test(value)) return null;
  const id = Number(value);
  return Number.isSafeInteger(id) ? id : null;
}

/** "Try again in 42 seconds (at 14:03:12)." from a Retry-After header, in seconds or as a date. */
export function retryAfterText(header: string | null, now: Date = new Date()): string {
  if (!header) return "Try again in a little while.";
  const seconds = /^\d+$/.test(header.trim())
    ? Number(header.trim())
    : Math.max(0, Math.ceil((Date.parse(header) - now.getTime()) / 1000));
  if (!Number.isFinite(seconds)) return "Try again in a little while.";
  const at = new Date(now.getTime() + seconds * 1000).toLocaleTimeString("en-GB", { hour12: false });
  const wait = seconds < 90 ? `${seconds} second${seconds === 1 ? "" : "s"}` : `${Math.ceil(seconds / 60)} minutes`;
  return `Try again in ${wait} (at ${at}).`;
}
