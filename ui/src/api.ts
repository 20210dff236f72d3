// The bank's API on this origin, as the ingress routes it. The access token lives in this
// module's memory only: a script injected into the page cannot find it in localStorage, and a
// reload or a closed tab forgets it.

export interface User {
  id: number;
  name: string;
  email: string;
  role: string;
  created_at: string;
}

export interface Account {
  id: number;
  user_id: number;
  account_type: string;
  currency: string;
  balance: string;
  created_at: string;
  opening_deposit?: { status: string; transaction_id?: number; reason?: string };
}

export interface Transaction {
  id: number;
  type: string;
  account_id: number;
  to_account_id: number | null;
  amount: string;
  currency: string | null;
  status: "pending" | "completed" | "rejected";
  reason: string | null;
  description: string | null;
  balance_after: string | null;
  timestamp: string;
}

export interface Posting {
  id: number;
  transaction_id: number;
  amount: string;
  balance_after: string;
  timestamp: string;
}

export interface Notification {
  id: number;
  message: string;
  event_type: string;
  transaction_id: number | null;
  timestamp: string;
  read: boolean;
}

export interface Page<T> {
  items: T[];
  next: string | null;
}

/** An answer other than 2xx, with the API's error body `{status, error, detail, errors?}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly fields: Record<string, string>,
    readonly retryAfter: string | null,
  ) {
    super(detail);
  }
}

/** The bank could not be reached at all: no answer, or not the API answering. */
export class Unreachable extends Error {}

let token: string | null = null;
const signedOut = new Set<() => void>();

export function setToken(value: string | null): void {
  token = value;
}

export function authHeaders(): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Called when the server no longer takes the token (it expired): the app asks to log in. */
export function onSignedOut(listener: () => void): () => void {
  signedOut.add(listener);
  return () => signedOut.delete(listener);
}

async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json", ...authHeaders() };
  if (init.body) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(`/api${path}`, { ...init, headers: { ...headers, ...(init.headers as object) } });
  } catch {
    throw new Unreachable("The bank cannot be reached right now. Check your connection and try again.");
  }
  if (response.ok) return response;
  const body = await response.json().catch(() => null);
  if (!body || typeof body.detail !== "string") {
    throw new Unreachable(`The bank is not answering properly right now (HTTP ${response.status}). Try again soon.`);
  }
  const fields: Record<string, string> = {};
  for (const item of body.errors ?? []) fields[item.field] = item.message;
  const error = new ApiError(response.status, body.error, body.detail, fields, response.headers.get("Retry-After"));
  if (response.status === 401 && token) signedOut.forEach((listener) => listener());
  throw error;
}

async function json<T>(path: string, init?: RequestInit): Promise<T> {
  return (await request(path, init)).json() as Promise<T>;
}

async function page<T>(path: string, query: Record<string, string | undefined>): Promise<Page<T>> {
  const params = new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => !!e[1]));
  const response = await request(`${path}?${params}`);
  return { items: (await response.json()) as T[], next: response.headers.get("X-Next-Cursor") };
}

/** Every page of a cursor-paged list, for lists a person reads whole (their accounts). */
export async function allPages<T>(fetchPage: (cursor?: string) => Promise<Page<T>>): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    items.push(...page.items);
    cursor = page.next ?? undefined;
  } while (cursor);
  return items;
}

const post = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "POST",
  body: JSON.stringify(body),
  headers,
});

export const api = {
  signUp: (name: string, email: string, password: string) => json<User>("/users", post({ name, email, password })),
  logIn: (email: string, password: string) =>
    json<{ access_token: string; expires_in: number }>("/auth/token", post({ email, password })),
  me: () => json<User>("/users/me"),
  users: (cursor?: string) => page<User>("/users", { cursor }),
  accounts: (cursor?: string) => page<Account>("/accounts", { cursor, limit: "100" }),
  account: (id: number) => json<Account>(`/accounts/${id}`),
  openAccount: (body: { account_type: string; initial_deposit?: string }) => json<Account>("/accounts", post(body)),
  postings: (accountId: number, cursor?: string) => page<Posting>(`/accounts/${accountId}/postings`, { cursor }),
  transactions: (filter: { accountId: number; type?: string; cursor?: string }) =>
    page<Transaction>("/transactions", { account_id: String(filter.accountId), type: filter.type, cursor: filter.cursor }),
  moveMoney: (body: object, idempotencyKey: string) =>
    json<Transaction>("/transactions", post(body, { "Idempotency-Key": idempotencyKey })),
  notifications: (cursor?: string) => page<Notification>("/notifications", { cursor }),
  unreadNotifications: () => page<Notification>("/notifications", { unread: "true", limit: "100" }),
  markRead: (id: number) => json<Notification>(`/notifications/${id}/read`, { method: "POST" }),
};

/** One key per money movement the person means: a double click or a retry sends the same one. */
export function newIdempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
