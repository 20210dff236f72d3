// Server-sent events over fetch: EventSource cannot send the Authorization header, and the token
// never goes in a URL (where logs and history would keep it).
import { authHeaders, type Notification } from "./api";

export interface SseEvent {
  id: string | null;
  event: string;
  data: string;
}

/** Split a text stream into events; returns the events complete so far and the unparsed rest. */
export function parseSse(buffer: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  const blocks = buffer.replace(/\r\n?/g, "\n").split("\n\n");
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    let id: string | null = null;
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ id, event, data: data.join("\n") });
  }
  return { events, rest };
}

/** Follow /api/notifications/stream until `signal` aborts, reconnecting with Last-Event-ID so
 * nothing is missed; `onStatus` says whether the stream is live. */
export async function followNotifications(
  onNotification: (notification: Notification) => void,
  onStatus: (live: boolean) => void,
  signal: AbortSignal,
): Promise<void> {
  let lastId: string | null = null;
  let backoff = 1000;
  while (!signal.aborted) {
    try {
      const headers: Record<string, string> = { Accept: "text/event-stream", ...authHeaders() };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch("/api/notifications/stream", { headers, signal });
      if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
      onStatus(true);
      backoff = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parsed = parseSse(buffer + value);
        buffer = parsed.rest;
        for (const event of parsed.events) {
          if (event.id) lastId = event.id;
          if (event.event === "notification") onNotification(JSON.parse(event.data) as Notification);
        }
      }
    } catch {
      if (signal.aborted) return;
    }
    onStatus(false);
    await new Promise((resolve) => setTimeout(resolve, backoff));
    backoff = Math.min(backoff * 2, 30_000);
  }
}
