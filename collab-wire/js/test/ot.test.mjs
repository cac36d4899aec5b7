// Tests for collab-ot.mjs, run by `cargo test -p collab-wire --test ot_vectors`
// (or directly: node --test collab-wire/js/test/). Only node built-ins.
//
// 1. The shared vectors (collab-wire/tests/vectors/ot.json), which the Rust
//    implementation passes too.
// 2. Random properties of the JavaScript implementation itself.
// 3. DocumentClient: simulated clients against a small in-memory server with
//    delayed delivery, lost frames and reconnects.

import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { DocumentClient, TextOperation, diffToOperation, insertsFirst, splitOperation } from "../collab-ot.mjs";

const vectors = JSON.parse(readFileSync(new URL("../../tests/vectors/ot.json", import.meta.url), "utf8"));
const op = (json) => TextOperation.fromJSON(json);
/** Sends at once: the simulations run without a clock. */
const UNPACED = { minInterval: 0 };

/** Runs `f`, returning `{ok: value}` or `{error: kind, at}` for an OT RangeError. */
function outcome(f) {
  try {
    return { ok: f() };
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    return e.kind === "splits_surrogate_pair" ? { error: e.kind, at: e.at } : { error: e.kind };
  }
}

function expectedOutcome(c, field) {
  if (c.error === "splits_surrogate_pair") return { error: c.error, at: c.at };
  if (c.error) return { error: c.error };
  return { ok: c[field] };
}

// ---- 1. the shared vectors ----

test("vectors: apply", () => {
  assert.ok(vectors.apply.length > 40);
  for (const c of vectors.apply) {
    assert.deepEqual(outcome(() => op(c.op).apply(c.text)), expectedOutcome(c, "expected"), c.name);
  }
});

test("vectors: transform", () => {
  assert.ok(vectors.transform.length > 80);
  for (const c of vectors.transform) {
    const a = op(c.a);
    const b = op(c.b);
    const [a2, b2] = TextOperation.transform(a, b);
    assert.deepEqual(a2.toJSON(), c.a2, `${c.name}: a2`);
    assert.deepEqual(b2.toJSON(), c.b2, `${c.name}: b2`);
    assert.equal(b2.apply(a.apply(c.text)), c.result, `${c.name}: b2(a(text))`);
    assert.equal(a2.apply(b.apply(c.text)), c.result, `${c.name}: a2(b(text))`);
  }
});

test("vectors: transform_by_author", () => {
  assert.ok(vectors.transform_by_author.length > 60);
  for (const c of vectors.transform_by_author) {
    const a = op(c.a);
    const b = op(c.b);
    const [a2, b2] = TextOperation.transformByAuthor(a, c.a_author, b, c.b_author);
    assert.deepEqual(a2.toJSON(), c.a2, `${c.name}: a2`);
    assert.deepEqual(b2.toJSON(), c.b2, `${c.name}: b2`);
    assert.equal(b2.apply(a.apply(c.text)), c.result, `${c.name}: b2(a(text))`);
    assert.equal(a2.apply(b.apply(c.text)), c.result, `${c.name}: a2(b(text))`);
  }
  assert.equal(insertsFirst(null, 1), true);
  assert.equal(insertsFirst(1, null), false);
  assert.equal(insertsFirst(1, 2), true);
  assert.equal(insertsFirst(2, 1), false);
});

test("vectors: compose", () => {
  assert.ok(vectors.compose.length > 40);
  for (const c of vectors.compose) {
    const a = op(c.a);
    const b = op(c.b);
    const got = outcome(() => TextOperation.compose(a, b).toJSON());
    assert.deepEqual(got, expectedOutcome(c, "expected"), c.name);
    if (!c.error) {
      assert.equal(TextOperation.compose(a, b).apply(c.text), c.result, `${c.name}: compose(a, b)(text)`);
      assert.equal(b.apply(a.apply(c.text)), c.result, `${c.name}: b(a(text))`);
    }
  }
});

test("vectors: transform_index", () => {
  assert.ok(vectors.transform_index.length > 40);
  for (const c of vectors.transform_index) {
    assert.equal(op(c.op).transformIndex(c.index, c.stick_after), c.expected, c.name);
  }
});

test("vectors: from_json_valid", () => {
  for (const c of vectors.from_json_valid) {
    assert.deepEqual(op(JSON.parse(c.json)).toJSON(), c.expected, c.name);
  }
});

test("vectors: from_json_invalid", () => {
  for (const c of vectors.from_json_invalid) {
    const value = JSON.parse(c.json);
    assert.throws(() => TextOperation.fromJSON(value), TypeError, c.name);
  }
});

// ---- 2. the JavaScript implementation on its own ----

/** A seeded PRNG (mulberry32), so a failure can be replayed. */
function rng(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    below: (n) => Math.floor(next() * n),
    pick(items) {
      return items[this.below(items.length)];
    },
  };
}

const PIECES = ["a", "b", "c", " ", "\n", "\r\n", "é", "e\u0301", "中", "😀", "👍🏽", "𝄞"];

function randomText(r, max = 10) {
  let s = "";
  for (let n = r.below(max); n > 0; n--) s += r.pick(PIECES);
  return s;
}

/** Code point boundaries of `s`, in UTF-16 units. */
function boundaries(s) {
  const out = [0];
  for (const ch of s) out.push(out[out.length - 1] + ch.length);
  return out;
}

/** A random operation on `text` at code point boundaries. */
function randomOp(r, text) {
  const bounds = boundaries(text);
  let k = 0; // Index into bounds.
  const o = new TextOperation();
  for (let n = 1 + r.below(4); n > 0; n--) {
    const next = Math.min(k + 1 + r.below(3), bounds.length - 1);
    const kind = r.below(3);
    if (kind === 0) o.retain(bounds[next] - bounds[k]);
    else if (kind === 1) o.delete(bounds[next] - bounds[k]);
    else o.insert(r.pick(PIECES));
    if (kind < 2) k = next;
  }
  return o;
}

test("builders normalize", () => {
  const o = new TextOperation().retain(2).retain(3).delete(1).insert("x").delete(2).insert("y").retain(4);
  assert.deepEqual(o.toJSON(), [5, "xy", -3]);
  assert.equal(o.baseLength, 8);
  assert.equal(o.lengthDelta, -1);
  assert.ok(new TextOperation().retain(3).isNoop());
  assert.deepEqual(new TextOperation().delete(0xffffffff).delete(2).toJSON(), [-0xffffffff, -2]);
  assert.throws(() => new TextOperation().insert("\ud83d"), TypeError);
  assert.throws(() => new TextOperation().retain(-1), TypeError);
  assert.throws(() => new TextOperation().delete(1.5), TypeError);
  for (const bad of [undefined, NaN, Infinity, -Infinity, "", [1], 2 ** 32, -(2 ** 32), 0.5]) {
    assert.throws(() => TextOperation.fromJSON([bad]), TypeError, String(bad));
  }
  assert.throws(() => TextOperation.fromJSON("[1]"), TypeError);
});

test("apply errors carry their kind", () => {
  const e = outcome(() => op([1, "x"]).apply("😀"));
  assert.deepEqual(e, { error: "splits_surrogate_pair", at: 1 });
  assert.throws(() => op([3]).apply(1), TypeError);
  try {
    op([4, "x"]).apply("abc");
    assert.fail("no error");
  } catch (err) {
    assert.ok(err instanceof RangeError);
    assert.equal(err.kind, "out_of_range");
    assert.equal(err.needed, 4);
    assert.equal(err.len, 3);
  }
});

test("random: transform converges, compose is a then b, JSON round trip", () => {
  const r = rng(1);
  for (let i = 0; i < 3000; i++) {
    const text = randomText(r);
    const a = randomOp(r, text);
    const b = randomOp(r, text);
    const [a2, b2] = TextOperation.transform(a, b);
    const ctx = JSON.stringify({ text, a, b });
    assert.equal(b2.apply(a.apply(text)), a2.apply(b.apply(text)), ctx);
    const middle = a.apply(text);
    const c = randomOp(r, middle);
    assert.equal(TextOperation.compose(a, c).apply(text), c.apply(middle), ctx);
    assert.deepEqual(op(JSON.parse(JSON.stringify(a))).toJSON(), a.toJSON());
  }
});

test("diffToOperation turns the old text into the new one without splitting pairs", () => {
  const cases = [
    ["", "", []],
    ["abc", "abc", []],
    ["abc", "abXc", [2, "X"]],
    ["abc", "ac", [1, -1]],
    ["a😀b", "a😁b", [1, "😁", -2]],
    ["😀b", "😁b", ["😁", -2]],
    ["x😀", "y😀", ["y", -1]],
    ["\ud83d\ude00", "\ud83c\ude00", ["\ud83c\ude00", -2]],
    ["aa", "aaa", [2, "a"]],
  ];
  for (const [before, after, expected] of cases) {
    assert.deepEqual(diffToOperation(before, after).toJSON(), expected, `${before} -> ${after}`);
  }
  const r = rng(2);
  for (let i = 0; i < 3000; i++) {
    const before = randomText(r);
    const after = randomOp(r, before).apply(before);
    assert.equal(diffToOperation(before, after).apply(before), after, JSON.stringify({ before, after }));
  }
});

// ---- 3. DocumentClient against a model server ----

/**
 * The server rules: rebase an incoming op from its rev over the later ops on
 * the same file (the history op winning ties), apply it as the next rev, ack
 * the sender, send it to every other connection. An oid seen before is acked
 * with the rev it got, not applied again.
 */
class ModelServer {
  constructor(files) {
    this.files = new Map(Object.entries(files));
    this.history = [];
    this.revOfOid = new Map();
    this.connections = new Set(); // {clientId, deliver(frame)}
  }

  get rev() {
    return this.history.length;
  }

  frameOf(rev) {
    const h = this.history[rev - 1];
    return { type: "text_op", rev, file: h.file, op: h.op.toJSON(), author: h.author, oid: h.oid };
  }

  /** A frame from `conn`, which may since have been closed. */
  handle(conn, frame) {
    assert.equal(frame.type, "text_op");
    const ack = (rev) => conn.deliver({ type: "text_ack", rev, oid: frame.oid });
    if (this.revOfOid.has(frame.oid)) return ack(this.revOfOid.get(frame.oid));
    assert.ok(frame.rev <= this.rev, "a client is ahead of the server");
    let o = TextOperation.fromJSON(frame.op);
    // Ties go by author (the lower participant id first) when the client
    // asks for it, else the history goes first, as the server does.
    for (const h of this.history.slice(frame.rev)) {
      if (h.file !== frame.file) continue;
      o = frame.ties === "author" ? TextOperation.transformByAuthor(h.op, h.author, o, conn.author)[1] : TextOperation.transform(h.op, o)[1];
    }
    if (o.isNoop()) return ack(this.rev);
    this.files.set(frame.file, o.apply(this.files.get(frame.file) ?? ""));
    this.history.push({ file: frame.file, op: o, author: conn.author, oid: frame.oid });
    this.revOfOid.set(frame.oid, this.rev);
    for (const other of this.connections) if (other !== conn) other.deliver(this.frameOf(this.rev));
    ack(this.rev);
  }

  /** A client joins (again) with its rev: everything since, as a catch-up. */
  join(conn, rev) {
    this.connections.add(conn);
    const ops = [];
    for (let r = rev + 1; r <= this.rev; r++) ops.push(this.frameOf(r));
    conn.deliver({ type: "text_catchup", rev: this.rev, ops });
  }
}

/**
 * Two or more clients on a lossy, delayed network. Frames on one connection
 * stay in order; a disconnect loses what the server had not sent yet, and
 * what the client had sent may still reach the server later.
 */
class Simulation {
  constructor(seed, files, clientCount) {
    this.r = rng(seed);
    this.server = new ModelServer(files);
    this.late = []; // Queues of frames from closed connections, still on their way.
    this.clients = [];
    for (let id = 0; id < clientCount; id++) {
      const peer = { id, up: [], conn: null, remote: [] };
      peer.client = new DocumentClient(
        { rev: 0, files },
        (frame) => {
          if (peer.conn) peer.up.push(JSON.parse(JSON.stringify(frame)));
        },
        UNPACED,
      );
      peer.client.me = id + 1;
      peer.client.onRemoteOp = (file, o, author) => peer.remote.push({ file, o, author });
      this.connect(peer, false);
      this.clients.push(peer);
    }
  }

  connect(peer, rejoin) {
    const conn = { clientId: `c${peer.id}`, author: peer.id + 1, down: [], open: true, rejoin };
    conn.deliver = (frame) => conn.open && conn.down.push(JSON.parse(JSON.stringify(frame)));
    peer.conn = conn;
    if (rejoin) this.server.join(conn, peer.client.rev);
    else this.server.connections.add(conn);
  }

  disconnect(peer) {
    peer.conn.open = false;
    this.server.connections.delete(peer.conn);
    if (peer.up.length) this.late.push({ conn: peer.conn, frames: peer.up });
    peer.up = [];
    peer.conn = null;
  }

  edit(peer) {
    const files = ["main.py", "notes.md"];
    const file = this.r.pick(files);
    const before = peer.client.text(file);
    const o = randomOp(this.r, before);
    // Half the edits come from a textarea: the diff of before and after.
    const edit = this.r.below(2) ? o : diffToOperation(before, o.apply(before));
    peer.client.applyLocal(file, edit);
  }

  /** One random step; returns false when nothing was left to do. */
  step(editing) {
    const r = this.r;
    const actions = [];
    for (const p of this.clients) {
      if (editing) actions.push(() => this.edit(p));
      if (p.conn && p.up.length) actions.push(() => this.server.handle(p.conn, p.up.shift()));
      if (p.conn && p.conn.down.length) {
        actions.push(() => {
          const frame = p.conn.down.shift();
          p.client.receive(frame);
          // The app calls reconnected() once it has processed the catch-up.
          if (frame.type === "text_catchup") p.client.reconnected(frame);
        });
      }
      if (editing && p.conn && r.below(20) === 0) actions.push(() => this.disconnect(p));
      if (!p.conn && (!editing || r.below(3) === 0)) actions.push(() => this.connect(p, true));
    }
    for (const late of this.late) {
      if (late.frames.length) actions.push(() => this.server.handle(late.conn, late.frames.shift()));
    }
    if (!actions.length) return false;
    r.pick(actions)();
    return true;
  }

  run(steps) {
    for (let i = 0; i < steps; i++) this.step(true);
    let guard = 0;
    while (this.step(false)) assert.ok(++guard < 100000, "the simulation does not settle");
  }

  assertConverged(context) {
    for (const p of this.clients) {
      for (const [file, text] of this.server.files) {
        assert.equal(p.client.text(file), text, `${context}: client ${p.id}, ${file}`);
      }
      assert.equal(p.client.rev, this.server.rev, `${context}: client ${p.id} rev`);
      assert.ok(!p.client.hasPending, `${context}: client ${p.id} still has pending edits`);
    }
  }
}

test("DocumentClient: two clients, concurrent edits, delays, lost frames, reconnects", () => {
  const files = { "main.py": "def f():\r\n    return 1 # 😀\n", "notes.md": "é\u0301中" };
  let reconnects = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const sim = new Simulation(seed, files, 2);
    const connect = sim.connect.bind(sim);
    sim.connect = (peer, rejoin) => {
      reconnects += rejoin ? 1 : 0;
      connect(peer, rejoin);
    };
    sim.run(120);
    sim.assertConverged(`seed ${seed}`);
    assert.ok(sim.server.rev > 0, `seed ${seed}: nothing happened`);
  }
  assert.ok(reconnects > 100, `only ${reconnects} reconnects`);
});

test("DocumentClient: three clients", () => {
  for (let seed = 1000; seed < 1100; seed++) {
    const sim = new Simulation(seed, { "main.py": "", "notes.md": "x" }, 3);
    sim.run(150);
    sim.assertConverged(`seed ${seed}`);
  }
});

test("DocumentClient: sends one op at a time and buffers the rest", () => {
  const sent = [];
  const c = new DocumentClient({ rev: 7, files: { a: "abc", b: "" } }, (f) => sent.push(f), UNPACED);
  assert.equal(c.text("a"), "abc");
  c.applyLocal("a", op([3, "d"]));
  assert.equal(sent.length, 1);
  const first = sent[0];
  assert.deepEqual({ ...first, oid: undefined, rid: undefined }, { type: "text_op", rev: 7, file: "a", op: [3, "d"], oid: undefined, rid: undefined });
  assert.equal(typeof first.oid, "string");
  assert.equal(typeof first.rid, "number", "errors are matched to the op by rid");
  c.applyLocal("a", op([4, "e"]));
  c.applyLocal("b", op(["x"]));
  c.applyLocal("a", op([-1]));
  assert.equal(sent.length, 1, "nothing more goes out while an op is in flight");
  assert.equal(c.text("a"), "bcde");

  c.receive({ type: "text_ack", rev: 8, oid: "someone else's" });
  assert.equal(c.rev, 7);
  c.receive({ type: "text_ack", rev: 8, oid: first.oid });
  assert.equal(c.rev, 8);
  assert.equal(sent.length, 2);
  assert.equal(sent[1].rev, 8);
  assert.equal(sent[1].file, "a");
  assert.deepEqual(sent[1].op, [-1, 3, "e"], "the buffered edits on a, composed");
  assert.notEqual(sent[1].oid, first.oid);

  c.receive({ type: "text_op", rev: 9, file: "a", op: [3, "Z"], author: "p2", oid: "x" });
  assert.equal(c.text("a"), "bcZde");
  c.receive({ type: "text_ack", rev: 10, oid: sent[1].oid });
  assert.equal(sent[2].file, "b");
  assert.deepEqual(sent[2].op, ["x"]);
  assert.equal(sent[2].rev, 10);
});

test("DocumentClient: the server's op wins ties against pending edits", () => {
  const sent = [];
  const c = new DocumentClient({ rev: 0, files: { a: "ab" } }, (f) => sent.push(f), UNPACED);
  const seen = [];
  c.onRemoteOp = (file, o, author) => seen.push([file, o.toJSON(), author]);
  c.applyLocal("a", op([1, "X"]));
  c.applyLocal("a", op([3, "Y"])); // Buffered: aXbY
  c.receive({ type: "text_op", rev: 1, file: "a", op: [1, "S"], author: "p2", oid: "o2" });
  assert.equal(c.text("a"), "aSXbY");
  assert.deepEqual(seen, [["a", [1, "S"], "p2"]]);
  assert.equal(c.rev, 1);
  // The server has "aSb" (our X is not in yet) and appends T; ties with our Y.
  c.receive({ type: "text_op", rev: 2, file: "a", op: [3, "T"], author: "p2", oid: "o3" });
  assert.equal(c.text("a"), "aSXbTY");
  assert.deepEqual(seen[1], ["a", [4, "T"], "p2"]);
  // The own caret stays before a remote insert exactly at it.
  assert.equal(c.transformCursor("a", 4, op([4, "T"])), 4);
  assert.equal(c.transformCursor("a", 5, op([4, "T"])), 6);
  assert.equal(sent.length, 1);
  c.receive({ type: "text_ack", rev: 3, oid: sent[0].oid });
  assert.deepEqual([sent[1].rev, sent[1].op], [3, [5, "Y"]]);
});

test("DocumentClient: own op in a catch-up is its ack; reconnected() resends with the same oid", () => {
  const sent = [];
  const c = new DocumentClient({ rev: 3, files: { a: "" } }, (f) => sent.push(f), UNPACED);
  c.applyLocal("a", op(["hi"]));
  c.applyLocal("a", op([2, "!"]));
  const first = sent[0];
  // Reconnect: the first op got through before the connection died.
  c.receive({
    type: "text_catchup",
    rev: 5,
    ops: [
      { type: "text_op", rev: 4, file: "a", op: ["hi"], author: "me", oid: first.oid },
      { type: "text_op", rev: 5, file: "a", op: ["<"], author: "p2", oid: "o9" },
    ],
  });
  assert.equal(c.rev, 5);
  assert.equal(c.text("a"), "<hi!");
  // The buffered edit went out when the catch-up acked the first one...
  assert.equal(sent.length, 2);
  assert.deepEqual([sent[1].rev, sent[1].op], [4, [2, "!"]]);
  // ...and is resent, rebased over rev 5, with the same oid.
  c.reconnected({ rev: 5 });
  assert.equal(sent.length, 3);
  assert.deepEqual(sent[2], { type: "text_op", rid: sent[2].rid, rev: 5, file: "a", op: [3, "!"], oid: sent[1].oid });
  assert.equal(c.text("a"), "<hi!");
  c.receive({ type: "text_ack", rev: 6, oid: sent[1].oid });
  c.receive({ type: "text_ack", rev: 6, oid: sent[1].oid }); // The duplicate's ack.
  assert.equal(c.rev, 6);
  assert.ok(!c.hasPending);
});

test("DocumentClient: file_op drops edits on a file the server replaced or removed", () => {
  const sent = [];
  const c = new DocumentClient({ rev: 0, files: { a: "x", b: "y" } }, (f) => sent.push(f), UNPACED);
  c.applyLocal("a", op(["1"]));
  c.applyLocal("b", op(["2"]));
  c.applyLocal("a", op(["3"]));
  c.receive({ type: "file_op", rev: 1, file: "a", action: "remove", author: "p2" });
  assert.equal(c.rev, 1);
  assert.equal(c.text("a"), "");
  assert.equal(sent.length, 2);
  assert.deepEqual([sent[1].file, sent[1].rev, sent[1].op], ["b", 1, ["2"]]);
  c.receive({ type: "file_op", rev: 2, file: "c", action: "create", text: "new", author: "p2" });
  assert.equal(c.text("c"), "new");
  assert.equal(c.receive({ type: "presence" }), false);
});

test("DocumentClient: a bad local op changes nothing", () => {
  const sent = [];
  const c = new DocumentClient({ rev: 0, files: { a: "😀" } }, (f) => sent.push(f), UNPACED);
  assert.throws(() => c.applyLocal("a", op([1, "x"])), RangeError);
  assert.throws(() => c.applyLocal("a", op([5, "x"])), RangeError);
  c.applyLocal("a", op([]));
  assert.equal(c.text("a"), "😀");
  assert.equal(sent.length, 0);
});

// ---- 4. people typing at one spot at once ----

/**
 * Two to five typists at one place in a text, each typing a run of its own
 * letter at its caret; keystrokes, acknowledgements and remote edits cross
 * on the wire in random order, and keystrokes typed while one is in flight
 * are batched. Each run must end contiguous, and every keystroke there.
 */
function typistsAtOneSpot(seed, typists, keystrokes) {
  const r = rng(seed);
  const server = new ModelServer({ main: "[]" });
  const letters = "ABCDE".slice(0, typists).split("");
  const peers = letters.map((letter, id) => {
    const peer = { id, letter, up: [], caret: 1, typed: 0 };
    peer.conn = { clientId: `c${id}`, author: id + 1, down: [], open: true };
    peer.conn.deliver = (frame) => peer.conn.down.push(JSON.parse(JSON.stringify(frame)));
    server.connections.add(peer.conn);
    peer.client = new DocumentClient({ rev: 0, files: { main: "[]" } }, (f) => peer.up.push(JSON.parse(JSON.stringify(f))), UNPACED);
    peer.client.me = id + 1;
    peer.client.onRemoteOp = (file, o) => {
      peer.caret = peer.client.transformCursor(file, peer.caret, o);
    };
    return peer;
  });
  let left = keystrokes;
  for (;;) {
    const actions = [];
    for (const p of peers) {
      if (left > 0) {
        actions.push(() => {
          p.client.applyLocal("main", new TextOperation().retain(p.caret).insert(p.letter));
          p.caret += 1;
          p.typed += 1;
          left -= 1;
        });
      }
      if (p.up.length) actions.push(() => server.handle(p.conn, p.up.shift()));
      if (p.conn.down.length) actions.push(() => p.client.receive(p.conn.down.shift()));
    }
    if (!actions.length) break;
    r.pick(actions)();
  }
  const text = server.files.get("main");
  for (const p of peers) {
    assert.equal(p.client.text("main"), text, `seed ${seed}: client ${p.id} converged`);
    const count = [...text].filter((c) => c === p.letter).length;
    assert.equal(count, p.typed, `seed ${seed}: every keystroke of ${p.letter} is there in ${text}`);
    const run = new RegExp(`${p.letter}+`, "g");
    assert.ok((text.match(run) || []).length <= 1, `seed ${seed}: ${p.letter}'s run is split in ${text}`);
  }
  return text;
}

test("typing at one spot: every run stays contiguous, 2 to 5 typists", () => {
  for (let seed = 1; seed <= 300; seed++) {
    typistsAtOneSpot(seed, 2 + (seed % 4), 20 + (seed % 60));
  }
});

test("typing at one spot: the reported case reads as two runs", () => {
  // ", huh?" and " The whole" typed at once after "90s", keystroke for
  // keystroke: one run after the other, never "90s ,T hheu whole".
  const server = new ModelServer({ main: "90s" });
  const runs = [", huh?", " The whole"];
  const peers = runs.map((run, id) => {
    const peer = { id, up: [], caret: 3 };
    peer.conn = { clientId: `c${id}`, author: id + 1, down: [], open: true };
    peer.conn.deliver = (f) => peer.conn.down.push(JSON.parse(JSON.stringify(f)));
    server.connections.add(peer.conn);
    peer.client = new DocumentClient({ rev: 0, files: { main: "90s" } }, (f) => peer.up.push(f), UNPACED);
    peer.client.me = id + 1;
    peer.client.onRemoteOp = (file, o) => (peer.caret = peer.client.transformCursor(file, peer.caret, o));
    return peer;
  });
  const longest = Math.max(...runs.map((s) => s.length));
  const flush = () => {
    for (const p of peers) while (p.up.length) server.handle(p.conn, p.up.shift());
    for (const p of peers) while (p.conn.down.length) p.client.receive(p.conn.down.shift());
  };
  for (let k = 0; k < longest; k++) {
    peers.forEach((p, i) => {
      if (k < runs[i].length) {
        p.client.applyLocal("main", new TextOperation().retain(p.caret).insert(runs[i][k]));
        p.caret += 1;
      }
    });
    // Both keystrokes reach the server before either hears of the other's.
    for (const p of peers) if (p.up.length) server.handle(p.conn, p.up.shift());
    for (const p of [...peers].reverse()) while (p.conn.down.length) p.client.receive(p.conn.down.shift());
  }
  for (let i = 0; i < 50; i++) flush();
  const text = server.files.get("main");
  assert.ok(text === "90s, huh? The whole" || text === "90s The whole, huh?", text);
  for (const p of peers) assert.equal(p.client.text("main"), text);
});

// ---- 5. large pastes, pacing, refusals ----

/** Timers on a virtual clock: `run()` fires them in time order. */
class VirtualTime {
  constructor() {
    this.now = 0;
    this.timers = [];
    this.nextId = 1;
  }
  options(extra = {}) {
    return {
      now: () => this.now,
      setTimer: (f, ms) => {
        const id = this.nextId++;
        this.timers.push({ id, at: this.now + Math.max(0, ms), f });
        return id;
      },
      clearTimer: (id) => {
        this.timers = this.timers.filter((t) => t.id !== id);
      },
      ...extra,
    };
  }
  /** Fires the earliest timer, if any. */
  fireNext() {
    if (!this.timers.length) return false;
    this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
    const t = this.timers.shift();
    this.now = Math.max(this.now, t.at);
    t.f();
    return true;
  }
}

const utf8Bytes = (s) => Buffer.byteLength(s, "utf8");

test("splitOperation: parts compose to the whole and each fits the budget", () => {
  const r = rng(11);
  for (let i = 0; i < 400; i++) {
    const text = randomText(r);
    let o = randomOp(r, text);
    // Make some operations big: a paste of up to 200 KB with emoji and quotes.
    if (r.below(3) === 0) {
      const unit = r.pick(["abc ", "é\"\n", "😀x", "<\u0001>"]);
      const paste = unit.repeat(1 + r.below(50000));
      const after = o.apply(text);
      let at = r.below(after.length + 1);
      if (at > 0 && at < after.length && isSurrogatePair(after, at)) at -= 1;
      o = TextOperation.compose(o, new TextOperation().retain(at).insert(paste));
    }
    const budget = 64 + r.below(8000);
    let rest = o;
    let current = text;
    let parts = 0;
    while (rest !== null) {
      const [head, next] = splitOperation(rest, budget);
      const json = JSON.stringify(head.toJSON());
      assert.ok(utf8Bytes(json) <= budget || head.ops.length === 1, `part of ${utf8Bytes(json)} bytes over ${budget}`);
      current = head.apply(current);
      rest = next;
      assert.ok(++parts < 100000);
    }
    assert.equal(current, o.apply(text), "the parts add up to the operation");
  }
});

test("DocumentClient: a fast typist is paced to one op per 50 ms, nothing lost", () => {
  const time = new VirtualTime();
  const sent = [];
  const c = new DocumentClient({ rev: 0, files: { a: "" } }, (f) => sent.push(f), time.options());
  let text = "";
  // 400 keystrokes, 2 ms apart (a replay); each sent op is acked at once.
  for (let i = 0; i < 400; i++) {
    time.now += 2;
    c.applyLocal("a", new TextOperation().retain(text.length).insert("x"));
    text += "x";
    while (sent.length && c._inflight) {
      const f = sent[sent.length - 1];
      if (c._inflight.oid !== f.oid) break;
      c.receive({ type: "text_ack", rev: c.rev + 1, oid: f.oid });
    }
    while (time.timers.length && time.timers[0].at <= time.now) time.fireNext();
  }
  while (time.fireNext()) {
    const f = sent[sent.length - 1];
    if (c._inflight && c._inflight.oid === f.oid) c.receive({ type: "text_ack", rev: c.rev + 1, oid: f.oid });
  }
  const seconds = time.now / 1000;
  assert.ok(sent.length <= seconds * 20 + 2, `${sent.length} frames in ${seconds} s`);
  const sentText = sent.reduce((t, f) => TextOperation.fromJSON(f.op).apply(t), "");
  assert.equal(sentText, text, "every keystroke went out");
  assert.ok(!c.hasPending);
});

/**
 * A server that refuses frames: at random (rate_limited, internal, with the
 * frame's rid), and any frame over 64 KiB (frame_too_large, without a rid,
 * as the real server cannot read a rid from a frame it does not read).
 */
class RefusingServer extends ModelServer {
  constructor(files, r, refuseOneIn) {
    super(files);
    this.r = r;
    this.refuseOneIn = refuseOneIn;
    this.refused = 0;
  }
  handle(conn, frame) {
    if (utf8Bytes(JSON.stringify(frame)) > 65536) {
      this.refused++;
      return conn.deliver({ type: "error", code: "frame_too_large", message: "too large" });
    }
    if (this.r.below(this.refuseOneIn) === 0) {
      this.refused++;
      const code = this.r.pick(["rate_limited", "rate_limited", "internal"]);
      return conn.deliver({ type: "error", code, rid: frame.rid, message: code });
    }
    super.handle(conn, frame);
  }
}

test("DocumentClient: pastes up to 2 MB while the server refuses frames at random", () => {
  for (let seed = 1; seed <= 6; seed++) {
    const r = rng(seed);
    const time = new VirtualTime();
    const server = new RefusingServer({ main: "" }, r, 4);
    const tokens = [];
    const peers = [0, 1, 2].map((id) => {
      const peer = { id, up: [] };
      peer.conn = { clientId: `c${id}`, author: id + 1, down: [], open: true };
      peer.conn.deliver = (f) => peer.conn.down.push(JSON.parse(JSON.stringify(f)));
      server.connections.add(peer.conn);
      peer.client = new DocumentClient({ rev: 0, files: { main: "" } }, (f) => peer.up.push(JSON.parse(JSON.stringify(f))), time.options());
      peer.client.me = id + 1;
      peer.client.onResync = (code) => assert.fail(`seed ${seed}: client ${id} gave up on ${code}`);
      return peer;
    });
    let edits = 0;
    for (let step = 0; step < 3000; step++) {
      const actions = [];
      for (const p of peers) {
        if (edits < 24) {
          actions.push(() => {
            // A paste of 1 byte to 2 MB, its tokens marked so each can be found.
            const size = r.pick([1, 10, 1000, 70000, 300000, 2 * 1024 * 1024]);
            const token = `<${seed}.${edits}>`;
            const body = r.pick(["a", "é", "😀", "\""]).repeat(Math.max(1, Math.floor(size / 4)));
            const paste = `${token}${body}${token}`;
            tokens.push(paste);
            const t = p.client.text("main");
            let safe = r.below(t.length + 1);
            if (safe > 0 && safe < t.length && isSurrogatePair(t, safe)) safe -= 1;
            p.client.applyLocal("main", new TextOperation().retain(safe).insert(paste));
            edits++;
          });
        }
        if (p.up.length) actions.push(() => server.handle(p.conn, p.up.shift()));
        if (p.conn.down.length) actions.push(() => p.client.receive(p.conn.down.shift()));
      }
      if (time.timers.length) actions.push(() => time.fireNext());
      if (!actions.length) break;
      r.pick(actions)();
    }
    // Let everything settle: deliver and fire timers until quiet.
    for (let guard = 0; ; guard++) {
      assert.ok(guard < 200000, `seed ${seed}: does not settle`);
      let moved = false;
      for (const p of peers) {
        while (p.up.length) {
          server.handle(p.conn, p.up.shift());
          moved = true;
        }
        while (p.conn.down.length) {
          p.client.receive(p.conn.down.shift());
          moved = true;
        }
      }
      if (!moved && !time.fireNext()) break;
    }
    const text = server.files.get("main");
    assert.ok(server.refused > 0, `seed ${seed}: the server refused nothing`);
    for (const p of peers) {
      assert.equal(p.client.text("main").length, text.length, `seed ${seed}: client ${p.id} length`);
      assert.ok(p.client.text("main") === text, `seed ${seed}: client ${p.id} converged`);
      assert.ok(!p.client.hasPending, `seed ${seed}: client ${p.id} still has pending edits`);
    }
    // Every character of every paste is there once: the same characters,
    // counted, as all the pastes together. (A paste sent in parts may have
    // another person's concurrent insert land between two parts.)
    const count = (str) => {
      const m = new Map();
      for (const ch of str) m.set(ch, (m.get(ch) ?? 0) + 1);
      return m;
    };
    assert.deepEqual(count(text), count(tokens.join("")), `seed ${seed}: nothing lost, nothing doubled`);
  }
});

function isSurrogatePair(s, pos) {
  const hi = s.charCodeAt(pos - 1);
  const lo = s.charCodeAt(pos);
  return hi >= 0xd800 && hi <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff;
}
