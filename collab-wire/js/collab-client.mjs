// collab-client: the client side of a collab session, for browsers and
// Node.js (20+, with a WebSocket), without dependencies beside collab-ot.mjs.
//
// A `CollabClient` holds one participant's connection to one session: it
// joins with credentials, reconnects with back-off and resumes where it left
// off (the document from its revision, with edits made offline rebased by
// the server; events from the last one seen), and keeps the session's state
// as the protocol describes it (PROTOCOL.md): participants and their
// presence, the document (a collab-ot DocumentClient), chat messages with
// threads, comments and reactions. An app draws that state and calls the
// methods below; it learns of changes from `on(type, listener)`.
//
//   import { CollabClient } from "/collab-client.mjs";
//   const client = new CollabClient({ url: "wss://example.com/ws/session/ID", token, name: "Ada" });
//   client.on("event", (event) => console.log(event.kind));
//   client.on("remote-edit", (file, op) => redraw(file, client.doc.text(file)));
//   client.connect();
//   await client.ready();
//   client.edit("main", op); // a collab-ot TextOperation on the file's text
//   await client.sendMessage("hello @Grace", { mentions: [grace.id] });
//
// Positions are UTF-16 offsets, as in JavaScript strings.

import { Connection, RequestError } from "./collab-connection.mjs";
import { DocumentClient } from "./collab-ot.mjs";
import { OFFLINE_PRESENCE, applyEvent, applyPresence } from "./collab-state.mjs";

export { Connection, RequestError };

/**
 * @typedef {"host" | "editor" | "viewer"} Role
 * @typedef {{file: string, anchor: number, head: number}} Cursor
 * @typedef {{file: string, first_line: number, last_line: number}} Viewport
 * @typedef {{status: "active" | "away" | "offline", cursors: Cursor[], viewport?: Viewport | null, typing: boolean, last_active: number}} Presence
 * @typedef {{id: number, name: string, role: Role, colour: string, present: boolean, presence?: Presence}} Participant
 * @typedef {{file: string, line: number, offset?: number}} Anchor
 * @typedef {{id: number, author: number, text: string, at: number, mentions?: number[], reply_to?: number, anchor?: Anchor, reactions?: Record<string, number[]>, edited_at?: number, deleted?: boolean}} Message
 * @typedef {{id: string, title: string, language: string, status: string}} SessionInfo
 * @typedef {{seq: number, at: number, kind: string, participant?: any, [key: string]: any}} SessionEvent
 * @typedef {"connecting" | "live" | "reconnecting" | "offline" | "closed"} ConnectionState
 */

// Reconnect delays grow from 0.5 s, doubling, to 30 s (PROTOCOL.md), each
// drawn from its upper half so that clients cut off together do not all come
// back at once.
const RETRY_BASE = 500;
const RETRY_MAX = 30000;

/** The frame types that answer a request, matched to it by `rid`. */
/** Close codes after which the server will not take the participant back. */
const FINAL_CLOSE = { 4000: "left", 4001: "kicked", 4002: "session_ended" };

/** The first byte of a part of a sync message (PROTOCOL.md, "Frames"). */
export const PART_TAG = 0x50;

/**
 * The binary frames a replica sends for one automerge sync message: the
 * message itself when it fits in `maxFrameBytes` (the server's text frame
 * limit, 64 KiB by default), else parts of at most `maxFrameBytes` each, with
 * the 9-byte header the server reads (0x50, the total length and the part's
 * offset, both u32 big-endian). Send them in order, one binary frame each.
 *
 *   for (const frame of syncFrames(Automerge.generateSyncMessage(doc, state)[1])) ws.send(frame);
 *
 * @param {Uint8Array} message
 * @param {number} [maxFrameBytes]
 * @returns {Uint8Array[]}
 */
export function syncFrames(message, maxFrameBytes = 64 * 1024) {
  if (message.length <= maxFrameBytes && message[0] !== PART_TAG) return [message];
  if (message.length > 0xffffffff) throw new RangeError("a sync message of 4 GiB or more");
  const room = Math.max(maxFrameBytes, 10) - 9;
  const frames = [];
  for (let offset = 0; offset < message.length; offset += room) {
    const bytes = message.subarray(offset, offset + room);
    const frame = new Uint8Array(9 + bytes.length);
    const header = new DataView(frame.buffer);
    header.setUint8(0, PART_TAG);
    header.setUint32(1, message.length);
    header.setUint32(5, offset);
    frame.set(bytes, 9);
    frames.push(frame);
  }
  return frames;
}

/** Whether a goodbye or close reason means the client must not reconnect. */
export const isFinal = (reason) => reason === "left" || reason === "kicked" || reason === "session_ended";

/**
 * What `on(type, listener)` reports, by type:
 * - `state` `()`: the connection state changed (see `state`).
 * - `welcome` `({resumed})`: joined; `resumed` when the document was kept.
 * - `event` `(event, {live, wasPresent})`: a session event, after the state
 *   took it in; `live` is false for the catch-up after a reconnect.
 * - `presence` `(participantId)`: someone's presence changed.
 * - `remote-edit` `(file, op)`: others changed a file (the document already has it).
 * - `file` `(fileOp)`: a file was created or removed.
 * - `chat` `()`: chat messages were loaded.
 * - `closed` `(reason)`: the client stopped for good (`left`, `kicked`,
 *   `session_ended`, `not_found`, `unauthorized`, `name_refused`).
 * - `problem` `({code, message})`: something the user should hear of
 *   (a refused join or edit, the document reloaded).
 * @typedef {"state" | "welcome" | "event" | "presence" | "remote-edit" | "file" | "chat" | "closed" | "problem"} ClientEventType
 */

export class CollabClient {
  /**
   * @param {object} options
   * @param {string} options.url ws:// or wss:// URL of the session (`/ws/session/{id}`).
   * @param {string} options.token the bearer token (sent as a subprotocol, never in the URL).
   * @param {string} options.name the participant's display name.
   * @param {typeof WebSocket} [options.WebSocket] the WebSocket class (the global one by default).
   * @param {string} [options.sessionUrl] the REST URL of the session (`/api/v1/sessions/{id}`): asked,
   *   when connections keep failing before a welcome, whether the session still exists.
   * @param {{baseMs?: number, maxMs?: number}} [options.retry] reconnect back-off.
   */
  constructor({ url, token, name, WebSocket: WebSocketImpl, sessionUrl, retry = {} }) {
    this.url = url;
    this.token = token;
    this.name = name;
    this.WebSocket = WebSocketImpl ?? globalThis.WebSocket;
    this.sessionUrl = sessionUrl ?? null;
    this.retryBase = retry.baseMs ?? RETRY_BASE;
    this.retryMax = retry.maxMs ?? RETRY_MAX;
    this.listeners = new Map();

    /** @type {Connection | null} */
    this.connection = null;
    /** Whether the current connection is joined. */
    this.joined = false;
    this.everJoined = false;
    this.welcomed = false;
    this.attempt = 0;
    this.retryTimer = null;
    /** When the next reconnect is due (ms since the epoch), while one is scheduled. */
    this.retryAt = 0;
    /** Why the client stopped for good, or null. */
    this.finished = null;

    /** The local participant's id, once joined. @type {number | null} */
    this.me = null;
    /** @type {SessionInfo | null} */
    this.session = null;
    /** An ended session, joined to review it: everything is read-only. */
    this.reviewing = false;
    /** @type {Map<number, Participant>} */
    this.participants = new Map();
    /** Chat messages and comments by id. @type {Map<number, Message>} */
    this.messages = new Map();
    /** Whether older messages than those loaded exist. */
    this.hasOlderChat = false;
    /** The last event seen. */
    this.lastSeq = 0;
    /** The document, once joined. @type {DocumentClient | null} */
    this.doc = null;
    /** The document's file paths, sorted. @type {string[]} */
    this.files = [];

    this.catchUp = null;
    this.awaitingCatchup = false;
    this.textOpRids = new Map();
    this.fileSync = null;
    this.pendingChat = [];
    this.sentPresence = null;
    this.goodbye = null;
    this.stuckResyncs = 0;

    // The browser knows when the network is gone: stop waiting for a socket
    // that cannot deliver, keep editing locally, come back on "online".
    this.watchingNetwork = false;
    this.onOffline = () => {
      if (this.connection) this.connection.abandon("offline");
      else this._emit("state");
    };
    this.onOnline = () => {
      if (!this.finished && !this.connection) {
        this.attempt = 0;
        this.connect();
      }
    };
    this._watchNetwork(true);
  }

  /** Listens to the browser's online and offline events while the client runs. */
  _watchNetwork(on) {
    if (typeof globalThis.addEventListener !== "function" || on === this.watchingNetwork) return;
    this.watchingNetwork = on;
    const method = on ? "addEventListener" : "removeEventListener";
    globalThis[method]("offline", this.onOffline);
    globalThis[method]("online", this.onOnline);
  }

  // ---- listening -----------------------------------------------------------------

  /**
   * Calls `listener` on each report of `type`; returns a function that stops it.
   * @param {ClientEventType} type
   * @param {(...args: any[]) => void} listener
   * @returns {() => void}
   */
  on(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
    return () => this.listeners.get(type)?.delete(listener);
  }

  _emit(type, ...args) {
    for (const listener of this.listeners.get(type) ?? []) {
      try {
        listener(...args);
      } catch (e) {
        console.error(`a ${type} listener failed`, e);
      }
    }
  }

  /** Resolves once joined (at once if joined); rejects if the client stops first. */
  ready() {
    if (this.joined) return Promise.resolve(this);
    if (this.finished) return Promise.reject(new RequestError(this.finished, `the client stopped: ${this.finished}`));
    return new Promise((resolve, reject) => {
      const stops = [
        this.on("welcome", () => {
          stops.forEach((stop) => stop());
          resolve(this);
        }),
        this.on("closed", (reason) => {
          stops.forEach((stop) => stop());
          reject(new RequestError(reason, `the client stopped: ${reason}`));
        }),
      ];
    });
  }

  /** The connection as a user sees it. @returns {ConnectionState} */
  get state() {
    if (this.finished) return "closed";
    if (this.joined) return "live";
    if (typeof navigator !== "undefined" && navigator.onLine === false) return "offline";
    if (!this.everJoined) return "connecting";
    return "reconnecting";
  }

  /** Whether a reconnect is scheduled (see `retryAt`). */
  get retrying() {
    return this.retryTimer !== null;
  }

  // ---- the connection ------------------------------------------------------------

  /** Opens a connection to the session (again). */
  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.finished || this.connection) return;
    if (typeof navigator !== "undefined" && navigator.onLine === false) return this._emit("state");
    const connection = new Connection(
      this.url,
      ["collab.v1", `bearer.${this.token}`],
      {
        onOpen: () => this._sendJoin(connection),
        onFrame: (frame) => {
          if (this.connection === connection) this._onFrame(frame);
        },
        onClose: (info) => this._onClose(connection, info),
      },
      this.WebSocket,
    );
    this.connection = connection;
    this.welcomed = false;
    this._emit("state");
  }

  /** Comes back after `left` or, for a member, to review an ended session. */
  rejoin() {
    this.finished = null;
    this._watchNetwork(true);
    this.attempt = 0;
    this.connect();
  }

  /** Leaves the session (the participant may come back later with the same token). */
  leave() {
    if (this.joined && !this.reviewing) this.connection.send({ type: "leave" });
    else this._finish("left");
  }

  /**
   * Stops without leaving: closes the connection, reconnects no more, and
   * reports `closed` with `reason` (an app that knows the participant was
   * removed, say, stops with `kicked`).
   * @param {string} [reason]
   */
  close(reason = "closed") {
    this._finish(reason);
  }

  _sendJoin(connection) {
    const join = { type: "join", name: this.name, protocol: 1, mode: "thin" };
    // A client that kept its document asks only for what it missed; the
    // server then rebases the edits made meanwhile (PROTOCOL.md,
    // Reconnecting a thin client).
    if (this.doc) join.rev = this.doc.rev;
    if (this.everJoined) join.since = this.lastSeq;
    this.joinRid = connection.sendWithRid(join);
    this.joinSince = join.since;
  }

  _onClose(connection, info) {
    if (connection !== this.connection) return;
    this.connection = null;
    this.joined = false;
    this.textOpRids.clear();
    this.fileSync = null;
    const reason = this.goodbye || FINAL_CLOSE[info.code];
    this.goodbye = null;
    if (isFinal(reason)) return this._finish(reason);
    if (this.finished) return;
    if (typeof navigator !== "undefined" && navigator.onLine === false) return this._emit("state");
    const neverWelcomed = !this.welcomed;
    this._scheduleReconnect();
    // A refused upgrade looks like any network error to a browser: ask the
    // REST API whether the session is still there before trying on and on.
    if (neverWelcomed) this._probeSession();
  }

  _scheduleReconnect() {
    const ceiling = Math.min(this.retryMax, this.retryBase * 2 ** this.attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this.attempt = Math.min(this.attempt + 1, 16);
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this._emit("state");
  }

  async _probeSession() {
    if (!this.sessionUrl || typeof fetch !== "function") return;
    try {
      const res = await fetch(this.sessionUrl, { headers: { Authorization: `Bearer ${this.token}` } });
      if (res.status === 401) return this._finish("unauthorized");
      if (res.status === 404) return this._finish("not_found");
      if (res.status === 410) return this._finish("session_ended");
      // Removed by a host (this identity, or newcomers from this address):
      // no amount of reconnecting gets back in.
      if (res.status === 403) return this._finish("kicked");
      if (res.ok) {
        const session = await res.json();
        if (session.status === "ended") {
          // Kept so that a page can say why it ended (`end_reason`).
          this.session = session;
          this._finish("session_ended");
        }
      }
    } catch {
      // Still offline: the reconnect loop goes on.
    }
  }

  /** Stops for good with `reason`. */
  _finish(reason) {
    if (this.finished === reason && !this.connection) return;
    this.finished = reason;
    this._watchNetwork(false);
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.connection) {
      const c = this.connection;
      this.connection = null;
      c.abandon(reason);
    }
    this.joined = false;
    // Without a connection nobody's presence is known any more.
    for (const p of this.participants.values()) p.presence = { ...(p.presence || OFFLINE_PRESENCE), status: "offline", typing: false };
    this._emit("closed", reason);
    this._emit("state");
  }

  /**
   * Loads the document again from the server (dropping local edits the
   * server refused), by joining afresh without `rev`.
   */
  resync() {
    this.doc = null;
    if (this.connection) this.connection.abandon("resync");
    this.attempt = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  // ---- frames --------------------------------------------------------------------

  _onFrame(f) {
    switch (f.type) {
      case "welcome":
        return this._onWelcome(f);
      case "error":
        return this._onError(f);
      case "event":
        if (this.catchUp) this.catchUp.deferred.push(f.event);
        else this._applyEvent(f.event, true);
        return;
      case "events":
        // Without rid: the catch-up after a join with `since`.
        if (f.rid == null) this._onCatchupEvents(f);
        return;
      case "presence":
        return this._onPresence(f);
      case "text_ack":
      case "text_op":
      case "file_op":
      case "text_catchup":
        return this._onDocFrame(f);
      case "goodbye":
        this.goodbye = f.reason;
        if (isFinal(f.reason)) this._finish(f.reason);
        return;
      default:
        return;
    }
  }

  _onWelcome(w) {
    this.welcomed = true;
    this.joined = true;
    this.everJoined = true;
    this.attempt = 0;
    this.me = w.you;
    this.session = w.session;
    this.reviewing = w.session.status === "ended";
    this.participants = new Map(w.participants.map((p) => [p.id, p]));
    const resumed = this.doc !== null && w.document.files === undefined;
    if (resumed) {
      // The text_catchup that follows brings the edits made meanwhile.
      this.awaitingCatchup = true;
    } else {
      this.doc = new DocumentClient(w.document, (frame) => this._sendTextOp(frame));
      this.doc.me = w.you;
      // Refused for good: reconnect, and the catch-up rebases what is pending.
      this.doc.onResync = (code) => this._editsStuck(code);
      this.doc.onRemoteOp = (file, op) => this._remoteEdit(file, op);
      this.files = Object.keys(w.document.files || {}).sort();
      this.awaitingCatchup = false;
    }
    if (this.joinSince != null) {
      // Events up to last_seq come in an `events` frame next; live ones after them.
      this.catchUp = { upTo: w.last_seq, deferred: [] };
    } else this.lastSeq = w.last_seq;
    if (!resumed) {
      this.messages = new Map();
      this.loadChat(false);
    }
    if (!this.reviewing) for (const frame of this.pendingChat.splice(0)) this.connection.send(frame);
    // A new connection: the server has what this client last sent, or nothing.
    this.sentPresence = null;
    this._emit("welcome", { resumed });
    this._emit("state");
  }

  _onError(f) {
    if (f.rid != null && f.rid === this.joinRid) return this._onJoinError(f);
    if (f.rid != null && this.textOpRids.has(f.rid)) {
      const oid = this.textOpRids.get(f.rid);
      this.textOpRids.delete(f.rid);
      return this._onEditRefused(f, oid);
    }
    // A frame refused unread (too large) has no rid: the document client
    // splits its edit smaller if it was the one in flight.
    if (f.rid == null && this.doc) this.doc.receive(f);
  }

  _onJoinError(f) {
    const connection = this.connection;
    if (f.code === "unknown_revision") {
      // The server does not know our revision: start again from its files.
      this.doc = null;
      this._emit("problem", { code: f.code, message: "The document was reloaded from the server." });
      return this._sendJoin(connection);
    }
    if (f.code === "invalid_input") {
      this._emit("problem", { code: "name_refused", message: f.message });
      return this._finish("name_refused");
    }
    this._emit("problem", {
      code: f.code,
      message: f.code === "session_full" ? "The session is full; trying again shortly." : `Could not join: ${f.message}`,
    });
    connection.abandon(f.code);
  }

  _onEditRefused(f, oid) {
    // Retried (same oid), split smaller, or dropped (a file that is gone) by
    // the document client itself; only what it cannot recover reloads.
    const outcome = this.doc ? this.doc.refused(oid, f.code) : "ignored";
    if (outcome !== "resync" && outcome !== "ignored") return this._emit("state");
    if (outcome === "resync" || f.code === "unknown_file") return;
    const why = f.code === "forbidden" ? "You can no longer edit the code." : `An edit was refused (${f.message}).`;
    this._emit("problem", { code: f.code, message: `${why} The document was reloaded.` });
    this.resync();
  }

  /**
   * The server keeps refusing the edit in flight: reconnect, join with the
   * revision, and let the catch-up rebase what is pending; only if that
   * fails again, load the document afresh.
   */
  _editsStuck(code) {
    this.stuckResyncs += 1;
    if (this.stuckResyncs > 2) {
      this.stuckResyncs = 0;
      this._emit("problem", { code, message: `Edits were refused (${code}); the document was reloaded.` });
      return this.resync();
    }
    if (this.connection) this.connection.abandon("resync");
  }

  _onCatchupEvents(f) {
    if (!this.catchUp) return;
    for (const e of f.events) this._applyEvent(e, false);
    if (f.has_more && f.events.length > 0) {
      this.request({ type: "events_since", since: f.events.at(-1).seq })
        .then((page) => this._onCatchupEvents({ ...page, rid: undefined }))
        .catch(() => {}); // The connection dropped; the next join catches up.
      return;
    }
    const { upTo, deferred } = this.catchUp;
    this.catchUp = null;
    this.lastSeq = Math.max(this.lastSeq, upTo);
    for (const e of deferred) this._applyEvent(e, true);
  }

  _onPresence(f) {
    if (applyPresence(this, f)) this._emit("presence", f.participant);
  }

  /** Takes a session event into the state, then reports it. */
  _applyEvent(e, live) {
    const applied = applyEvent(this, e);
    if (applied) this._emit("event", e, { live, wasPresent: applied.wasPresent });
  }

  // ---- requests ------------------------------------------------------------------

  /**
   * Sends a frame and resolves with its answer; rejects with a RequestError
   * (`offline` when not joined).
   * @param {object} frame
   * @param {number} [timeoutMs]
   */
  request(frame, timeoutMs) {
    if (!this.joined) return Promise.reject(new RequestError("offline", "You are offline."));
    return this.connection.request(frame, timeoutMs);
  }

  // ---- the document --------------------------------------------------------------

  _sendTextOp(frame) {
    // Offline (or before the catch-up), the op stays in flight in the
    // DocumentClient, which sends it again after the reconnect.
    if (!this.joined || this.awaitingCatchup) return;
    const rid = this.connection.sendWithRid(frame);
    this.textOpRids.set(rid, frame.oid);
  }

  _onDocFrame(f) {
    if (!this.doc) return;
    if (f.type === "text_ack") {
      if (f.rid != null) this.textOpRids.delete(f.rid);
      if (this.fileSync && f.oid === this.fileSync.oid) return this._fileSynced(f);
    }
    const fileOps = f.type === "file_op" ? [f] : f.type === "text_catchup" ? (f.ops || []).filter((o) => o.type === "file_op") : [];
    try {
      this.doc.receive(f);
    } catch (e) {
      console.error("could not apply a change", e);
      this._emit("problem", { code: "out_of_step", message: "The document went out of step and was reloaded." });
      return this.resync();
    }
    for (const op of fileOps) this._fileChanged(op);
    if (f.type === "text_catchup") {
      this.awaitingCatchup = false;
      this.doc.reconnected();
    }
    // Only an acknowledgement or a catch-up changes what is pending (what
    // "saving" shows); others' edits, the bulk of frames, do not.
    if (f.type === "text_ack" || f.type === "text_catchup") this._emit("state");
  }

  _fileChanged(op) {
    if (op.action === "create" && !this.files.includes(op.file)) this.files = [...this.files, op.file].sort();
    if (op.action === "remove") {
      this.files = this.files.filter((f) => f !== op.file);
      for (const p of this.participants.values()) {
        if (p.presence?.cursors) p.presence.cursors = p.presence.cursors.filter((c) => c.file !== op.file);
      }
    }
    this._emit("file", op);
  }

  _remoteEdit(file, op) {
    this._moveMarks(file, op);
    this._emit("remote-edit", file, op);
  }

  /**
   * Applies the local participant's edit to `file` and sends it (or keeps it
   * for the reconnect when offline).
   * @param {string} file
   * @param {import("./collab-ot.mjs").TextOperation} op an operation on the file's current text.
   */
  edit(file, op) {
    if (!this.doc) throw new RequestError("offline", "no document yet");
    try {
      this.doc.applyLocal(file, op);
    } catch (e) {
      console.error("local edit out of step", e);
      this.resync();
      return;
    }
    this._moveMarks(file, op);
    this._emit("state");
  }

  /**
   * Moves others' cursors and the comment anchors with an edit, as the
   * server does (an insert at a position moves it after the insert), since
   * the server does not broadcast these moves.
   */
  _moveMarks(file, op) {
    const move = (i) => op.transformIndex(i, true);
    // The caret others have for this client moves by the same rule.
    const sent = this.sentPresence?.cursor;
    if (sent && sent.file === file) {
      sent.anchor = move(sent.anchor);
      sent.head = move(sent.head);
    }
    for (const p of this.participants.values()) {
      if (p.id === this.me || !p.presence?.cursors) continue;
      for (const c of p.presence.cursors) {
        if (c.file !== file) continue;
        c.anchor = move(c.anchor);
        c.head = move(c.head);
      }
    }
    const text = this.doc.text(file);
    for (const m of this.messages.values()) {
      if (!m.anchor || m.anchor.file !== file || m.anchor.offset == null) continue;
      m.anchor.offset = move(m.anchor.offset);
      m.anchor.line = lineOf(text, m.anchor.offset);
    }
  }

  /**
   * Creates an empty file; resolves once the document has it.
   * @param {string} path
   */
  async createFile(path) {
    if (this.files.includes(path)) return;
    await this.request({ type: "file_create", file: path, text: "" });
    // The creator is not told the revision its file became. An empty edit is
    // answered with the current revision, at or after the creation, and by
    // then every change before it has arrived (frames keep their order).
    const known = this.files.find((f) => f !== path) ?? this.files[0];
    const oid = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
    await new Promise((resolve) => {
      this.fileSync = { oid, path, resolve };
      this.connection.send({ type: "text_op", rev: this.doc.rev, file: known, op: [], oid });
    });
  }

  _fileSynced(ack) {
    const { path, resolve } = this.fileSync;
    this.fileSync = null;
    // Told as the file_op everyone else got, so the document knows the file.
    this.doc.receive({ type: "file_op", rev: Math.max(ack.rev, this.doc.rev), file: path, action: "create", text: "" });
    this._fileChanged({ action: "create", file: path });
    resolve();
  }

  // ---- presence ------------------------------------------------------------------

  /**
   * Tells the others where the local participant's caret and view are,
   * unless they already know: the server and the other clients move a caret
   * with each edit by the same rule, so a caret one's own typing moved needs
   * no frame. The server does not echo presence; the local participant's
   * entry is updated here.
   * @param {{cursor: Cursor, viewport?: Viewport}} presence
   */
  setPresence({ cursor, viewport }) {
    if (!this.joined || this.reviewing) return;
    const key = JSON.stringify([cursor, viewport ?? null]);
    const seen = this.sentPresence;
    if (seen && JSON.stringify([seen.cursor, seen.viewport ?? null]) === key) return;
    this.sentPresence = { cursor: { ...cursor }, viewport };
    const frame = { type: "presence", cursor };
    if (viewport) frame.viewport = viewport;
    this.connection.send(frame);
    this._ownPresence({ cursors: [cursor], ...(viewport ? { viewport } : {}) });
  }

  /**
   * Says whether the local participant is looking (`active`) or not (`away`).
   * @param {"active" | "away"} status
   */
  setStatus(status) {
    if (!this.joined || this.reviewing) return;
    this.connection.send({ type: "presence", status });
    this._ownPresence({ status });
  }

  _ownPresence(change) {
    const me = this.participants.get(this.me);
    if (!me) return;
    me.presence = { ...(me.presence || OFFLINE_PRESENCE), status: "active", ...change };
    this._emit("presence", me.id);
  }

  // ---- chat ----------------------------------------------------------------------

  /**
   * Loads the newest messages, or (`older`) the page before those loaded.
   * @param {boolean} older
   */
  async loadChat(older) {
    const frame = { type: "chat_history", limit: 200 };
    if (older) {
      const oldest = Math.min(...this.messages.keys());
      if (Number.isFinite(oldest)) frame.before = oldest;
    }
    try {
      const page = await this.request(frame);
      // The page shows each message as of now; events before it are older.
      for (const m of page.messages) this.messages.set(m.id, m);
      this.hasOlderChat = page.has_more;
      this._emit("chat");
    } catch {
      // Offline: the next join loads it again.
    }
  }

  /**
   * Posts a message: a reply in a thread (`replyTo`), a comment on a line
   * of code (`anchor`), or neither. Offline, a plain send waits for the
   * reconnect and resolves to `"queued"`.
   * @param {string} text
   * @param {{replyTo?: number, anchor?: {file: string, line: number}, mentions?: number[]}} [options]
   * @returns {Promise<"sent" | "queued">}
   */
  async sendMessage(text, { replyTo, anchor, mentions } = {}) {
    const frame = { type: "chat_send", text };
    if (replyTo != null) frame.reply_to = replyTo;
    if (anchor) frame.anchor = { file: anchor.file, line: anchor.line };
    if (mentions) frame.mentions = mentions;
    if (!this.joined) {
      this.pendingChat.push(frame);
      return "queued";
    }
    await this.request(frame);
    return "sent";
  }

  /** Changes the text of one's own message. */
  editMessage(message, text) {
    return this.request({ type: "chat_edit", message, text });
  }

  /** Deletes a message (one's own; a host's any). */
  deleteMessage(message) {
    return this.request({ type: "chat_delete", message });
  }

  /** Adds the local participant's `emoji` reaction to a message, or takes it back. */
  react(message, emoji) {
    return this.request({ type: "react", message, emoji });
  }

  /** The messages of a thread: the root and its replies, oldest first. */
  thread(root) {
    return [...this.messages.values()].filter((m) => m.id === root || m.reply_to === root).sort((a, b) => a.id - b.id);
  }

  /** The comments on lines of `file`, oldest first. */
  comments(file) {
    return [...this.messages.values()].filter((m) => !m.deleted && m.anchor?.file === file).sort((a, b) => a.id - b.id);
  }

  // ---- roles and the session -----------------------------------------------------

  /** The local participant's role, once joined. @returns {Role | undefined} */
  get role() {
    return this.participants.get(this.me)?.role;
  }

  /** A host gives `participant` another role. */
  setRole(participant, role) {
    return this.request({ type: "set_role", participant, role });
  }

  /** A host removes `participant`; `banAddress` keeps newcomers from their address out too. */
  kick(participant, { banAddress = false } = {}) {
    return this.request({ type: "kick", participant, ban_address: banAddress });
  }

  /**
   * A host changes the session's title, language or status.
   * @param {{title?: string, language?: string, status?: string}} fields
   */
  updateSession(fields) {
    return this.request({ type: "update_session", ...fields });
  }

  /**
   * A host ends the session for everyone; resolves once it has ended (this
   * client then reports `closed` with `session_ended`), rejects with the
   * server's refusal (`forbidden` for a non-host).
   */
  endSession() {
    if (!this.joined) return Promise.reject(new RequestError("offline", "You are offline."));
    return new Promise((resolve, reject) => {
      const stop = this.on("closed", (reason) => {
        stop();
        if (reason === "session_ended") resolve();
        else reject(new RequestError(reason, `the client stopped: ${reason}`));
      });
      // Ending is answered by the session_ended event and a goodbye, not an
      // ack: the request only ever settles with a refusal (or the close).
      this.connection.request({ type: "end_session" }).catch((e) => {
        if (e.code === "offline") return;
        stop();
        reject(e);
      });
    });
  }

  // ---- the record -----------------------------------------------------------------

  /**
   * A page of the document's history: the versions after revision `after`
   * (`{versions, has_more}`), at most `limit` of them (the server's page
   * when not given).
   * @param {{after?: number, limit?: number}} [page]
   */
  history({ after = 0, limit } = {}) {
    return this.request({ type: "history", after, ...(limit === undefined ? {} : { limit }) });
  }

  /**
   * The text of `file` as it was at revision `rev` (`{file, rev, text}`).
   * @param {string} file
   * @param {number} rev
   */
  textAt(file, rev) {
    return this.request({ type: "text_at", file, rev });
  }

  /**
   * A page of the session's events after sequence number `since`
   * (`{events, has_more}`), at most `limit` (the server's page when not
   * given).
   * @param {number} since
   * @param {number} [limit]
   */
  eventsSince(since, limit) {
    return this.request({ type: "events_since", since, ...(limit === undefined ? {} : { limit }) });
  }

  /**
   * The whole session as one document (hosts only): every edit with its
   * author and time, every event, the files at the start and the end
   * (`GET /api/v1/sessions/{id}/export`; its layout is
   * `collab-wire/export.schema.json`). Needs the client's `sessionUrl`.
   * Rejects with a `RequestError` carrying the server's code.
   * @returns {Promise<object>}
   */
  async exportSession() {
    if (!this.sessionUrl) throw new RequestError("invalid_input", "the client was made without a sessionUrl");
    const res = await fetch(`${this.sessionUrl}/export`, { headers: { Authorization: `Bearer ${this.token}` } });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new RequestError(body?.error?.code ?? "internal", body?.error?.message ?? `the server answered ${res.status}`);
    return body;
  }

  /**
   * Shares the output of a run with everyone (it comes back to all as a
   * `run_finished` event).
   * @param {{stdout: string, stderr: string, exit_code?: number}} output
   */
  shareRun(output) {
    return this.request({ type: "run_output", ...output });
  }
}

/** The 1-based line of UTF-16 offset `offset` in `text`. */
function lineOf(text, offset) {
  let line = 1;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) line++;
  return line;
}
