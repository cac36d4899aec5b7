// collab-connection: one WebSocket to a collab session, for browsers and
// Node.js (20+, with a WebSocket). JSON frames, request ids matched to their
// answers, a client-side rate limit under the server's, and a heartbeat that
// notices a dead network. It knows nothing of the session's state:
// `CollabClient` (collab-client.mjs) opens one per connection attempt and
// keeps the state.
//
//   import { Connection } from "/collab-connection.mjs";
//   const conn = new Connection(url, ["collab.v1", `bearer.${token}`], {
//     onOpen: () => conn.send({ type: "join" }),
//     onFrame: (frame) => console.log(frame.type),
//     onClose: ({ code, reason }) => console.log("closed", code, reason),
//   });
//   const answer = await conn.request({ type: "events_since", since: 0 });

// The server allows 60 frames a second with bursts of 120 and answers more
// with `rate_limited` (and no rid, so a refused text_op would be lost).
// Staying well below that means the server never has to refuse.
const RATE = 40;
const BURST = 80;
// A page cannot see WebSocket pings, so a dead network is only noticed by
// asking: no heartbeat_ack within HEARTBEAT_TIMEOUT means it is gone.
const HEARTBEAT_EVERY = 15000;
const HEARTBEAT_TIMEOUT = 10000;
/** Frames that answer a request, matched to it by rid. */
const ANSWERS = new Set(["ack", "error", "chat_history", "events", "versions", "text_at", "viewers", "heartbeat_ack", "welcome"]);

const now = () => (typeof performance !== "undefined" ? performance.now() : Date.now());

/** A request the server refused (`code` is the protocol's error code), or one that got no answer (`timeout`, `offline`). */
export class RequestError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = "RequestError";
    this.code = code;
  }
}

/**
 * One WebSocket to a session: JSON frames, request ids, a client-side rate
 * limit and a heartbeat. It lives for one connection; `CollabClient`
 * reconnects by opening another.
 */
export class Connection {
  /**
   * @param {string} url ws:// or wss:// URL of the session.
   * @param {string[]} protocols WebSocket subprotocols (collab.v1 and the bearer token).
   * @param {{onOpen: () => void, onFrame: (frame: any) => void, onClose: (info: {code: number, reason: string}) => void}} handlers
   * @param {typeof WebSocket} [WebSocketImpl] the WebSocket class (the global one by default).
   */
  constructor(url, protocols, handlers, WebSocketImpl = globalThis.WebSocket) {
    if (typeof WebSocketImpl !== "function") throw new Error("no WebSocket: pass one as the WebSocket option");
    this.handlers = handlers;
    this.nextRid = 1;
    this.pending = new Map();
    this.queue = [];
    this.tokens = BURST;
    this.refilled = now();
    this.pumpTimer = null;
    this.heartbeatTimer = null;
    this.done = false;
    this.OPEN = WebSocketImpl.OPEN ?? 1;
    const ws = new WebSocketImpl(url, protocols);
    this.ws = ws;
    ws.onopen = () => {
      if (this.done) return;
      this.heartbeatTimer = setInterval(() => this._heartbeat(), HEARTBEAT_EVERY);
      handlers.onOpen();
    };
    ws.onmessage = (ev) => {
      if (this.done || typeof ev.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame === null || typeof frame !== "object") return;
      this._dispatch(frame);
    };
    // Browsers follow an error with a close event; some WebSocket
    // implementations (Node's, for a refused handshake) do not. The first
    // of the two ends the connection.
    ws.onerror = () => this._finish({ code: 1006, reason: "connection failed" });
    ws.onclose = (ev) => this._finish({ code: ev.code, reason: ev.reason });
  }

  /** Whether frames can be sent now. */
  get open() {
    return !this.done && this.ws.readyState === this.OPEN;
  }

  /** Queues a frame; false if the connection is not open (the frame is dropped). */
  send(frame) {
    if (!this.open) return false;
    // Presence carries complete state, so a newer one replaces a queued one.
    if (frame.type === "presence" && frame.rid == null) {
      const queued = this.queue.find((f) => f.type === "presence" && f.rid == null);
      if (queued) {
        Object.assign(queued, frame);
        return true;
      }
    }
    this.queue.push(frame);
    if (this.pumpTimer === null) this._pump();
    return true;
  }

  /** Gives a frame a new rid (returned) and sends it. */
  sendWithRid(frame) {
    const rid = this.nextRid++;
    this.send({ ...frame, rid });
    return rid;
  }

  /**
   * Sends a request and resolves with the frame that answers it (matched by
   * rid), or rejects with a RequestError: the server's error, `timeout`, or
   * `offline` when the connection closes first.
   */
  request(frame, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      if (!this.open) {
        reject(new RequestError("offline", "not connected"));
        return;
      }
      const rid = this.nextRid++;
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new RequestError("timeout", `no answer to ${frame.type}`));
      }, timeoutMs);
      this.pending.set(rid, { resolve, reject, timer });
      this.send({ ...frame, rid });
    });
  }

  /**
   * Gives up on this connection at once: no more frames are delivered, and
   * onClose runs now rather than when the close handshake ends (which, with
   * the network gone, may take long).
   */
  abandon(reason = "abandoned") {
    if (this.done) return;
    try {
      this.ws.close(1000, reason);
    } catch {
      // Closing a socket that never opened can throw.
    }
    this._finish({ code: 0, reason });
  }

  _finish(info) {
    if (this.done) return;
    this.done = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.pumpTimer);
    this.queue = [];
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new RequestError("offline", "connection closed"));
    }
    this.pending.clear();
    this.handlers.onClose(info);
  }

  _dispatch(frame) {
    if (frame.rid != null && ANSWERS.has(frame.type)) {
      const waiter = this.pending.get(frame.rid);
      if (waiter) {
        this.pending.delete(frame.rid);
        clearTimeout(waiter.timer);
        if (frame.type === "error") waiter.reject(new RequestError(frame.code, frame.message));
        else waiter.resolve(frame);
      }
    }
    this.handlers.onFrame(frame);
  }

  _pump() {
    const t = now();
    this.tokens = Math.min(BURST, this.tokens + ((t - this.refilled) / 1000) * RATE);
    this.refilled = t;
    while (this.queue.length > 0 && this.tokens >= 1 && this.open) {
      this.ws.send(JSON.stringify(this.queue.shift()));
      this.tokens -= 1;
    }
    if (this.queue.length > 0 && this.pumpTimer === null && !this.done) {
      this.pumpTimer = setTimeout(
        () => {
          this.pumpTimer = null;
          this._pump();
        },
        Math.ceil(((1 - this.tokens) / RATE) * 1000),
      );
    }
  }

  _heartbeat() {
    this.request({ type: "heartbeat" }, HEARTBEAT_TIMEOUT).catch((e) => {
      if (e.code === "timeout") this.abandon("heartbeat timeout");
    });
  }
}
