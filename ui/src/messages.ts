// What went wrong, in words for the person at the screen, from the API's error bodies.
import { ApiError, Unreachable } from "./api";
import { retryAfterText, type FieldErrors } from "./validation";

/** What went wrong, in words for the person at the screen. */
export function describeError(error: unknown): string {
  if (error instanceof Unreachable) return error.message;
  if (error instanceof ApiError) {
    if (error.status >= 500) return `The bank is having trouble right now: ${error.detail} Try again soon.`;
    return sentence(error.detail);
  }
  return "Something went wrong in this page. Reload it and try again.";
}

export function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return trimmed;
  const capital = trimmed[0]!.toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

const REASONS: Record<string, string> = {
  insufficient_funds: "Insufficient funds: the account does not hold enough money.",
  account_not_found: "Unknown account: that account does not exist or is not yours.",
  recipient_not_found: "Unknown account: no account has that number.",
  currency_mismatch: "Currency mismatch: the two accounts hold different currencies.",
};

export function reasonText(reason: string | null): string {
  return (reason && REASONS[reason]) ?? sentence((reason ?? "refused").replace(/_/g, " "));
}

export function logInProblem(error: unknown): string {
  if (error instanceof ApiError && error.status === 429) {
    return `Too many log-in attempts for this email. ${retryAfterText(error.retryAfter)}`;
  }
  if (error instanceof ApiError && error.status === 401) return "The email or the password is wrong.";
  return describeError(error);
}

export function signUpProblem(error: unknown): { message: string; fields: FieldErrors } {
  if (error instanceof ApiError && error.code === "email_taken") {
    return { message: "", fields: { email: "An account with this email already exists. Log in instead." } };
  }
  if (error instanceof ApiError && error.status === 400 && error.fields.password) {
    return { message: "", fields: { password: "The password is too short: use at least 12 characters." } };
  }
  return { message: describeError(error), fields: error instanceof ApiError ? error.fields : {} };
}
