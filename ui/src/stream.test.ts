import { describe, expect, it } from "vitest";
import { parseSse } from "./stream";

describe("parseSse", () => {
  it("reads complete events and keeps a partial one for the next chunk", () => {
    const { events, rest } = parseSse('id: 7\nevent: notification\ndata: {"id":7}\n\n: keep-alive\n\nid: 8\ndata: par');
    expect(events).toEqual([{ id: "7", event: "notification", data: '{"id":7}' }]);
    expect(rest).toBe("id: 8\ndata: par");
    expect(parseSse(rest + "t\n\n").events).toEqual([{ id: "8", event: "message", data: "part" }]);
  });

  it("skips comments and joins multi-line data", () => {
    expect(parseSse(":x\r\ndata: a\r\ndata: b\r\n\r\n").events).toEqual([{ id: null, event: "message", data: "a\nb" }]);
  });
});
