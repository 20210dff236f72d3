// One money movement as the person means it: one Idempotency-Key for it, however often it is sent.
import { ApiError, newIdempotencyKey, Unreachable, type Transaction } from "./api";
import { describeError } from "./messages";

export type Outcome =
  | { kind: "completed"; transaction: Transaction }
  | { kind: "rejected"; transaction: Transaction }
  | { kind: "pending"; text: string }
  | { kind: "failed"; text: string };

export function outcomeOf(transaction: Transaction): Outcome {
  if (transaction.status === "completed") return { kind: "completed", transaction };
  if (transaction.status === "rejected") return { kind: "rejected", transaction };
  return { kind: "pending", text: "Pending: it will finish shortly. Check again to see its outcome." };
}

export function failureOf(error: unknown): Outcome {
  if (error instanceof ApiError && error.status === 503) {
    return { kind: "pending", text: "Pending: the bank is busy and it will finish shortly. Check again to see its outcome." };
  }
  if (error instanceof Unreachable) {
    return { kind: "pending", text: `${error.message} If it went through, checking again shows it; it never moves money twice.` };
  }
  return { kind: "failed", text: describeError(error) };
}

/** A definitive answer ends the movement; after any other, sending again must reuse its key. */
const isFinal = (outcome: Outcome) => outcome.kind === "completed" || outcome.kind === "rejected";

/** The key of the movement being filled in: kept across double clicks and retries, renewed when
 * the form changes or the bank gave its final answer. */
export class OneKeyPerMovement {
  private key = newIdempotencyKey();
  private sending = false;

  changed(): void {
    this.key = newIdempotencyKey();
  }

  /** Send with the movement's key; null (and nothing sent) while a send is under way. */
  async send(move: (key: string) => Promise<Transaction>): Promise<Outcome | null> {
    if (this.sending) return null;
    this.sending = true;
    try {
      let outcome: Outcome;
      try {
        outcome = outcomeOf(await move(this.key));
      } catch (error) {
        outcome = failureOf(error);
      }
      if (isFinal(outcome)) this.changed();
      return outcome;
    } finally {
      this.sending = false;
    }
  }
}
