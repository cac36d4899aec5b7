// collab-connection.mjs against a WebSocket stand-in the test drives: answers
// matched to requests by rid, refusals and closes as RequestErrors, the rate
// limit under the server's, presence coalesced while it waits.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Connection, RequestError } from "../collab-connection.mjs";

/** A WebSocket the test opens, feeds and closes by hand. */
class FakeSocket {
  static OPEN = 1;
  static last = null;
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.last = this;
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code, reason) {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  receive(frame) {
    this.onmessage?.({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }
}

/** An open connection over a FakeSocket, and what its handlers saw. */
function opened() {
  const seen = { frames: [], closes: [], opens: 0 };
  const conn = new Connection(
    "ws://collab.test/ws/session/S",
    ["collab.v1", "bearer.T"],
    {
      onOpen: () => seen.opens++,
      onFrame: (f) => seen.frames.push(f),
      onClose: (info) => seen.closes.push(info),
    },
    FakeSocket,
  );
  const ws = FakeSocket.last;
  ws.open();
  return { conn, ws, seen };
}

test("a request resolves with the frame that answers its rid, and a refusal rejects with its code", async () => {
  const { conn, ws, seen } = opened();
  assert.equal(seen.opens, 1);
  assert.deepEqual(ws.protocols, ["collab.v1", "bearer.T"]);
  const history = conn.request({ type: "history", after: 0 });
  const textAt = conn.request({ type: "text_at", file: "nope", rev: 0 });
  assert.deepEqual(ws.sent, [
    { type: "history", after: 0, rid: 1 },
    { type: "text_at", file: "nope", rev: 0, rid: 2 },
  ]);
  // Answers come in any order; a frame that is not an answer settles nothing.
  ws.receive({ type: "event", rid: 1 });
  ws.receive({ type: "error", rid: 2, code: "unknown_file", message: "no such file" });
  ws.receive({ type: "versions", rid: 1, versions: [], has_more: false });
  assert.equal((await history).type, "versions");
  await assert.rejects(textAt, (e) => e instanceof RequestError && e.code === "unknown_file");
  // Every frame reaches the owner too, answers included; garbage does not.
  ws.receive("not json");
  ws.receive("null");
  assert.deepEqual(
    seen.frames.map((f) => f.type),
    ["event", "error", "versions"],
  );
  conn.abandon();
});

test("a close rejects what waits with offline, once, and nothing is sent after it", async () => {
  const { conn, ws, seen } = opened();
  const waiting = conn.request({ type: "events_since", since: 0 });
  ws.close(1006, "gone");
  await assert.rejects(waiting, (e) => e.code === "offline");
  ws.onerror?.();
  assert.deepEqual(seen.closes, [{ code: 1006, reason: "gone" }], "onClose runs once");
  assert.equal(conn.open, false);
  assert.equal(conn.send({ type: "heartbeat" }), false);
  await assert.rejects(conn.request({ type: "heartbeat" }), (e) => e.code === "offline");
  assert.equal(ws.sent.length, 1);
});

test("past the burst frames wait for the rate, and a newer presence replaces a queued one", async () => {
  const { conn, ws } = opened();
  for (let i = 0; i < 100; i++) conn.send({ type: "chat_send", text: `m${i}` });
  const burst = ws.sent.length;
  assert.ok(burst >= 79 && burst <= 80, `the burst sent ${burst}`);
  conn.send({ type: "presence", status: "idle" });
  conn.send({ type: "presence", status: "active" });
  const started = Date.now();
  while (ws.sent.length < 101) {
    if (Date.now() - started > 5000) assert.fail(`stuck at ${ws.sent.length}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const seconds = (Date.now() - started) / 1000;
  // 21 more at 40 a second: about half a second, never at once.
  assert.ok(seconds > 0.3, `the rest went out in ${seconds}s`);
  assert.deepEqual(ws.sent.at(-1), { type: "presence", status: "active" }, "one presence, the newer");
  assert.equal(ws.sent.filter((f) => f.type === "presence").length, 1);
  assert.deepEqual(
    ws.sent.filter((f) => f.type === "chat_send").map((f) => f.text),
    Array.from({ length: 100 }, (_, i) => `m${i}`),
    "in order",
  );
  conn.abandon();
});
