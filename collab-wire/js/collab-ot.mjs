// collab-ot.mjs: operational transformation for collab's thin clients.
//
// A dependency-free ES module (browsers, node >= 18). It mirrors the Rust
// implementation in collab-core/src/ot.rs; both are checked against the same
// vectors (collab-wire/tests/vectors/ot.json).
//
// All positions and lengths count UTF-16 code units, which is what JavaScript
// string indices count.
//
// # Operations
//
// An operation walks a text from the start and keeps (retain), inserts or
// deletes pieces of it; whatever it does not reach is kept. On the wire it is a
// JSON array: a positive integer retains, a string inserts, a negative integer
// deletes: `[5, "abc", -3]`. Operations are always normalized: no zero-length
// components, adjacent components of the same kind merged (runs longer than
// 2^32 - 1 are split, as in Rust), no trailing retain, and an insert comes
// before an adjacent delete. No operation may insert, or start or end a
// delete, between the two halves of a surrogate pair.
//
// # DocumentClient: protocol assumptions
//
// - The session has ONE revision counter for all files. Every change the
//   server accepts (a text edit, a file created or removed) gets the next
//   revision.
// - Client -> server: `{type: "text_op", rev, file, op, oid}`. `rev` is the
//   last revision this client has seen; the op was typed on top of it. `oid`
//   is a random id, unique per operation, kept when the op is resent.
// - The server rebases an incoming op over every change to that file after
//   `rev` (ties broken by author: `insertsFirst`), applies it as the next revision,
//   answers the sender `{type: "text_ack", rev, oid}` (`rev`: the revision the
//   op became) and sends everyone else `{type: "text_op", rev, file, op,
//   author, oid}`.
// - Frames on one connection arrive in order, and the server sends every
//   revision to every connection in revision order, so when an ack arrives the
//   client has already seen every revision before it.
// - A client has at most one op in flight (unacknowledged), on any file; its
//   later edits are buffered per file and composed. It sends at most one op
//   per `minInterval` (50 ms), gives each a `rid`, and splits an op whose
//   frame would pass `maxFrameBytes` (48 KiB) into parts sent one after
//   another. An `error` with the op's rid (or `frame_too_large`, which has
//   none) means the op was not applied: resent with the same oid, split
//   smaller, dropped (unknown_file) or handed to `onResync`.
// - After a reconnect, the client joins with its `rev`; the server replies with
//   `{type: "text_catchup", rev, ops}`, every change since, oldest first (the
//   client's own in-flight op among them, recognised by its oid, if it got
//   through). The app feeds that to `receive()`, then calls `reconnected()`,
//   which resends the in-flight op with the SAME oid. The server must
//   recognise an oid it has already applied and answer with an ack instead of
//   applying it twice (a resend can cross the original on the wire).
// - `{type: "file_op", rev, file, action: "create", text}` and
//   `{type: "file_op", rev, file, action: "remove"}` (also found in
//   catch-ups) create or remove a file. An op typed on a file that the server
//   has since created or removed is refused by the server and never acked, so
//   the client drops its pending edits on that file.

const MAX_UNITS = 0xffffffff; // Longest component, as in Rust (u32).
const MAX_WIRE_COMPONENTS = 10000;

const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

/** Whether `pos` falls between the two halves of a surrogate pair in `s`. */
function splitsPair(s, pos) {
  return pos > 0 && pos < s.length && isHigh(s.charCodeAt(pos - 1)) && isLow(s.charCodeAt(pos));
}

/** Whether `s` has no lone surrogate (what Rust's String can hold). */
function isWellFormed(s) {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isHigh(c) && i + 1 < s.length && isLow(s.charCodeAt(i + 1))) i++;
    else if (isHigh(c) || isLow(c)) return false;
  }
  return true;
}

function otError(kind, message, fields) {
  // kind: "out_of_range" | "splits_surrogate_pair", as in the vectors.
  return Object.assign(new RangeError(message), { kind }, fields);
}

/**
 * A text operation. Components are kept in `ops` (read-only for users):
 * a positive number retains, a string inserts, a negative number deletes.
 */
export class TextOperation {
  constructor() {
    /** Normalized components; never ends with a retain. */
    this.ops = [];
    // Retained units not yet followed by an insert or delete.
    this._pending = 0;
  }

  /** Reads the wire format, normalizing. Throws a TypeError on bad input. */
  static fromJSON(array) {
    if (!Array.isArray(array)) throw new TypeError("a text operation must be an array");
    if (array.length > MAX_WIRE_COMPONENTS) {
      throw new TypeError(`malformed operation: more than ${MAX_WIRE_COMPONENTS} components`);
    }
    const op = new TextOperation();
    for (const c of array) {
      if (typeof c === "string") {
        if (c === "") throw new TypeError("malformed operation: empty insert");
        op.insert(c); // Throws on lone surrogates.
      } else if (typeof c === "number" && Number.isInteger(c) && c !== 0 && Math.abs(c) <= MAX_UNITS) {
        if (c > 0) op.retain(c);
        else op.delete(-c);
      } else {
        throw new TypeError(`malformed operation: bad component ${JSON.stringify(c)}`);
      }
    }
    op._pending = 0;
    return op;
  }

  /** The wire format: a fresh array. */
  toJSON() {
    return this.ops.slice();
  }

  /** Keeps the next `n` units. */
  retain(n) {
    checkCount(n);
    this._pending += n;
    return this;
  }

  /** Inserts `s` here. Throws a TypeError if `s` has a lone surrogate. */
  insert(s) {
    if (typeof s !== "string") throw new TypeError("insert takes a string");
    if (s === "") return this;
    if (!isWellFormed(s)) throw new TypeError("malformed operation: insert with a lone surrogate");
    this._flush();
    const ops = this.ops;
    // An insert goes before the deletes that end the operation.
    let i = ops.length;
    while (i > 0 && typeof ops[i - 1] === "number" && ops[i - 1] < 0) i--;
    if (i > 0 && typeof ops[i - 1] === "string") ops[i - 1] += s;
    else ops.splice(i, 0, s);
    return this;
  }

  /** Deletes the next `n` units. */
  delete(n) {
    checkCount(n);
    if (n === 0) return this;
    this._flush();
    const ops = this.ops;
    const last = ops.length - 1;
    if (last >= 0 && typeof ops[last] === "number" && ops[last] < 0) {
      const room = Math.min(MAX_UNITS + ops[last], n);
      ops[last] -= room;
      n -= room;
    }
    for (; n > 0; n -= Math.min(n, MAX_UNITS)) ops.push(-Math.min(n, MAX_UNITS));
    return this;
  }

  _flush() {
    for (; this._pending > 0; this._pending -= Math.min(this._pending, MAX_UNITS)) {
      this.ops.push(Math.min(this._pending, MAX_UNITS));
    }
  }

  _done() {
    this._pending = 0;
    return this;
  }

  /** Retains + deletes: the text must be at least this long. */
  get baseLength() {
    let n = 0;
    for (const c of this.ops) if (typeof c === "number") n += Math.abs(c);
    return n;
  }

  /** Inserted minus deleted units. */
  get lengthDelta() {
    let n = 0;
    for (const c of this.ops) n += typeof c === "string" ? c.length : Math.min(c, 0);
    return n;
  }

  /** Whether the operation changes nothing. */
  isNoop() {
    return this.ops.length === 0;
  }

  /**
   * Applies the operation to `text`. Throws a RangeError with `kind`
   * "out_of_range" (checked first) or "splits_surrogate_pair" (with `at`).
   */
  apply(text) {
    if (typeof text !== "string") throw new TypeError("apply takes a string");
    const needed = this.baseLength;
    if (needed > text.length) {
      throw otError("out_of_range", `the operation needs ${needed} UTF-16 units, the text has ${text.length}`, {
        needed,
        len: text.length,
      });
    }
    const check = (pos) => {
      if (splitsPair(text, pos)) {
        throw otError("splits_surrogate_pair", `position ${pos} falls inside a surrogate pair`, { at: pos });
      }
    };
    const out = [];
    let pos = 0;
    for (const c of this.ops) {
      if (typeof c === "string") {
        check(pos);
        out.push(c);
      } else if (c > 0) {
        out.push(text.slice(pos, pos + c));
        pos += c;
      } else {
        check(pos);
        pos -= c;
        check(pos);
      }
    }
    out.push(text.slice(pos));
    return out.join("");
  }

  /**
   * `transform` for concurrent `a` by `aAuthor` and `b` by `bAuthor`
   * (participant ids, or null): at a tie the author who `insertsFirst` goes
   * first, whichever operation is `a`.
   */
  static transformByAuthor(a, aAuthor, b, bAuthor) {
    if (insertsFirst(aAuthor, bAuthor)) return TextOperation.transform(a, b);
    const [b2, a2] = TextOperation.transform(b, a);
    return [a2, b2];
  }

  /**
   * Transforms two concurrent operations: returns `[a2, b2]` with
   * b2.apply(a.apply(s)) === a2.apply(b.apply(s)). At a tie (both insert at
   * the same place) `a`'s insert comes first.
   */
  static transform(a, b) {
    const a2 = new TextOperation();
    const b2 = new TextOperation();
    const pa = new Pieces(a.ops);
    const pb = new Pieces(b.ops);
    for (;;) {
      const x = pa.peek();
      const y = pb.peek();
      if (typeof x === "string") {
        a2.insert(x);
        b2._pending += x.length;
        pa.skip(x.length);
      } else if (typeof y === "string") {
        a2._pending += y.length;
        b2.insert(y);
        pb.skip(y.length);
      } else if (x === END && y === END) {
        break;
      } else {
        const n = Math.min(units(x), units(y));
        if (x < 0 && y < 0) {
          // Both delete the same text.
        } else if (x < 0) a2.delete(n);
        else if (y < 0) b2.delete(n);
        else {
          a2._pending += n;
          b2._pending += n;
        }
        pa.skip(n);
        pb.skip(n);
      }
    }
    return [a2._done(), b2._done()];
  }

  /**
   * `a` then `b` as one operation. Throws a RangeError ("splits_surrogate_pair",
   * `at` counting in the text `a` produces) if `b` cuts a pair `a` inserts.
   */
  static compose(a, b) {
    const out = new TextOperation();
    const pa = new Pieces(a.ops);
    const pb = new Pieces(b.ops);
    let pos = 0; // In the text `a` produces.
    for (;;) {
      const x = pa.peek();
      const y = pb.peek();
      if (typeof x === "number" && x < 0) {
        out.delete(-x);
        pa.skip(-x);
      } else if (typeof y === "string") {
        out.insert(y);
        pb.skip(y.length);
      } else if (x === END && y === END) {
        break;
      } else if (typeof x === "string") {
        const n = Math.min(x.length, units(y));
        if (splitsPair(x, n)) {
          throw otError("splits_surrogate_pair", `position ${pos + n} falls inside a surrogate pair`, {
            at: pos + n,
          });
        }
        if (y === END || y > 0) out.insert(x.slice(0, n));
        pos += n;
        pa.skip(n);
        pb.skip(n);
      } else {
        const n = Math.min(units(x), units(y));
        if (y !== END && y < 0) out.delete(n);
        else out._pending += n;
        pos += n;
        pa.skip(n);
        pb.skip(n);
      }
    }
    return out._done();
  }

  /**
   * Where position `index` moves when this operation is applied. At a tie
   * with an insert exactly at `index`, `stickAfter` moves it after the
   * inserted text; otherwise it stays before. A position inside a deleted
   * range moves to the start of the deletion.
   */
  transformIndex(index, stickAfter) {
    let pos = 0;
    let moved = index;
    for (const c of this.ops) {
      if (pos > index) break;
      if (typeof c === "string") {
        if (pos < index || stickAfter) moved += c.length;
      } else if (c > 0) {
        pos += c;
      } else {
        moved -= Math.min(index - pos, -c);
        pos -= c;
      }
    }
    return moved;
  }
}

function checkCount(n) {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`expected a count of units, got ${n}`);
}

// An ended operation retains the rest of the text.
const END = Infinity;
const units = (piece) => (typeof piece === "string" ? piece.length : Math.abs(piece));

/** Consumes an operation's components piece by piece. */
class Pieces {
  constructor(ops) {
    this.ops = ops;
    this.i = 0;
    this.used = 0; // Units of the current component already consumed.
  }

  /** What is left of the current component (END once there is none). */
  peek() {
    const c = this.ops[this.i];
    if (c === undefined) return END;
    if (typeof c === "string") return c.slice(this.used);
    return c > 0 ? c - this.used : c + this.used;
  }

  skip(n) {
    const c = this.ops[this.i];
    if (c === undefined) return;
    this.used += n;
    if (this.used >= units(c)) {
      this.i++;
      this.used = 0;
    }
  }
}

/**
 * The operation that turns `oldText` into `newText` with one contiguous
 * replace (common prefix and suffix kept, never splitting a surrogate pair):
 * what a textarea's input event needs.
 */
export function diffToOperation(oldText, newText) {
  const max = Math.min(oldText.length, newText.length);
  let prefix = 0;
  while (prefix < max && oldText.charCodeAt(prefix) === newText.charCodeAt(prefix)) prefix++;
  if (prefix > 0 && isHigh(oldText.charCodeAt(prefix - 1))) prefix--;
  let suffix = 0;
  while (
    suffix < max - prefix &&
    oldText.charCodeAt(oldText.length - 1 - suffix) === newText.charCodeAt(newText.length - 1 - suffix)
  ) {
    suffix++;
  }
  if (suffix > 0 && isLow(oldText.charCodeAt(oldText.length - suffix))) suffix--;
  return new TextOperation()
    .retain(prefix)
    .delete(oldText.length - prefix - suffix)
    .insert(newText.slice(prefix, newText.length - suffix))
    ._done();
}

/** A random id for an operation (16 hex digits). */
function freshOid() {
  const bytes = new Uint8Array(8);
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Whether `a`'s insert comes before `b`'s when both insert at one position
 * concurrently (authors are participant ids): the lower id first; a change
 * with no author (null: a replica's, the server's) before any participant's;
 * the same author's in the order given. The server breaks ties the same way
 * (collab_core::ot::inserts_first), so runs typed at one spot by several
 * people at once stay contiguous.
 */
export function insertsFirst(a, b) {
  if (a == null) return true;
  if (b == null) return false;
  return a <= b;
}

/** Frame budget for one `text_op`: under the server's 64 KiB text frame limit. */
const DEFAULT_MAX_FRAME_BYTES = 48 * 1024;
/** The smallest budget a `frame_too_large` refusal halves it to. */
const MIN_FRAME_BYTES = 4 * 1024;
/** Components per sent op, under the server's 10000. */
const MAX_SENT_COMPONENTS = 5000;
/** Room in the frame for everything but the op itself. */
const ENVELOPE_BYTES = 256;
/**
 * Least time between two `text_op` frames: 20 a second, a third of the
 * server's 60 frames a second, leaving room for presence and chat. Edits
 * typed meanwhile are composed into one op.
 */
const DEFAULT_MIN_INTERVAL_MS = 50;
/** Resends of a refused op (rate_limited, internal, storage_failed) before giving up to a resync. */
const MAX_RETRIES = 8;
/** rids this client gives its text ops, far from the small ones apps count up from. */
const FIRST_RID = 2 ** 40;

/** Bytes a string takes inside a JSON frame (UTF-8, with escapes). */
function jsonBytes(s, from = 0, to = s.length) {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) n += 2;
    else if (c < 0x20) n += 6;
    else if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (isHigh(c) && i + 1 < to && isLow(s.charCodeAt(i + 1))) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Splits `op` into `[head, rest]` with compose(head, rest) equal to `op`,
 * head's JSON at most about `budget` bytes and `maxComponents` components:
 * what one frame carries of a large paste. `rest` is null when `op` fits.
 */
export function splitOperation(op, budget, maxComponents = MAX_SENT_COMPONENTS) {
  const ops = op.ops;
  let bytes = 2;
  let outPos = 0;
  for (let i = 0; i < ops.length; i++) {
    const c = ops[i];
    const size = typeof c === "string" ? jsonBytes(c) + 3 : String(c).length + 1;
    if (bytes + size <= budget && i < maxComponents) {
      bytes += size;
      if (typeof c === "string") outPos += c.length;
      else if (c > 0) outPos += c;
      continue;
    }
    // Cut here: inside this insert as far as the budget goes, else before
    // this component. The head always changes the text (at least one
    // character of an insert, or the component itself), so splitting ends.
    const progress = ops.slice(0, i).some((d) => typeof d === "string" || d < 0);
    const head = new TextOperation();
    head.ops = ops.slice(0, i);
    let cut = 0;
    if (typeof c === "string" && i < maxComponents) {
      let room = budget - bytes - 3;
      while (cut < c.length) {
        const step = isHigh(c.charCodeAt(cut)) && cut + 1 < c.length && isLow(c.charCodeAt(cut + 1)) ? 2 : 1;
        const cost = jsonBytes(c, cut, cut + step);
        if (cost > room && (cut > 0 || progress)) break;
        room -= cost;
        cut += step;
      }
    }
    let from = i;
    if (cut > 0) {
      head.ops = head.ops.concat([c.slice(0, cut)]);
      outPos += cut;
      from = i + 1;
    } else if (!progress) {
      // A delete (or a retain) past the component budget: take it whole.
      head.ops = head.ops.concat([c]);
      if (typeof c === "number" && c > 0) outPos += c;
      from = i + 1;
    }
    const rest = new TextOperation();
    if (outPos > 0) rest.retain(outPos);
    if (cut > 0 && cut < c.length) rest.insert(c.slice(cut));
    for (const d of ops.slice(from)) appendComponent(rest, d);
    return [head, rest.isNoop() ? null : rest];
  }
  return [op, null];
}

function appendComponent(op, c) {
  if (typeof c === "string") op.insert(c);
  else if (c > 0) op.retain(c);
  else op.delete(-c);
}

/**
 * The client side of a multi-file document: local edits go out one at a time,
 * remote edits are transformed over what is still pending here. See the
 * protocol assumptions at the top of this file.
 *
 * It keeps an honest client within the server's limits and recovers from
 * every refusal of its edit: it sends at most one `text_op` per
 * `minInterval` (edits typed meanwhile are composed into the next one),
 * splits an op whose frame would pass `maxFrameBytes` into several (a large
 * paste), resends a refused op with the same oid after a back-off
 * (`rate_limited`, `internal`, `storage_failed`), splits smaller after
 * `frame_too_large`, and asks the app to resynchronise (`onResync`) after
 * any other refusal, never waiting forever for an ack that will not come.
 */
export class DocumentClient {
  /**
   * @param {{rev: number, files: Object<string, string>}} document the
   *   document as the welcome frame gave it.
   * @param {(frame: object) => void} send sends a JSON-able frame to the server.
   * @param {{minInterval?: number, maxFrameBytes?: number, now?: () => number,
   *   setTimer?: (f: () => void, ms: number) => any, clearTimer?: (t: any) => void}} [options]
   *   pacing and frame budget, and the clock and timers (for tests).
   */
  constructor({ rev, files }, send, options = {}) {
    /** The last revision seen from the server. */
    this.rev = rev;
    /** Optional: `(file, op, author) => void`, called after a remote op is applied. */
    this.onRemoteOp = null;
    /**
     * Optional: `(code) => void`, called when the server refused the op in
     * flight for good: the app should load the document again (reconnect
     * and join with `rev`); pending edits are rebased on the catch-up.
     */
    this.onResync = null;
    this._send = send;
    this._files = new Map(Object.entries(files || {}));
    /** The op sent and not yet acknowledged: `{file, op, oid, rid}`, or null. */
    this._inflight = null;
    /** Edits made while something was in flight, composed per file. */
    this._buffers = new Map();
    /**
     * This client's participant id (the welcome's `you`): ties between a
     * remote insert and a pending one at the same place are broken by it,
     * as the server breaks them. Null: the remote edit goes first.
     */
    this.me = null;
    this._minInterval = options.minInterval ?? DEFAULT_MIN_INTERVAL_MS;
    this._maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this._now = options.now ?? (() => Date.now());
    this._setTimer = options.setTimer ?? ((f, ms) => setTimeout(f, ms));
    this._clearTimer = options.clearTimer ?? ((t) => clearTimeout(t));
    this._timer = null;
    this._lastSent = -Infinity;
    this._nextRid = FIRST_RID;
    this._retries = 0;
    /** Held after a refusal for good, until `reconnected()`. */
    this._stalled = false;
    /** When the oldest edit not yet acknowledged was made (ms), or null. */
    this.pendingSince = null;
  }

  /** The text of a file as this client sees it ("" for an unknown file). */
  text(path) {
    return this._files.get(path) ?? "";
  }

  /** Whether an op is waiting for its ack (or edits are buffered). */
  get hasPending() {
    return this._inflight !== null || this._buffers.size > 0;
  }

  /** How long the oldest unacknowledged local edit has waited (ms), 0 for none. */
  unacknowledgedFor() {
    return this.pendingSince === null ? 0 : Math.max(0, this._now() - this.pendingSince);
  }

  /**
   * Applies a local edit (already shown in the editor) and sends it or
   * buffers it. Throws (and changes nothing) if `op` does not fit the text.
   */
  applyLocal(path, op) {
    const text = op.apply(this.text(path));
    if (op.isNoop()) return;
    op = TextOperation.compose(new TextOperation(), op); // A copy the caller cannot change.
    const buffered = this._buffers.get(path);
    this._buffers.set(path, buffered ? TextOperation.compose(buffered, op) : op);
    this._files.set(path, text);
    if (this.pendingSince === null) this.pendingSince = this._now();
    this._pump();
  }

  /** Handles a frame from the server. Returns whether it was one of ours. */
  receive(frame) {
    switch (frame && frame.type) {
      case "text_ack":
        this._ack(frame);
        return true;
      case "text_op":
        this._textOp(frame);
        return true;
      case "file_op":
        this._fileOp(frame);
        return true;
      case "text_catchup":
        for (const f of frame.ops || []) this.receive(f);
        if (typeof frame.rev === "number") this.rev = Math.max(this.rev, frame.rev);
        return true;
      case "error": {
        const f = this._inflight;
        if (f === null) return false;
        // Matched by rid; a frame refused before it was read (too large)
        // has none, and only an op is that large.
        const ours = frame.rid != null ? frame.rid === f.rid : frame.code === "frame_too_large";
        if (!ours) return false;
        this.refused(f.oid, frame.code);
        return true;
      }
      default:
        return false;
    }
  }

  /**
   * The server refused the op with `oid` (the app calls this when it matched
   * an error to the op itself; `receive` does it for errors carrying this
   * client's rid). Returns what happens: `"retry"` (sent again, same oid,
   * after a back-off), `"split"` (sent again in smaller parts), `"dropped"`
   * (an edit on a file that was replaced or removed) or `"resync"` (the app
   * must load the document again; `onResync` is called).
   */
  refused(oid, code) {
    const f = this._inflight;
    if (f === null || f.oid !== oid) return "ignored";
    if (code === "unknown_file") {
      // The file was removed or replaced: edits typed on it cannot land.
      this._inflight = null;
      this._buffers.delete(f.file);
      this._settled();
      this._pump();
      return "dropped";
    }
    if (code === "frame_too_large" && this._maxFrameBytes > MIN_FRAME_BYTES) {
      this._maxFrameBytes = Math.max(MIN_FRAME_BYTES, Math.floor(this._maxFrameBytes / 2));
      // Not applied: put it back in front of what was typed since, and send
      // it again in smaller parts.
      this._inflight = null;
      const buffered = this._buffers.get(f.file);
      this._buffers.set(f.file, buffered ? TextOperation.compose(f.op, buffered) : f.op);
      this._pump();
      return "split";
    }
    if ((code === "rate_limited" || code === "internal" || code === "storage_failed") && this._retries < MAX_RETRIES) {
      this._retries += 1;
      const delay = Math.min(5000, 250 * 2 ** (this._retries - 1));
      this._clearTimer(this._timer);
      this._timer = this._setTimer(() => {
        this._timer = null;
        const now = this._inflight;
        if (now !== null && now.oid === f.oid && !this._stalled) this._sendOp(now.file, now.op, now.oid);
      }, delay);
      return "retry";
    }
    // Anything else (or retries used up): this op will not be applied as it
    // is. Stop, and let the app load the document again; the catch-up and
    // reconnected() rebase what is pending.
    this._stalled = true;
    if (typeof this.onResync === "function") this.onResync(code);
    return "resync";
  }

  /**
   * Call after a reconnect, once the catch-up has been processed: resends the
   * in-flight op, as transformed so far, on top of the current `rev`, with
   * the same oid (a server that already applied it answers with an ack).
   * `welcomeDocument` is accepted for symmetry with the constructor and unused.
   */
  reconnected(welcomeDocument) {
    this._stalled = false;
    this._retries = 0;
    this._clearTimer(this._timer);
    this._timer = null;
    const f = this._inflight;
    if (f) this._sendOp(f.file, f.op, f.oid);
    else this._pump();
  }

  /**
   * Where this client's own caret at `index` in `path` moves with a remote
   * `op`: an insert exactly at the caret stays after it, so the caret stays
   * after one's own last character and one's run of typing is not split by
   * someone typing at the same spot.
   */
  transformCursor(path, index, op) {
    return op.transformIndex(index, false);
  }

  _sendOp(file, op, oid) {
    const rid = this._nextRid++;
    this._inflight = { file, op, oid, rid };
    this._lastSent = this._now();
    const frame = { type: "text_op", rid, rev: this.rev, file, op: op.toJSON(), oid };
    // Knowing who it is, the client breaks ties by author, and asks the
    // server to do the same for its operations.
    if (this.me != null) frame.ties = "author";
    this._send(frame);
  }

  /** Sends the next buffered op when nothing is in flight and the pace allows. */
  _pump() {
    if (this._inflight !== null || this._stalled || this._buffers.size === 0) return;
    const wait = this._lastSent + this._minInterval - this._now();
    if (wait > 0) {
      if (this._timer === null) {
        this._timer = this._setTimer(() => {
          this._timer = null;
          this._pump();
        }, wait);
      }
      return;
    }
    for (const [file, op] of this._buffers) {
      this._buffers.delete(file);
      if (op.isNoop()) continue;
      const budget = this._maxFrameBytes - ENVELOPE_BYTES - jsonBytes(file);
      const [head, rest] = splitOperation(op, budget);
      if (rest !== null) {
        // The rest goes first among what is left of this file, before
        // anything typed since: put it back at the front.
        const after = this._buffers.get(file);
        this._buffers.delete(file);
        const left = new Map([[file, after ? TextOperation.compose(rest, after) : rest]]);
        for (const [f, o] of this._buffers) left.set(f, o);
        this._buffers = left;
      }
      return this._sendOp(file, head, freshOid());
    }
    this._settled();
  }

  /** Nothing pending any more: the unacknowledged clock stops. */
  _settled() {
    if (!this.hasPending) this.pendingSince = null;
  }

  _ack(frame) {
    if (this._inflight === null || frame.oid !== this._inflight.oid) return;
    // max: an ack for a resend may carry the older revision the op became.
    this.rev = Math.max(this.rev, frame.rev);
    this._inflight = null;
    this._retries = 0;
    this._settled();
    if (this.pendingSince !== null) this.pendingSince = this._now();
    this._pump();
  }

  _textOp(frame) {
    if (this._inflight !== null && frame.oid != null && frame.oid === this._inflight.oid) {
      return this._ack(frame); // Our own op, seen in a catch-up or via another connection.
    }
    const file = frame.file;
    let op = TextOperation.fromJSON(frame.op);
    // Ties go by author, as the server broke them when it rebased ours; a
    // client that does not know who it is lets the remote edit go first.
    const remoteFirst = this.me == null || insertsFirst(frame.author ?? null, this.me);
    const past = (mine) => {
      if (remoteFirst) return TextOperation.transform(op, mine);
      const [mine2, op2] = TextOperation.transform(mine, op);
      return [op2, mine2];
    };
    let inflight = this._inflight;
    if (inflight !== null && inflight.file === file) {
      let mine;
      [op, mine] = past(inflight.op);
      inflight = { ...inflight, op: mine };
    }
    let buffer = this._buffers.get(file);
    if (buffer) [op, buffer] = past(buffer);
    const text = op.apply(this.text(file)); // Throws if out of step: resync.
    this._files.set(file, text);
    this._inflight = inflight;
    if (buffer) this._buffers.set(file, buffer);
    this.rev = frame.rev;
    if (typeof this.onRemoteOp === "function") this.onRemoteOp(file, op, frame.author);
  }

  _fileOp(frame) {
    const file = frame.file;
    this.rev = frame.rev;
    // Edits typed on the file as it was before are refused by the server.
    this._buffers.delete(file);
    if (this._inflight !== null && this._inflight.file === file) {
      this._inflight = null;
      this._pump();
    }
    this._settled();
    if (frame.action === "create") this._files.set(file, frame.text ?? "");
    else if (frame.action === "remove") this._files.delete(file);
  }
}
