import { describe, expect, it } from "vitest";
import { ApiError, Unreachable, type Transaction } from "./api";
import { OneKeyPerMovement } from "./movement";

const answer = (status: Transaction["status"]): Transaction => ({
  id: 1,
  type: "deposit",
  account_id: 1,
  to_account_id: null,
  amount: "50.00",
  currency: "USD",
  status,
  reason: status === "rejected" ? "insufficient_funds" : null,
  description: null,
  balance_after: status === "completed" ? "150.00" : null,
  timestamp: "2026-12-03T14:00:00Z",
});

/** A bank that records every key it is sent and answers from a script. */
function bank(...answers: Array<Transaction | Error>) {
  const keys: string[] = [];
  const send = async (key: string) => {
    keys.push(key);
    const next = answers.shift()!;
    if (next instanceof Error) throw next;
    return next;
  };
  return { keys, send };
}

const pending503 = new ApiError(503, "accounts_unavailable", "transaction 1 is pending", {}, "1");

describe("one Idempotency-Key per movement", () => {
  it("sends a double click once", async () => {
    const keys = new OneKeyPerMovement();
    const { keys: sent, send } = bank(answer("completed"));

    const [first, second] = await Promise.all([keys.send(send), keys.send(send)]);

    expect(sent).toHaveLength(1);
    expect(first).toMatchObject({ kind: "completed" });
    expect(second).toBeNull();
  });

  it("retries a pending or unanswered movement with the same key", async () => {
    const keys = new OneKeyPerMovement();
    const { keys: sent, send } = bank(pending503, new Unreachable("down"), answer("pending"), answer("completed"));

    expect(await keys.send(send)).toMatchObject({ kind: "pending" });
    expect(await keys.send(send)).toMatchObject({ kind: "pending" });
    expect(await keys.send(send)).toMatchObject({ kind: "pending" });
    expect(await keys.send(send)).toMatchObject({ kind: "completed" });
    expect(new Set(sent).size).toBe(1);
  });

  it("makes a new key after the bank's final answer or a change to the form", async () => {
    const keys = new OneKeyPerMovement();
    const { keys: sent, send } = bank(answer("rejected"), answer("completed"), answer("completed"));

    expect(await keys.send(send)).toMatchObject({ kind: "rejected" });
    await keys.send(send);
    keys.changed();
    await keys.send(send);
    expect(new Set(sent).size).toBe(3);
  });

  it("reports a refusal of the request itself as failed, in words", async () => {
    const keys = new OneKeyPerMovement();
    const { send } = bank(new ApiError(400, "invalid_request", "amount must be greater than zero", {}, null));

    expect(await keys.send(send)).toEqual({ kind: "failed", text: "Amount must be greater than zero." });
  });
});
