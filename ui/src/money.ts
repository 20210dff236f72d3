// Money stays a decimal string from the API to the screen: digits are moved, never computed
// through a binary float, so "0.10" + "0.20" can never show as 0.30000000000000004.

const SYMBOLS: Record<string, string> = { USD: "$", EUR: "€", GBP: "£", CAD: "CA$", AUD: "A$", CHF: "CHF " };

// The server's limits (microbank/platform/money.py): more than zero, two decimals, one billion.
export const MAX_AMOUNT = "1000000000.00";

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

function groupThousands(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** "-1234.5" in USD -> "−$1,234.50"; anything that is not a decimal string is shown as it came. */
export function formatMoney(amount: string, currency = "USD"): string {
  const match = DECIMAL.exec(amount.trim());
  if (!match) return amount;
  const [, sign, whole = "0", fraction = ""] = match;
  const cents = fraction.padEnd(2, "0");
  const symbol = SYMBOLS[currency] ?? `${currency} `;
  const negative = sign === "-" && /[1-9]/.test(whole + cents);
  return `${negative ? "−" : ""}${symbol}${groupThousands(whole.replace(/^0+(?=\d)/, ""))}.${cents}`;
}

export type AmountParse = { ok: true; amount: string } | { ok: false; error: string };

/** What a person typed ("1,250.5", " 20 ") -> the decimal string the API takes ("1250.50"). */
export function parseAmount(input: string): AmountParse {
  const text = input.trim().replace(/^\$/, "").replace(/,/g, "");
  if (text === "") return { ok: false, error: "Enter an amount." };
  const match = /^(\d+)(?:\.(\d*))?$/.exec(text);
  if (!match) return { ok: false, error: "Enter an amount in digits, like 20.00." };
  const [, rawWhole = "", fraction = ""] = match;
  if (fraction.length > 2) return { ok: false, error: "Use at most two decimal places." };
  const whole = rawWhole.replace(/^0+(?=\d)/, "");
  const amount = `${whole}.${fraction.padEnd(2, "0")}`;
  if (/^0\.00$/.test(amount)) return { ok: false, error: "The amount must be more than zero." };
  if (compareDecimal(amount, MAX_AMOUNT) > 0) {
    return { ok: false, error: `The amount can be at most ${formatMoney(MAX_AMOUNT)}.` };
  }
  return { ok: true, amount };
}

/** Compare two non-negative two-decimal strings without turning either into a number. */
export function compareDecimal(a: string, b: string): number {
  const [aWhole = "", aCents = ""] = a.split(".");
  const [bWhole = "", bCents = ""] = b.split(".");
  if (aWhole.length !== bWhole.length) return aWhole.length < bWhole.length ? -1 : 1;
  const left = aWhole + aCents;
  const right = bWhole + bCents;
  return left === right ? 0 : left < right ? -1 : 1;
}
