// The browser client library (collab-wire/js/collab-client.mjs) under
// Node.js against the real example server that tests/client_library.rs
// starts (COLLAB_URL): credentials, joining, the document, presence, chat
// with threads, comments and reactions, roles, reconnecting with resume,
// and the ways a client is stopped. Run with --experimental-websocket on
// Node 20 (global WebSocket).

import assert from "node:assert/strict";
import { test } from "node:test";

import { CollabClient } from "../../../../collab-wire/js/collab-client.mjs";
import { TextOperation } from "../../../../collab-wire/js/collab-ot.mjs";

const BASE = process.env.COLLAB_URL;
assert.ok(BASE, "COLLAB_URL names the server");
const WS = BASE.replace(/^http/, "ws");
const WAIT = 10000;

/** A fresh guest token from the server. */
async function guest() {
  const res = await fetch(`${BASE}/api/v1/guests`, { method: "POST" });
  assert.equal(res.status, 201);
  return (await res.json()).token;
}

/** A new session created over REST by `token` (who becomes its host). */
async function createSession(token, code = "let x = 1;\n") {
  const res = await fetch(`${BASE}/api/v1/sessions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ title: "Client library", language: "javascript", code }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()).id;
}

function client(sessionId, token, name, options = {}) {
  return new CollabClient({
    url: `${WS}/ws/session/${encodeURIComponent(sessionId)}`,
    token,
    name,
    sessionUrl: `${BASE}/api/v1/sessions/${encodeURIComponent(sessionId)}`,
    retry: { baseMs: 100, maxMs: 1000 },
    ...options,
  });
}

/** Resolves when `type` is reported with arguments that satisfy `accept`. */
function reported(c, type, accept = () => true, what = type) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`timed out waiting for ${what}`));
    }, WAIT);
    const stop = c.on(type, (...args) => {
      if (!accept(...args)) return;
      clearTimeout(timer);
      stop();
      resolve(args);
    });
  });
}

/** Polls until `probe()` is truthy. */
async function until(probe, what) {
  const deadline = Date.now() + WAIT;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An operation inserting `text` at `at` in a document of `length`. */
function insertAt(length, at, text) {
  return new TextOperation().retain(at).insert(text).retain(length - at);
}

/** A host and a guest joined to a new session. */
async function pair() {
  const [hostToken, guestToken] = await Promise.all([guest(), guest()]);
  const id = await createSession(hostToken);
  const host = client(id, hostToken, "Hana");
  const other = client(id, guestToken, "Omar");
  host.connect();
  await host.ready();
  other.connect();
  await other.ready();
  await until(() => host.participants.get(other.me)?.present, "the host to see the guest");
  return { id, host, other, tokens: [hostToken, guestToken] };
}

test("joins with a token; each sees the other with their roles", async () => {
  const { host, other } = await pair();
  assert.equal(host.role, "host");
  assert.equal(other.role, "editor");
  assert.equal(other.participants.get(host.me).name, "Hana");
  assert.equal(host.participants.get(other.me).name, "Omar");
  assert.equal(host.state, "live");
  assert.equal(other.doc.text("main"), "let x = 1;\n");
  host.close();
  other.close();
});

test("edits from both sides converge, and each side is told of the other's", async () => {
  const { host, other } = await pair();
  const seen = reported(other, "remote-edit", (file) => file === "main");
  host.edit("main", insertAt(host.doc.text("main").length, 0, "// hi\n"));
  const [file, op] = await seen;
  assert.equal(file, "main");
  assert.ok(op instanceof TextOperation);
  assert.equal(other.doc.text("main"), "// hi\nlet x = 1;\n");
  // At once, at the same place: both keystrokes survive, in one order on both sides.
  const end = host.doc.text("main").length;
  host.edit("main", insertAt(end, end, "A"));
  other.edit("main", insertAt(end, end, "B"));
  await until(() => !host.doc.hasPending && !other.doc.hasPending && host.doc.text("main") === other.doc.text("main"), "convergence");
  assert.match(host.doc.text("main"), /let x = 1;\n(AB|BA)$/);
  host.close();
  other.close();
});

test("presence reaches the others, and a caret moves with others' edits", async () => {
  const { host, other } = await pair();
  const seen = reported(other, "presence", (id) => id === host.me && other.participants.get(id).presence?.cursors?.length > 0);
  host.setPresence({ cursor: { file: "main", anchor: 4, head: 5 }, viewport: { file: "main", first_line: 1, last_line: 2 } });
  await seen;
  assert.deepEqual(other.participants.get(host.me).presence.cursors, [{ file: "main", anchor: 4, head: 5 }]);
  // The guest types before the host's caret: the caret moves right on the guest's side too.
  other.edit("main", insertAt(other.doc.text("main").length, 0, "xx"));
  assert.deepEqual(other.participants.get(host.me).presence.cursors, [{ file: "main", anchor: 6, head: 7 }]);
  host.setStatus("away");
  await until(() => other.participants.get(host.me).presence.status === "away", "the host away on the guest's side");
  host.close();
  other.close();
});

test("chat: messages, mentions, threads, comments, reactions, edits and deletes", async () => {
  const { host, other } = await pair();
  const posted = reported(other, "event", (e) => e.kind === "message_posted");
  assert.equal(await host.sendMessage("hello @Omar", { mentions: [other.me] }), "sent");
  const [message] = await posted;
  assert.equal(message.message.text, "hello @Omar");
  assert.deepEqual(message.message.mentions, [other.me]);

  const root = message.message.id;
  await other.sendMessage("hi back", { replyTo: root });
  await until(() => host.thread(root).length === 2, "the reply in the host's thread");
  assert.equal(host.thread(root)[1].text, "hi back");

  await other.sendMessage("why this line?", { anchor: { file: "main", line: 1 } });
  await until(() => host.comments("main").length === 1, "the comment on the host's side");
  assert.equal(host.comments("main")[0].anchor.line, 1);

  await other.react(root, "👍");
  await until(() => host.messages.get(root).reactions?.["👍"]?.includes(other.me), "the reaction");
  await host.editMessage(root, "hello, @Omar");
  await until(() => other.messages.get(root).text === "hello, @Omar", "the edit");
  await host.deleteMessage(root);
  await until(() => other.messages.get(root).deleted, "the delete");

  // Someone else's message cannot be edited: a typed refusal.
  const reply = host.thread(root)[1].id;
  await assert.rejects(host.editMessage(reply, "not mine"), (e) => e.code === "not_author");
  // Someone joining later loads the chat as it stands.
  const late = client(host.session.id, await guest(), "Late");
  late.connect();
  await late.ready();
  await until(() => late.thread(root).length === 2 && late.comments("main").length === 1, "the chat loaded by a latecomer");
  assert.ok(late.messages.get(root).deleted);
  host.close();
  other.close();
  late.close();
});

test("the record: the document's history, old texts and the events, page by page", async () => {
  const { host, other } = await pair();
  host.edit("main", insertAt(host.doc.text("main").length, 0, "a"));
  host.edit("main", insertAt(host.doc.text("main").length, 1, "b"));
  await until(() => !host.doc.hasPending && other.doc.text("main") === "ablet x = 1;\n", "both edits");
  const first = await other.history({ after: 0, limit: 1 });
  assert.equal(first.versions.length, 1);
  assert.equal(first.has_more, true);
  const rest = await other.history({ after: first.versions[0].rev });
  assert.deepEqual(rest.versions.map((v) => v.rev), [first.versions[0].rev + 1]);
  assert.equal((await other.textAt("main", 0)).text, "let x = 1;\n");
  assert.equal((await other.textAt("main", first.versions[0].rev)).text, "alet x = 1;\n");
  const events = await other.eventsSince(0);
  assert.ok(events.events.some((e) => e.kind === "participant_joined"), JSON.stringify(events));
  const one = await other.eventsSince(0, 1);
  assert.equal(one.events.length, 1);
  assert.equal((await other.textAt("nope.rs", 0)).text, undefined, "no such file then");
  host.close();
  other.close();
});

test("roles: a host makes the guest a viewer, whose edits are refused and undone", async () => {
  const { host, other } = await pair();
  await host.setRole(other.me, "viewer");
  await until(() => other.role === "viewer", "the guest a viewer on their side");
  const refused = reported(other, "problem", ({ code }) => code === "forbidden");
  other.edit("main", insertAt(other.doc.text("main").length, 0, "nope"));
  await refused;
  // The client reloads the document: the refused edit is gone there too.
  await until(() => other.joined && other.doc && other.doc.text("main") === host.doc.text("main"), "the guest's document reloaded");
  assert.ok(!host.doc.text("main").includes("nope"));
  // And a viewer cannot change roles.
  await assert.rejects(other.setRole(host.me, "viewer"), (e) => e.code === "forbidden");
  host.close();
  other.close();
});

test("a dropped connection comes back by itself and resumes: offline edits merge, missed events arrive", async () => {
  const { host, other } = await pair();
  const back = reported(other, "welcome", ({ resumed }) => resumed, "a resumed welcome");
  const dropped = reported(other, "state", () => other.state === "reconnecting");
  other.connection.ws.close();
  await dropped;
  // While the guest is away: the guest edits, the host edits and chats.
  other.edit("main", insertAt(other.doc.text("main").length, 0, "/* offline */"));
  host.edit("main", insertAt(host.doc.text("main").length, host.doc.text("main").length, "// online\n"));
  await host.sendMessage("said while you were away");
  const [, ] = await back;
  await until(() => !other.doc.hasPending && !host.doc.hasPending && host.doc.text("main") === other.doc.text("main"), "convergence after the reconnect");
  const text = host.doc.text("main");
  assert.ok(text.startsWith("/* offline */") && text.endsWith("// online\n"), text);
  await until(() => [...other.messages.values()].some((m) => m.text === "said while you were away"), "the missed message");
  host.close();
  other.close();
});

test("stopped for good: kicked, session ended, wrong token, unknown session", async () => {
  const { id, host, other } = await pair();
  const kicked = reported(other, "closed");
  await host.kick(other.me);
  assert.deepEqual(await kicked, ["kicked"]);
  assert.equal(other.state, "closed");

  const third = client(id, await guest(), "Third");
  third.connect();
  await third.ready();
  // Only a host ends a session: a typed refusal, and it goes on.
  await assert.rejects(third.endSession(), (e) => e.code === "forbidden");
  assert.equal(third.state, "live");
  const ended = reported(third, "closed");
  await host.endSession();
  assert.equal(host.finished, "session_ended");
  assert.deepEqual(await ended, ["session_ended"]);
  host.close();

  const stranger = client(id, "not-a-token", "Mallory");
  const refused = reported(stranger, "closed");
  stranger.connect();
  assert.deepEqual(await refused, ["unauthorized"]);
  await assert.rejects(stranger.ready(), (e) => e.code === "unauthorized");

  const lost = client("AAAAAAAAAAAAAAAAAAAAAA", await guest(), "Lost");
  const notFound = reported(lost, "closed");
  lost.connect();
  assert.deepEqual(await notFound, ["not_found"]);
});
