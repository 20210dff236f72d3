import { describe, expect, it } from "vitest";
import { compareDecimal, formatMoney, parseAmount } from "./money";

describe("formatMoney", () => {
  it("groups thousands and keeps two decimals", () => {
    expect(formatMoney("1234567.5")).toBe("$1,234,567.50");
    expect(formatMoney("0.00")).toBe("$0.00");
    expect(formatMoney("20")).toBe("$20.00");
  });

  it("shows debits with a minus sign and the currency's symbol", () => {
    expect(formatMoney("-100.00")).toBe("−$100.00");
    expect(formatMoney("12.30", "EUR")).toBe("€12.30");
    expect(formatMoney("5.00", "JPY")).toBe("JPY 5.00");
    expect(formatMoney("-0.00")).toBe("$0.00");
  });

  it("keeps digits a float would lose", () => {
    expect(formatMoney("999999999.99")).toBe("$999,999,999.99");
    expect(formatMoney("9007199254740993.01")).toBe("$9,007,199,254,740,993.01");
  });

  it("shows what is not a decimal string unchanged", () => {
    expect(formatMoney("n/a")).toBe("n/a");
  });
});

describe("parseAmount", () => {
  it("turns what a person types into the API's decimal string", () => {
    expect(parseAmount("20")).toEqual({ ok: true, amount: "20.00" });
    expect(parseAmount(" 1,250.5 ")).toEqual({ ok: true, amount: "1250.50" });
    expect(parseAmount("$0.10")).toEqual({ ok: true, amount: "0.10" });
    expect(parseAmount("007.")).toEqual({ ok: true, amount: "7.00" });
    expect(parseAmount("1000000000.00")).toEqual({ ok: true, amount: "1000000000.00" });
  });

  it("refuses what the server would refuse, saying why", () => {
    expect(parseAmount("")).toEqual({ ok: false, error: "Enter an amount." });
    expect(parseAmount("0")).toEqual({ ok: false, error: "The amount must be more than zero." });
    expect(parseAmount("0.00")).toMatchObject({ ok: false });
    expect(parseAmount("1.005")).toEqual({ ok: false, error: "Use at most two decimal places." });
    expect(parseAmount("-5")).toMatchObject({ ok: false });
    expect(parseAmount("1e3")).toMatchObject({ ok: false });
    expect(parseAmount("12abc")).toMatchObject({ ok: false });
    expect(parseAmount("1000000000.01")).toEqual({
      ok: false,
      error: "The amount can be at most $1,000,000,000.00.",
    });
    expect(parseAmount("99999999999")).toMatchObject({ ok: false });
  });
});

describe("compareDecimal", () => {
  it("orders by value, not by text", () => {
    expect(compareDecimal("9.00", "10.00")).toBe(-1);
    expect(compareDecimal("10.00", "10.00")).toBe(0);
    expect(compareDecimal("10.01", "10.00")).toBe(1);
  });
});
