import { describe, expect, it } from "vitest";
import { accountIdOf, checkMove, checkOpenAccount, retryAfterText, validateLogIn, validateSignUp } from "./validation";

const move = { type: "deposit" as const, accountId: "1", toAccountId: "", amount: "50", description: "" };

describe("sign-up and log-in", () => {
  it("names every empty or short field", () => {
    expect(validateSignUp({ name: " ", email: "ann", password: "short" })).toEqual({
      name: "Enter your name.",
      email: "Enter an email address like ann@example.com.",
      password: "Use at least 12 characters; a few words together make a good one.",
    });
    expect(validateLogIn({ email: "", password: "" })).toEqual({
      email: "Enter your email address.",
      password: "Enter your password.",
    });
  });

  it("lets a good form through", () => {
    expect(validateSignUp({ name: "Ann Lee", email: "ann@example.com", password: "correct horse battery" })).toEqual({});
    expect(validateLogIn({ email: "ann@example.com", password: "x" })).toEqual({});
  });
});

describe("moving money", () => {
  it("sends the amount as the API's decimal string", () => {
    expect(checkMove(move)).toEqual({ ok: true, value: { type: "deposit", account_id: 1, amount: "50.00" } });
  });

  it("needs a payee other than the paying account for a transfer", () => {
    expect(checkMove({ ...move, type: "transfer" })).toEqual({
      ok: false,
      errors: { toAccountId: "Enter the number of the account to pay, like 12." },
    });
    expect(checkMove({ ...move, type: "transfer", toAccountId: "1" })).toMatchObject({
      errors: { toAccountId: "Choose an account other than the one paying." },
    });
    expect(checkMove({ ...move, type: "transfer", toAccountId: "#2", description: " rent " })).toEqual({
      ok: true,
      value: { type: "transfer", account_id: 1, to_account_id: 2, amount: "50.00", description: "rent" },
    });
  });

  it("refuses a bad amount and no account", () => {
    expect(checkMove({ ...move, accountId: "", amount: "0.001" })).toEqual({
      ok: false,
      errors: { accountId: "Choose one of your accounts.", amount: "Use at most two decimal places." },
    });
  });
});

describe("opening an account", () => {
  it("takes an optional initial deposit", () => {
    expect(checkOpenAccount({ accountType: "savings", initialDeposit: "" })).toEqual({
      ok: true,
      value: { account_type: "savings" },
    });
    expect(checkOpenAccount({ accountType: "checking", initialDeposit: "100" })).toEqual({
      ok: true,
      value: { account_type: "checking", initial_deposit: "100.00" },
    });
    expect(checkOpenAccount({ accountType: "checking", initialDeposit: "-1" })).toMatchObject({ ok: false });
  });
});

describe("small parsers", () => {
  it("reads account numbers", () => {
    expect(accountIdOf("12")).toBe(12);
    expect(accountIdOf("0")).toBeNull();
    expect(accountIdOf("1.5")).toBeNull();
    expect(accountIdOf("99999999999999999999")).toBeNull();
  });

  it("says when to retry from Retry-After", () => {
    const now = new Date("2026-12-03T14:00:00Z");
    expect(retryAfterText("42", now)).toMatch(/^Try again in 42 seconds \(at \d\d:00:42\)\.$/);
    expect(retryAfterText("600", now)).toMatch(/^Try again in 10 minutes/);
    expect(retryAfterText(null, now)).toBe("Try again in a little while.");
  });
});
