import { describe, expect, it } from "vitest";
import { ApiError, Unreachable } from "./api";
import { describeError, logInProblem, reasonText, signUpProblem } from "./messages";

const error = (status: number, code: string, detail: string, fields = {}, retryAfter: string | null = null) =>
  new ApiError(status, code, detail, fields, retryAfter);

describe("log-in messages", () => {
  it("says the credentials are wrong without saying which", () => {
    expect(logInProblem(error(401, "invalid_credentials", "email or password is wrong"))).toBe(
      "The email or the password is wrong.",
    );
  });

  it("says when to try again after the throttle", () => {
    expect(logInProblem(error(429, "too_many_login_attempts", "too many", {}, "30"))).toMatch(
      /^Too many log-in attempts for this email\. Try again in 30 seconds \(at \d\d:\d\d:\d\d\)\.$/,
    );
  });
});

describe("sign-up messages", () => {
  it("puts a taken email and a short password on their fields", () => {
    expect(signUpProblem(error(409, "email_taken", "a user with this email already exists"))).toEqual({
      message: "",
      fields: { email: "An account with this email already exists. Log in instead." },
    });
    expect(signUpProblem(error(400, "invalid_request", "bad", { password: "Expected `str` of length >= 12" }))).toEqual({
      message: "",
      fields: { password: "The password is too short: use at least 12 characters." },
    });
  });
});

describe("any other failure", () => {
  it("tells a down bank from a refusal", () => {
    expect(describeError(new Unreachable("The bank cannot be reached right now."))).toBe(
      "The bank cannot be reached right now.",
    );
    expect(describeError(error(503, "unavailable", "accounts is unavailable."))).toBe(
      "The bank is having trouble right now: accounts is unavailable. Try again soon.",
    );
    expect(describeError(error(404, "not_found", "account 9 not found"))).toBe("Account 9 not found.");
    expect(describeError(new TypeError("x"))).toBe("Something went wrong in this page. Reload it and try again.");
  });

  it("names a refusal's reason in words", () => {
    expect(reasonText("insufficient_funds")).toMatch(/^Insufficient funds/);
    expect(reasonText("recipient_not_found")).toMatch(/^Unknown account/);
    expect(reasonText("currency_mismatch")).toMatch(/^Currency mismatch/);
    expect(reasonText("daily_limit")).toBe("Daily limit.");
  });
});
