// collab-state.mjs: the session state a client keeps, fed the events and
// presence frames the protocol defines (PROTOCOL.md), with no socket.

import assert from "node:assert/strict";
import { test } from "node:test";

import { applyEvent, applyPresence } from "../collab-state.mjs";

function fresh() {
  return {
    lastSeq: 0,
    participants: new Map(),
    session: { title: "Round 1", language: "python", status: "waiting" },
    messages: new Map(),
  };
}

const ann = { id: 1, user_id: "u1", name: "Ann", colour: "#111", role: "host", joined_at: 0 };
const bo = { id: 2, user_id: "u2", name: "Bo", colour: "#222", role: "editor", joined_at: 0 };

test("members join, are renamed, change role, leave and come back", () => {
  const s = fresh();
  assert.deepEqual(applyEvent(s, { seq: 1, kind: "participant_joined", participant: ann }), { wasPresent: false });
  applyEvent(s, { seq: 2, kind: "participant_joined", participant: bo });
  assert.equal(s.participants.get(2).presence.status, "offline", "no presence heard yet");
  applyEvent(s, { seq: 3, kind: "participant_renamed", participant: 2, name: "Bob" });
  applyEvent(s, { seq: 4, kind: "role_changed", participant: 2, role: "viewer", by: 1 });
  assert.equal(s.participants.get(2).name, "Bob");
  assert.equal(s.participants.get(2).role, "viewer");
  applyEvent(s, { seq: 5, kind: "participant_left", participant: 2 });
  assert.equal(s.participants.get(2).present, false);
  // Back again: the same participant, present, and told it was not in.
  const back = applyEvent(s, { seq: 6, kind: "participant_joined", participant: { ...bo, name: "Bob" } });
  assert.deepEqual(back, { wasPresent: false });
  assert.equal(s.participants.get(2).present, true);
  // A join while present (a second tab) says so.
  assert.deepEqual(applyEvent(s, { seq: 7, kind: "participant_joined", participant: bo }), { wasPresent: true });
  applyEvent(s, { seq: 8, kind: "participant_kicked", participant: 2, by: 1 });
  assert.equal(s.participants.get(2).present, false);
  assert.equal(s.lastSeq, 8);
});

test("an event already taken in is ignored", () => {
  const s = fresh();
  applyEvent(s, { seq: 3, kind: "participant_joined", participant: ann });
  assert.equal(applyEvent(s, { seq: 3, kind: "participant_renamed", participant: 1, name: "X" }), null);
  assert.equal(applyEvent(s, { seq: 2, kind: "participant_renamed", participant: 1, name: "X" }), null);
  assert.equal(s.participants.get(1).name, "Ann");
  assert.equal(s.lastSeq, 3);
});

test("the session's settings and end", () => {
  const s = fresh();
  applyEvent(s, { seq: 1, kind: "session_updated", title: "Round 2", status: "active", by: 1 });
  assert.deepEqual(s.session, { title: "Round 2", language: "python", status: "active" });
  applyEvent(s, { seq: 2, kind: "session_updated", closes_at: 1_700_000_600_000, by: 1 });
  assert.equal(s.session.closes_at, 1_700_000_600_000, "a scheduled session extended");
  applyEvent(s, { seq: 3, kind: "session_ended", reason: "closed" });
  assert.equal(s.session.status, "ended");
  assert.equal(s.session.end_reason, "closed", "why it ended");
});

test("messages are posted, edited, reacted to and deleted", () => {
  const s = fresh();
  const message = { id: 10, author: 1, text: "hi @Bo", mentions: [2], reactions: {} };
  applyEvent(s, { seq: 1, kind: "message_posted", message });
  applyEvent(s, { seq: 2, kind: "message_edited", message: 10, text: "hello @Bo", mentions: [2], at: 5 });
  assert.equal(s.messages.get(10).text, "hello @Bo");
  assert.equal(s.messages.get(10).edited_at, 5);
  applyEvent(s, { seq: 3, kind: "reaction_toggled", message: 10, participant: 2, emoji: "👍", added: true });
  applyEvent(s, { seq: 4, kind: "reaction_toggled", message: 10, participant: 1, emoji: "👍", added: true });
  assert.deepEqual(s.messages.get(10).reactions, { "👍": [1, 2] });
  applyEvent(s, { seq: 5, kind: "reaction_toggled", message: 10, participant: 2, emoji: "👍", added: false });
  applyEvent(s, { seq: 6, kind: "reaction_toggled", message: 10, participant: 1, emoji: "👍", added: false });
  assert.deepEqual(s.messages.get(10).reactions, {}, "an emoji nobody holds goes");
  applyEvent(s, { seq: 7, kind: "message_deleted", message: 10 });
  assert.deepEqual(
    { ...s.messages.get(10) },
    { id: 10, author: 1, text: "", mentions: [], reactions: {}, deleted: true, edited_at: 5 },
  );
  // About a message this state never had: nothing to change, nothing breaks.
  applyEvent(s, { seq: 8, kind: "message_edited", message: 99, text: "x", mentions: [], at: 6 });
  assert.equal(s.messages.has(99), false);
  assert.equal(s.lastSeq, 8);
});

test("presence is taken for participants the state knows", () => {
  const s = fresh();
  applyEvent(s, { seq: 1, kind: "participant_joined", participant: ann });
  const presence = { status: "active", cursors: [{ file: "main", anchor: 1, head: 1 }], typing: true, last_active: 9 };
  assert.equal(applyPresence(s, { participant: 1, presence }), true);
  assert.deepEqual(s.participants.get(1).presence, presence);
  assert.equal(applyPresence(s, { participant: 7, presence }), false);
});
