// One WebSocket to a collab session: JSON frames, request ids, a client-side
// rate limit and a heartbeat. Reconnecting is the room's job; a Socket lives
// for one connection only.

// The server allows 60 frames a second with bursts of 120 and answers more
// with `rate_limited` (and no rid, so a refused text_op would be lost). Staying
// well below that here means the server never has to refuse us.
const RATE = 40;
const BURST = 80;
// Browsers answer the server's pings by themselves, but a page cannot see
// pings, so a dead network is only noticed by asking: no heartbeat_ack within
// HEARTBEAT_TIMEOUT means the connection is gone.
const HEARTBEAT_EVERY = 15000;
const HEARTBEAT_TIMEOUT = 10000;

/** The frame types that answer a request, matched to it by `rid`. */
const ANSWERS = new Set(["ack", "error", "chat_history", "events", "versions", "text_at", "viewers", "heartbeat_ack", "welcome"]);

/** A request the server refused (`code` is the protocol's error code), or one that got no answer. */
export class RequestError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export class Socket {
  /**
   * @param {string} url ws:// or wss:// URL of the session.
   * @param {string[]} protocols WebSocket subprotocols (collab.v1 and the bearer token).
   * @param {{onOpen: () => void, onFrame: (frame: object) => void, onClose: (info: {code: number, reason: string}) => void}} handlers
   */
  constructor(url, protocols, handlers) {
    this.handlers = handlers;
    this.nextRid = 1;
    this.pending = new Map();
    this.queue = [];
    this.tokens = BURST;
    this.refilled = performance.now();
    this.pumpTimer = null;
    this.heartbeatTimer = null;
    this.done = false;
    const ws = new WebSocket(url, protocols);
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
    ws.onerror = () => {}; // A close event always follows.
    ws.onclose = (ev) => this._finish({ code: ev.code, reason: ev.reason });
  }

  /** Whether frames can be sent now. */
  get open() {
    return !this.done && this.ws.readyState === WebSocket.OPEN;
  }

  /** Queues a frame; false if the socket is not open (the frame is dropped). */
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
   * onClose runs now rather than when the browser finishes closing (which,
   * with the network gone, may take a long time).
   */
  abandon(reason = "abandoned") {
    if (this.done) return;
    try {
      this.ws.close(1000, reason);
    } catch {
      // Closing a socket that never opened can throw in old browsers.
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
    const now = performance.now();
    this.tokens = Math.min(BURST, this.tokens + ((now - this.refilled) / 1000) * RATE);
    this.refilled = now;
    while (this.queue.length > 0 && this.tokens >= 1 && this.open) {
      this.ws.send(JSON.stringify(this.queue.shift()));
      this.tokens -= 1;
    }
    if (this.queue.length > 0 && this.pumpTimer === null && !this.done) {
      this.pumpTimer = setTimeout(() => {
        this.pumpTimer = null;
        this._pump();
      }, Math.ceil(((1 - this.tokens) / RATE) * 1000));
    }
  }

  _heartbeat() {
    this.request({ type: "heartbeat" }, HEARTBEAT_TIMEOUT).catch((e) => {
      if (e.code === "timeout") this.abandon("heartbeat timeout");
    });
  }
}
