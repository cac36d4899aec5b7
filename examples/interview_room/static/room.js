// One interview room: the connection to the session (with reconnects), the
// shared document, presence, chat, roles, runs and history, and the views
// that draw them.

import { DocumentClient } from "/collab-ot.mjs";
import { ChatView } from "./chat.js";
import { byTestId, clock, h, lineOf, noReentry, safeColour, throttle } from "./dom.js";
import { CodeEditor } from "./editor.js";
import { HistoryView } from "./history.js";
import { LANGUAGES, RUNNABLE, languageLabel } from "./languages.js";
import { PresenceView } from "./presence.js";
import { RequestError, Socket } from "./socket.js";

// Reconnect delays grow from RETRY_BASE to RETRY_MAX (PROTOCOL.md suggests
// 0.5 s doubling to 30 s), each drawn at random from its upper half so that a
// room full of clients cut off together does not come back in one wave.
const RETRY_BASE = 500;
const RETRY_MAX = 30000;
// Close codes after which the server will not take the participant back.
/** After this long without an acknowledgement of local edits, the indicator says so. */
const UNSAVED_AFTER_MS = 3000;

const FINAL_CLOSE = { 4000: "left", 4001: "kicked", 4002: "session_ended" };
// Run output is shared in one text frame of at most 64 KiB.
const MAX_OUTPUT_BYTES = 24000;

// How long a remote cursor's name tag stays bright after it moved.
const CURSOR_LABEL_MS = 4000;

const OFFLINE_PRESENCE = { status: "offline", cursors: [], typing: false, last_active: 0 };

/** Whether a goodbye reason or close means the client must not reconnect. */
const isFinal = (reason) => reason === "left" || reason === "kicked" || reason === "session_ended";

function truncateUtf8(text, maxBytes) {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= maxBytes) return text;
  return new TextDecoder().decode(bytes.slice(0, maxBytes)).replace(/\uFFFD$/, "") + "\n… (output truncated)";
}

export class Room {
  /**
   * @param {{sessionId: string, token: string, name: string, onNameRefused: (message: string) => void}} options
   */
  constructor({ sessionId, token, name, onNameRefused }) {
    this.sessionId = sessionId;
    this.token = token;
    this.name = name;
    this.onNameRefused = onNameRefused;
    /** The languages the server runs, once it said (null until then). */
    this.runnable = null;
    RUNNABLE.then((runnable) => {
      this.runnable = runnable;
      if (this.session) this._render();
    });

    this.socket = null;
    this.joined = false;
    this.everJoined = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.retryAt = 0;
    this.finished = null;

    this.me = null;
    this.session = null;
    this.participants = new Map();
    this.messages = new Map();
    this.hasOlderChat = false;
    this.lastSeq = 0;
    this.catchUp = null;
    this.doc = null;
    this.files = [];
    this.file = "main";
    this.awaitingCatchup = false;
    this.textOpRids = new Map();
    this.fileSync = null;
    this.pendingChat = [];
    this.composer = { mode: null };
    this.renderQueued = false;
    this.dirty = new Set();
    // When each participant's cursor last moved (from their presence frames).
    this.cursorMoved = new Map();
    this.stillTimer = null;

    // Redraws replace children, and removing a focused child fires blur
    // handlers that may ask for a redraw again: never inside the first.
    this._renderNow = noReentry(this._renderNow);
    this._renderTabs = noReentry(this._renderTabs);
    this._buildViews();
    // Says so when edits wait for the server's acknowledgement too long.
    this.unsavedTimer = setInterval(() => {
      if (this.doc && this.doc.hasPending) this._setConnection();
      else if (this.el.conn.dataset.state === "unsaved") this._setConnection();
    }, 1000);
  }

  // ---- views -------------------------------------------------------------------

  _buildViews() {
    const $ = (id) => byTestId(id);
    this.el = {
      title: $("session-title"),
      status: $("session-status"),
      statusSelect: $("session-status-select"),
      share: $("share-link"),
      conn: $("connection-status"),
      endButton: $("end-session"),
      tabs: $("file-tabs"),
      newFile: $("new-file"),
      readOnly: $("read-only-badge"),
      language: $("language-select"),
      run: $("run-button"),
      reviewBanner: $("review-banner"),
      runNote: $("run-note"),
      typing: $("typing-indicator"),
      caret: $("caret-position"),
      myRole: $("my-role"),
      runMeta: $("run-meta"),
      runOutput: $("run-output"),
      people: $("presence-bar"),
      online: $("online-count"),
      chat: $("chat-messages"),
      chatForm: $("chat-form"),
      chatInput: $("chat-input"),
      context: $("composer-context"),
      suggestions: $("mention-suggestions"),
      closed: $("closed-screen"),
    };
    const el = this.el;
    el.share.value = location.href;
    el.language.replaceChildren(...LANGUAGES.map(([value, label]) => h("option", { value }, label)));

    this.editor = new CodeEditor(document.getElementById("editor-host"), {
      onEdit: (op) => this._localEdit(op),
      onSelection: () => {
        this._showCaret();
        this._sendPresence();
      },
      onViewport: () => this._sendPresence(),
      onGutterClick: (line) => this._startComment(line),
      onRun: () => this.run(),
    });
    this.presence = new PresenceView(el.people, {
      setRole: (id, role) => this._act({ type: "set_role", participant: id, role }, () => this._render()),
      // Removing someone also keeps newcomers from their address out, so they
      // cannot come back under a fresh guest identity.
      kick: (id) => this._act({ type: "kick", participant: id, ban_address: true }),
    });
    this.chat = new ChatView(el.chat, {
      reply: (m) => this._setComposer({ mode: "reply", message: m.id }),
      edit: (m) => {
        this._setComposer({ mode: "edit", message: m.id });
        el.chatInput.value = m.text;
      },
      remove: (m) => this._act({ type: "chat_delete", message: m.id }),
      react: (m, emoji) => this._act({ type: "react", message: m.id, emoji }),
      jump: (anchor) => this.jumpTo(anchor),
      loadOlder: () => this._loadChat(true),
    });
    this.history = new HistoryView({
      request: (frame) => this._request(frame),
      nameOf: (id) => this.participants.get(id)?.name ?? `#${id}`,
      colourOf: (id) => this.participants.get(id)?.colour ?? null,
      files: () => this.files,
      currentFile: () => this.file,
      createdAt: () => this.session?.created_at,
    });

    byTestId("copy-link").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(el.share.value);
        this.toast("Link copied. Anyone with it can join.");
      } catch {
        el.share.select();
        this.toast("Select the link and copy it.");
      }
    });
    byTestId("history-button").addEventListener("click", () => {
      if (!this.joined) return this.toast("The history needs a connection.");
      this.history.open();
    });
    byTestId("leave-session").addEventListener("click", () => this.leave());
    el.endButton.addEventListener("click", () => this._endClicked());
    el.statusSelect.addEventListener("change", () => {
      this._act({ type: "update_session", status: el.statusSelect.value }, null, () => this._render());
    });
    el.language.addEventListener("change", () => {
      const language = el.language.value;
      this._act({ type: "update_session", language }, null, () => this._render());
    });
    el.run.addEventListener("click", () => this.run());
    el.newFile.addEventListener("click", () => this._newFileClicked());
    byTestId("comment-line-button").addEventListener("click", () => this._startComment(this.editor.caretPosition().line));
    byTestId("composer-cancel").addEventListener("click", () => this._setComposer({ mode: null }));
    el.chatForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this._sendChat();
    });
    el.chatInput.addEventListener("keydown", (e) => this._composerKey(e));
    el.chatInput.addEventListener("input", () => this._suggestMentions());
    byTestId("closed-rejoin").addEventListener("click", () => this._rejoin());

    window.addEventListener("offline", () => {
      // The browser knows the network is gone: stop waiting for a socket that
      // cannot deliver, keep editing locally, and come back on "online".
      if (this.socket) this.socket.abandon("offline");
      else this._setConnection();
    });
    window.addEventListener("online", () => {
      if (!this.finished && !this.socket) {
        this.attempt = 0;
        this.connect();
      }
    });
    document.addEventListener("visibilitychange", () => {
      if (!this.joined || this.reviewing) return;
      const status = document.hidden ? "away" : "active";
      this.socket.send({ type: "presence", status });
      this._ownPresence({ status });
    });
    this._sendPresence = throttle(() => this._presenceNow(), 150);
  }

  /**
   * Redraws the given parts ("header", "presence", "chat", "cursors",
   * "comments"; everything without arguments) once the current task is done,
   * so that a burst of frames costs one redraw.
   */
  _render(...parts) {
    for (const part of parts.length > 0 ? parts : ["all"]) this.dirty.add(part);
    if (this.renderQueued) return;
    this.renderQueued = true;
    queueMicrotask(() => {
      this.renderQueued = false;
      const dirty = this.dirty;
      this.dirty = new Set();
      this._renderNow((part) => dirty.has("all") || dirty.has(part));
    });
  }

  _renderNow(needs) {
    if (needs("header")) this._renderHeader();
    if (needs("presence")) {
      const isHost = this.participants.get(this.me)?.role === "host";
      this.presence.render({ participants: this.participants, me: this.me, isHost });
      const online = [...this.participants.values()].filter((p) => p.present && p.presence?.status !== "offline").length;
      this.el.online.textContent = `${online} online`;
      this._renderTyping();
    }
    if (needs("chat")) {
      const isHost = this.participants.get(this.me)?.role === "host";
      this.chat.render({ messages: this.messages, participants: this.participants, me: this.me, isHost, hasOlder: this.hasOlderChat });
      this._renderComposerContext();
    }
    if (needs("cursors") || needs("presence")) this._renderRemoteCursors();
    if (needs("comments") || needs("chat")) this._renderCommentLines();
    this._showCaret();
  }

  _renderHeader() {
    const el = this.el;
    const s = this.session;
    const me = this.participants.get(this.me);
    const role = me?.role ?? "viewer";
    const isHost = role === "host";
    if (s) {
      el.title.textContent = s.title || "Untitled interview";
      document.title = `${s.title || "Interview"} · Interview room`;
      el.status.textContent = s.status;
      el.status.dataset.status = s.status;
      const pickStatus = isHost && s.status !== "ended";
      el.status.hidden = pickStatus;
      el.statusSelect.hidden = !pickStatus;
      if (pickStatus && document.activeElement !== el.statusSelect) el.statusSelect.value = s.status;
      const language = s.language || "plaintext";
      if (![...el.language.options].some((o) => o.value === language)) {
        el.language.append(h("option", { value: language }, languageLabel(language)));
      }
      if (document.activeElement !== el.language) el.language.value = language;
      this.editor.setLanguage(language);
    }
    el.language.disabled = !isHost;
    el.language.title = isHost ? "Language of the session" : "Only a host can change the language";
    el.endButton.hidden = !isHost;
    // Paused: the code is read-only for everyone but hosts, as the server enforces.
    const paused = s?.status === "paused" && role !== "host";
    const canEdit = role !== "viewer" && !paused && !this.reviewing;
    el.chatInput.disabled = Boolean(this.reviewing);
    byTestId("chat-send").disabled = Boolean(this.reviewing);
    el.chatInput.placeholder = this.reviewing ? "The session has ended: the chat is read-only." : "Message… (@name to mention, Enter to send)";
    this.editor.setReadOnly(!canEdit || !this.doc);
    el.readOnly.hidden = canEdit || !me;
    el.readOnly.textContent = this.reviewing ? "Ended" : paused && role !== "viewer" ? "Paused" : "View only";
    el.newFile.hidden = !canEdit;
    const language = s?.language || "plaintext";
    const runs = !this.runnable || this.runnable.size === 0 || this.runnable.has(language);
    el.run.disabled = !canEdit || this.running || !runs;
    el.run.title = !runs
      ? `${languageLabel(language)} does not run on this server`
      : canEdit
        ? "Run the code and share the output (Ctrl+Enter)"
        : "Viewers cannot run code";
    el.runNote.hidden = runs;
    el.runNote.textContent = runs ? "" : `${languageLabel(language)} does not run here`;
    el.myRole.textContent = me ? `You are ${role === "host" ? "a host" : `an ${role}`.replace("an viewer", "a viewer")}` : "";
    el.myRole.dataset.role = role;
    this._renderTabs();
  }

  _renderTabs() {
    const tabs = this.files.map((f) =>
      h(
        "button",
        {
          class: f === this.file ? "tab active" : "tab",
          role: "tab",
          "aria-selected": f === this.file ? "true" : "false",
          testid: "file-tab",
          dataset: { file: f },
          onclick: () => this.openFile(f),
        },
        f,
      ),
    );
    if (this.newFileInput) tabs.push(this.newFileInput);
    this.el.tabs.replaceChildren(...tabs);
  }

  _renderRemoteCursors() {
    const cursors = [];
    const now = Date.now();
    let nextChange = Infinity;
    for (const p of this.participants.values()) {
      if (p.id === this.me || !p.present || !p.presence || p.presence.status === "offline") continue;
      const movedAt = this.cursorMoved.get(p.id)?.at ?? 0;
      const still = !p.presence.typing && now - movedAt > CURSOR_LABEL_MS;
      if (!still) nextChange = Math.min(nextChange, movedAt + CURSOR_LABEL_MS - now);
      for (const c of p.presence.cursors || []) {
        if (c.file !== this.file) continue;
        cursors.push({ id: p.id, name: p.name, colour: p.colour, anchor: c.anchor, head: c.head, typing: p.presence.typing, still });
      }
    }
    this.editor.setRemoteCursors(cursors);
    clearTimeout(this.stillTimer);
    if (Number.isFinite(nextChange)) this.stillTimer = setTimeout(() => this._render("cursors"), Math.max(50, nextChange + 50));
  }

  _renderCommentLines() {
    const lines = new Map();
    const text = this.doc ? this.doc.text(this.file) : "";
    for (const m of this.messages.values()) {
      if (m.deleted || !m.anchor || m.anchor.file !== this.file) continue;
      const line = m.anchor.offset != null ? lineOf(text, m.anchor.offset) : m.anchor.line;
      lines.set(line, (lines.get(line) || 0) + 1);
    }
    this.editor.setCommentLines(lines);
  }

  _renderTyping() {
    const names = [...this.participants.values()]
      .filter((p) => p.id !== this.me && p.present && p.presence?.typing && p.presence.status !== "offline")
      .map((p) => p.name);
    const t = this.el.typing;
    t.textContent =
      names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
    t.hidden = names.length === 0;
  }

  _showCaret() {
    const { line, column } = this.editor.caretPosition();
    this.el.caret.textContent = `${this.file} · Ln ${line}, Col ${column}`;
  }

  _setConnection() {
    const c = this.el.conn;
    let state;
    let label;
    if (this.finished) [state, label] = ["closed", "Disconnected"];
    else if (this.joined && this.doc && this.doc.unacknowledgedFor() > UNSAVED_AFTER_MS) {
      // Connected, but the server has not confirmed recent edits for a while.
      [state, label] = ["unsaved", `Saving… ${Math.floor(this.doc.unacknowledgedFor() / 1000)}s`];
    } else if (this.joined) [state, label] = ["live", "Live"];
    else if (!navigator.onLine) [state, label] = ["offline", "Offline"];
    else if (!this.everJoined) [state, label] = ["connecting", "Connecting…"];
    else {
      state = "reconnecting";
      const seconds = Math.ceil((this.retryAt - Date.now()) / 1000);
      label = this.retryTimer !== null && seconds > 0 ? `Reconnecting in ${seconds}s…` : "Reconnecting…";
    }
    c.dataset.state = state;
    c.querySelector(".label").textContent = label;
    const pending = this.doc && this.doc.hasPending && !this.joined;
    c.title = pending ? "Your edits are kept and will be merged when the connection returns." : "";
    c.classList.toggle("has-pending", Boolean(pending));
  }

  /** A short message at the corner of the screen. */
  /**
   * Says who joined, gathering a burst of joins (a class arriving at once)
   * into one notice instead of a pile of them over the editor.
   */
  _announceJoin(name) {
    this.joinedBurst ??= [];
    this.joinedBurst.push(name);
    // Said once the joins pause for 600 ms, or 2 s after the first at most.
    this.joinedBurstStart ??= Date.now();
    clearTimeout(this.joinedBurstTimer);
    const wait = Math.max(0, Math.min(600, this.joinedBurstStart + 2000 - Date.now()));
    this.joinedBurstTimer = setTimeout(() => {
      this.joinedBurstStart = null;
      const names = this.joinedBurst;
      this.joinedBurst = [];
      this.joinedBurstTimer = null;
      const text =
        names.length === 1
          ? `${names[0]} joined`
          : names.length <= 3
            ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)} joined`
            : `${names.slice(0, 2).join(", ")} and ${names.length - 2} others joined`;
      this.toast(text);
    }, wait);
  }

  toast(text, kind = "info") {
    const host = byTestId("toasts");
    const t = h("div", { class: `toast ${kind}`, testid: "toast", role: "status" }, text);
    host.append(t);
    setTimeout(() => t.classList.add("gone"), 4500);
    setTimeout(() => t.remove(), 5000);
  }

  // ---- connection ----------------------------------------------------------------

  /** Opens a connection to the session (again). */
  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.finished || this.socket) return;
    if (!navigator.onLine) return this._setConnection();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/ws/session/${encodeURIComponent(this.sessionId)}`;
    // The token travels as a subprotocol rather than in the URL, where it
    // would end up in access logs (PROTOCOL.md, Authentication).
    const socket = new Socket(url, ["collab.v1", `bearer.${this.token}`], {
      onOpen: () => this._sendJoin(socket),
      onFrame: (frame) => {
        if (this.socket === socket) this._onFrame(frame);
      },
      onClose: (info) => this._onClose(socket, info),
    });
    this.socket = socket;
    this.welcomed = false;
    this._setConnection();
  }

  _sendJoin(socket) {
    const join = { type: "join", name: this.name, protocol: 1, mode: "thin" };
    // A client that kept its document asks only for what it missed; the
    // server then rebases the edits it made meanwhile (PROTOCOL.md,
    // Reconnecting a thin client).
    if (this.doc) join.rev = this.doc.rev;
    if (this.everJoined) join.since = this.lastSeq;
    this.joinRid = socket.sendWithRid(join);
    this.joinSince = join.since;
  }

  _onClose(socket, info) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.joined = false;
    this.textOpRids.clear();
    this.fileSync = null;
    const reason = this.goodbye || FINAL_CLOSE[info.code];
    this.goodbye = null;
    if (isFinal(reason)) return this._finish(reason);
    if (this.finished) return;
    if (!navigator.onLine) return this._setConnection();
    const neverWelcomed = !this.welcomed;
    this._scheduleReconnect();
    // A refused upgrade looks like any network error to a page; ask the HTTP
    // API whether the session is still there before trying again and again.
    if (neverWelcomed) this._probeSession();
  }

  _scheduleReconnect() {
    const ceiling = Math.min(RETRY_MAX, RETRY_BASE * 2 ** this.attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this.attempt = Math.min(this.attempt + 1, 16);
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this._setConnection();
    clearInterval(this.countdown);
    this.countdown = setInterval(() => {
      if (this.retryTimer === null) clearInterval(this.countdown);
      this._setConnection();
    }, 1000);
  }

  async _probeSession() {
    try {
      const res = await fetch(`/api/v1/sessions/${encodeURIComponent(this.sessionId)}`, {
        headers: { Authorization: `Bearer ${this.token}` },
      });
      if (res.status === 404) return this._finish("not_found");
      if (res.status === 410) return this._finish("session_ended");
      // Removed by a host (this identity, or newcomers from this address):
      // no amount of reconnecting gets back in.
      if (res.status === 403) return this._finish("kicked");
      if (res.ok) {
        const info = await res.json();
        if (info.status === "ended") this._finish("session_ended");
      }
    } catch {
      // Still offline: the reconnect loop goes on.
    }
  }

  /** Stops for good and says why. */
  _finish(reason) {
    this.finished = reason;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.socket) {
      const s = this.socket;
      this.socket = null;
      s.abandon(reason);
    }
    this.joined = false;
    // Without a connection nobody's presence is known any more.
    for (const p of this.participants.values()) p.presence = { ...(p.presence || OFFLINE_PRESENCE), status: "offline", typing: false };
    if (reason === "kicked") localStorage.setItem(`interview-room.kicked.${this.sessionId}`, "1");
    const text = {
      left: ["You left the session", "Your edits and messages stay in the session. You can come back with the same link."],
      kicked: ["You were removed from this session", "A host removed you; you cannot join it again."],
      session_ended: ["This interview has ended", "A host ended the session. Nobody can join it any more."],
      not_found: ["Session not found", "This link does not lead to a live session. It may have expired."],
    }[reason] || ["Disconnected", String(reason)];
    const box = this.el.closed;
    box.dataset.reason = reason;
    byTestId("closed-title").textContent = text[0];
    byTestId("closed-text").textContent = text[1];
    // Those who left come back; when the session ended, its members review it.
    byTestId("closed-rejoin").hidden = reason !== "left" && reason !== "session_ended";
    byTestId("closed-rejoin").textContent = reason === "session_ended" ? "Review the session" : "Join again";
    box.hidden = false;
    this.history.close();
    this._setConnection();
    this._render();
  }

  _rejoin() {
    this.el.closed.hidden = true;
    this.finished = null;
    this.attempt = 0;
    this.connect();
  }

  /** Leaves the session for good (the participant may come back later). */
  leave() {
    // Reviewing an ended session: nothing to leave, just go.
    if (this.reviewing) location.href = "/";
    else if (this.joined) this.socket.send({ type: "leave" });
    else this._finish("left");
  }

  _endClicked() {
    const b = this.el.endButton;
    if (b.dataset.confirm !== "1") {
      b.dataset.confirm = "1";
      b.textContent = "End for everyone?";
      setTimeout(() => {
        b.dataset.confirm = "";
        b.textContent = "End session";
      }, 4000);
      return;
    }
    b.dataset.confirm = "";
    b.textContent = "End session";
    if (!this.joined) return this.toast("You are offline.", "error");
    this.socket.send({ type: "end_session" });
  }

  // ---- frames ------------------------------------------------------------------

  _onFrame(f) {
    switch (f.type) {
      case "welcome":
        return this._onWelcome(f);
      case "error":
        return this._onError(f);
      case "event":
        if (this.catchUp) this.catchUp.deferred.push(f.event);
        else this._applyEvent(f.event, true);
        return this._render();
      case "events":
        // Without rid: the catch-up after a join with `since`.
        if (f.rid == null) return this._onCatchupEvents(f);
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
    clearInterval(this.countdown);
    this.me = w.you;
    this.session = w.session;
    // An ended session is reviewed: read-only, nothing sent but reads.
    this.reviewing = w.session.status === "ended";
    this.el.reviewBanner.hidden = !this.reviewing;
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
      if (!this.files.includes(this.file)) this.file = this.files.includes("main") ? "main" : this.files[0];
      this.editor.reset(this.file, this.doc.text(this.file));
      this.awaitingCatchup = false;
    }
    if (this.joinSince != null) {
      // Events up to last_seq come in an `events` frame next; live ones after them.
      this.catchUp = { upTo: w.last_seq, deferred: [] };
    } else this.lastSeq = w.last_seq;
    if (!resumed) {
      this.messages = new Map();
      this._loadChat(false);
      this._loadLastRun(w.last_seq);
    }
    if (!this.reviewing) for (const frame of this.pendingChat.splice(0)) this.socket.send(frame);
    // A new connection: the server has what this client last sent, or nothing.
    this.sentPresence = null;
    this._presenceNow();
    this._setConnection();
    this._render();
  }

  _onError(f) {
    if (f.rid != null && f.rid === this.joinRid) return this._onJoinError(f);
    if (f.rid != null && this.textOpRids.has(f.rid)) {
      const oid = this.textOpRids.get(f.rid);
      this.textOpRids.delete(f.rid);
      return this._onEditRefused(f, oid);
    }
    // A frame refused unread (too large) has no rid: the client splits its
    // edit smaller if it was the one in flight.
    if (f.rid == null && this.doc) this.doc.receive(f);
  }

  _onJoinError(f) {
    const socket = this.socket;
    if (f.code === "unknown_revision") {
      // The server does not know our revision: start again from its files.
      this.doc = null;
      this.toast("The document was reloaded from the server.", "error");
      return this._sendJoin(socket);
    }
    if (f.code === "invalid_input") {
      this._finish("name_refused");
      this.el.closed.hidden = true;
      return this.onNameRefused(f.message);
    }
    if (f.code === "session_full") this.toast("The session is full; trying again shortly.", "error");
    else this.toast(`Could not join: ${f.message}`, "error");
    socket.abandon(f.code);
  }

  _onEditRefused(f, oid) {
    // Retried (same oid), split smaller, or dropped (a file that is gone) by
    // the document client itself; only what it cannot recover reloads.
    const outcome = this.doc ? this.doc.refused(oid, f.code) : "ignored";
    if (outcome !== "resync" && outcome !== "ignored") return this._setConnection();
    if (outcome === "resync") return;
    if (f.code === "unknown_file") return;
    const why = f.code === "forbidden" ? "You can no longer edit the code." : `An edit was refused (${f.message}).`;
    this.toast(`${why} The document was reloaded.`, "error");
    this.resync();
  }

  /**
   * The server keeps refusing the edit in flight: reconnect, join with our
   * revision, and let the catch-up rebase what is pending; only if that
   * fails again, load the document afresh.
   */
  _editsStuck(code) {
    this.stuckResyncs = (this.stuckResyncs ?? 0) + 1;
    if (this.stuckResyncs > 2) {
      this.stuckResyncs = 0;
      this.toast(`Edits were refused (${code}); the document was reloaded.`, "error");
      return this.resync();
    }
    if (this.socket) this.socket.abandon("resync");
  }

  /**
   * Loads the document again from the server (dropping local edits that the
   * server refused), by joining afresh without `rev`.
   */
  resync() {
    this.doc = null;
    if (this.socket) this.socket.abandon("resync");
    this.attempt = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  _onCatchupEvents(f) {
    if (!this.catchUp) return;
    for (const e of f.events) this._applyEvent(e, false);
    if (f.has_more && f.events.length > 0) {
      this._request({ type: "events_since", since: f.events.at(-1).seq })
        .then((page) => this._onCatchupEvents({ ...page, rid: undefined }))
        .catch(() => {}); // The connection dropped; the next join catches up.
      return;
    }
    const { upTo, deferred } = this.catchUp;
    this.catchUp = null;
    this.lastSeq = Math.max(this.lastSeq, upTo);
    for (const e of deferred) this._applyEvent(e, true);
    this._render();
  }

  _onPresence(f) {
    const p = this.participants.get(f.participant);
    if (!p) return;
    const key = JSON.stringify(f.presence.cursors || []);
    if (this.cursorMoved.get(p.id)?.key !== key) this.cursorMoved.set(p.id, { key, at: Date.now() });
    p.presence = f.presence;
    this._render("presence");
  }

  _applyEvent(e, live) {
    if (e.seq <= this.lastSeq) return;
    this.lastSeq = e.seq;
    const p = e.participant != null && typeof e.participant !== "object" ? this.participants.get(e.participant) : null;
    switch (e.kind) {
      case "participant_joined": {
        const old = this.participants.get(e.participant.id);
        this.participants.set(e.participant.id, {
          presence: { ...OFFLINE_PRESENCE, cursors: [] },
          ...old,
          ...e.participant,
          present: true,
        });
        if (live && !old?.present) this._announceJoin(e.participant.name);
        break;
      }
      case "participant_renamed":
        if (p) p.name = e.name;
        break;
      case "participant_left":
        if (p) p.present = false;
        break;
      case "participant_kicked":
        if (p) p.present = false;
        if (live && p && e.participant !== this.me) this.toast(`${p.name} was removed from the session`);
        break;
      case "role_changed":
        if (p) p.role = e.role;
        if (live && e.participant === this.me) {
          this.toast(e.role === "viewer" ? "You are now a viewer: the code is read-only for you." : `You are now ${e.role === "host" ? "a host" : "an editor"}.`);
        }
        break;
      case "session_updated":
        if (this.session) {
          for (const key of ["title", "language", "status"]) if (e[key] !== undefined) this.session[key] = e[key];
        }
        break;
      case "message_posted":
      case "comment_posted":
        this.messages.set(e.message.id, e.message);
        if (live && e.message.author !== this.me && (e.message.mentions || []).includes(this.me)) {
          this.toast(`${this.participants.get(e.message.author)?.name ?? "Someone"} mentioned you`, "mention");
        }
        break;
      case "message_edited": {
        const m = this.messages.get(e.message);
        if (m) Object.assign(m, { text: e.text, mentions: e.mentions, edited_at: e.at });
        break;
      }
      case "message_deleted": {
        const m = this.messages.get(e.message);
        if (m) Object.assign(m, { deleted: true, text: "", mentions: [], reactions: {} });
        break;
      }
      case "reaction_toggled": {
        const m = this.messages.get(e.message);
        if (!m) break;
        const who = new Set(m.reactions?.[e.emoji] || []);
        if (e.added) who.add(e.participant);
        else who.delete(e.participant);
        m.reactions = { ...m.reactions, [e.emoji]: [...who].sort((a, b) => a - b) };
        if (who.size === 0) delete m.reactions[e.emoji];
        break;
      }
      case "run_finished":
        this._showRun(e.run);
        break;
      case "session_ended":
        if (this.session) this.session.status = "ended";
        break;
      default:
        break;
    }
  }

  /** A request on the current connection; rejects with `offline` when there is none. */
  _request(frame, timeoutMs) {
    if (!this.joined) return Promise.reject(new RequestError("offline", "You are offline."));
    return this.socket.request(frame, timeoutMs);
  }

  /** Sends a change and reports a refusal as a toast (then runs `onError`). */
  _act(frame, onDone, onError) {
    this._request(frame)
      .then(() => onDone?.())
      .catch((e) => {
        this.toast(e.code === "offline" ? "You are offline; try again when the connection is back." : e.message, "error");
        onError?.(e);
        this._render();
      });
  }

  // ---- the document --------------------------------------------------------------

  _sendTextOp(frame) {
    // Offline (or before the catch-up), the op stays in flight in the
    // DocumentClient, which sends it again after the reconnect.
    if (!this.joined || this.awaitingCatchup) return;
    const rid = this.socket.sendWithRid(frame);
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
      this.toast("The document went out of step and was reloaded.", "error");
      return this.resync();
    }
    for (const op of fileOps) this._fileChanged(op);
    if (f.type === "text_catchup") {
      this.awaitingCatchup = false;
      this.doc.reconnected();
    }
    if (fileOps.length > 0) this._render();
  }

  _fileChanged(op) {
    if (op.action === "remove") this.editor.forgetFile(op.file);
    if (op.action === "create" && !this.files.includes(op.file)) this.files = [...this.files, op.file].sort();
    if (op.action === "remove") {
      this.files = this.files.filter((f) => f !== op.file);
      for (const p of this.participants.values()) {
        if (p.presence?.cursors) p.presence.cursors = p.presence.cursors.filter((c) => c.file !== op.file);
      }
      if (op.file === this.file && this.files.length > 0) {
        this.toast(`${op.file} was removed`);
        this.openFile(this.files.includes("main") ? "main" : this.files[0]);
      }
    }
  }

  _remoteEdit(file, op) {
    this._moveMarks(file, op);
    // The editor keeps the local history out of it, so undo stays one's own.
    this.editor.applyRemote(file, op);
    this._render("cursors", "comments");
  }

  _localEdit(op) {
    if (!this.doc) return;
    try {
      this.doc.applyLocal(this.file, op);
    } catch (e) {
      console.error("local edit out of step", e);
      return this.resync();
    }
    this._moveMarks(this.file, op);
    this._setConnection();
    this._render("cursors", "comments");
  }

  /**
   * Moves other participants' cursors and the comment anchors with an edit,
   * as the server does (an insert at a position moves it after the insert),
   * since the server does not broadcast these moves.
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

  /** Shows another file of the document. */
  openFile(file) {
    if (!this.doc || !this.files.includes(file)) return;
    this.file = file;
    this.editor.showFile(file, this.doc.text(file));
    this._presenceNow();
    this._render();
  }

  /** Jumps to a comment's line (switching file if needed). */
  jumpTo(anchor) {
    if (anchor.file !== this.file) this.openFile(anchor.file);
    this.editor.jumpToLine(anchor.line);
  }

  _newFileClicked() {
    if (this.newFileInput) return this.newFileInput.focus();
    const input = h("input", {
      class: "new-file-input",
      testid: "new-file-name",
      placeholder: "file name",
      maxlength: "120",
      onkeydown: (e) => {
        if (e.key === "Escape") done();
        if (e.key === "Enter") {
          const name = input.value.trim();
          done();
          if (name) this._createFile(name);
        }
      },
      onblur: () => done(),
    });
    // Enter and then the blur of the removed input both end the edit: only
    // the first counts.
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      this.newFileInput = null;
      this._renderTabs();
    };
    this.newFileInput = input;
    this._renderTabs();
    input.focus();
  }

  async _createFile(path) {
    if (this.files.includes(path)) return this.openFile(path);
    try {
      await this._request({ type: "file_create", file: path, text: "" });
    } catch (e) {
      return this.toast(e.message, "error");
    }
    // The creator is not told the revision its file became. An empty edit is
    // answered with the current revision, at or after the creation, and by
    // then every other change before it has arrived (frames keep their order).
    const known = this.files.find((f) => f !== path) ?? this.file;
    const oid = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
    this.fileSync = { oid, path };
    this.socket.send({ type: "text_op", rev: this.doc.rev, file: known, op: [], oid });
  }

  _fileSynced(ack) {
    const { path } = this.fileSync;
    this.fileSync = null;
    // Told as the file_op everyone else got, so the DocumentClient knows the file.
    this.doc.receive({ type: "file_op", rev: Math.max(ack.rev, this.doc.rev), file: path, action: "create", text: "" });
    this._fileChanged({ action: "create", file: path });
    this.openFile(path);
    this.editor.focus();
  }

  // ---- presence ----------------------------------------------------------------

  /**
   * Sends this participant's caret and viewport, unless everyone already has
   * them: the server and the other clients move a caret with each edit by the
   * same rule, so a caret one's own typing moved needs no frame. The server
   * does not echo presence, so the own entry of the presence bar is kept here.
   */
  _presenceNow() {
    if (!this.joined || this.reviewing) return;
    const sel = this.editor.selection();
    const cursor = { file: this.file, anchor: sel.anchor, head: sel.head };
    const viewport = { file: this.file, ...this.editor.visibleLines() };
    const key = JSON.stringify([cursor, viewport]);
    const seen = this.sentPresence;
    if (seen && JSON.stringify([seen.cursor, seen.viewport]) === key) return;
    this.sentPresence = { cursor: { ...cursor }, viewport };
    this.socket.send({ type: "presence", cursor, viewport });
    this._ownPresence({ cursors: [cursor], viewport });
  }

  /** Shows a change of one's own presence, which the server does not echo. */
  _ownPresence(change) {
    const me = this.participants.get(this.me);
    if (!me) return;
    me.presence = { ...(me.presence || OFFLINE_PRESENCE), status: "active", ...change };
    this._render("presence");
  }

  // ---- chat --------------------------------------------------------------------

  async _loadChat(older) {
    const frame = { type: "chat_history", limit: 200 };
    if (older) {
      const oldest = Math.min(...this.messages.keys());
      if (Number.isFinite(oldest)) frame.before = oldest;
    }
    try {
      const page = await this._request(frame);
      // The page shows each message as of now; events before it are older.
      for (const m of page.messages) this.messages.set(m.id, m);
      this.hasOlderChat = page.has_more;
      this._render("chat");
    } catch {
      // Offline: the next join loads it again.
    }
  }

  async _loadLastRun(lastSeq) {
    try {
      const page = await this._request({ type: "events_since", since: Math.max(0, lastSeq - 500) });
      const run = page.events.filter((e) => e.kind === "run_finished").at(-1);
      if (run && !this.lastRun) this._showRun(run.run);
    } catch {
      // Not important enough to retry.
    }
  }

  _setComposer(composer) {
    this.composer = composer;
    this._renderComposerContext();
    if (composer.mode === null && this.el.chatInput.dataset.editing) this.el.chatInput.value = "";
    this.el.chatInput.dataset.editing = composer.mode === "edit" ? "1" : "";
    if (composer.mode) this.el.chatInput.focus();
  }

  _renderComposerContext() {
    const c = this.composer;
    const box = this.el.context;
    if (!c.mode) {
      box.hidden = true;
      return;
    }
    const m = c.message != null ? this.messages.get(c.message) : null;
    const author = m ? this.participants.get(m.author)?.name ?? "someone" : "";
    const text =
      c.mode === "comment"
        ? `Comment on ${c.anchor.file}:${c.anchor.line}`
        : c.mode === "reply"
          ? `Replying to ${author}${m && !m.deleted ? `: ${m.text.slice(0, 60)}` : ""}`
          : "Editing your message";
    box.querySelector(".ctx-text").textContent = text;
    box.dataset.mode = c.mode;
    box.hidden = false;
  }

  _startComment(line) {
    this._setComposer({ mode: "comment", anchor: { file: this.file, line } });
  }

  _sendChat() {
    const input = this.el.chatInput;
    const text = input.value.trim();
    if (!text) return;
    const c = this.composer;
    let frame;
    if (c.mode === "edit") frame = { type: "chat_edit", message: c.message, text };
    else {
      frame = { type: "chat_send", text };
      if (c.mode === "reply") frame.reply_to = c.message;
      if (c.mode === "comment") frame.anchor = { file: c.anchor.file, line: c.anchor.line };
    }
    input.value = "";
    this._setComposer({ mode: null });
    this._hideSuggestions();
    if (!this.joined) {
      if (frame.type !== "chat_send") {
        input.value = text;
        return this.toast("You are offline; try again when the connection is back.", "error");
      }
      this.pendingChat.push(frame);
      return this.toast("You are offline: the message will be sent when the connection is back.");
    }
    this._act(frame, null, () => {
      if (!input.value) input.value = text;
    });
  }

  _composerKey(e) {
    const list = this.el.suggestions;
    if (!list.hidden && (e.key === "Tab" || (e.key === "Enter" && !e.shiftKey))) {
      const first = list.querySelector("button");
      if (first) {
        e.preventDefault();
        first.click();
        return;
      }
    }
    if (e.key === "Escape") {
      this._hideSuggestions();
      this._setComposer({ mode: null });
    } else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this._sendChat();
    }
  }

  /** Offers participants' names while an @word is being typed. */
  _suggestMentions() {
    const input = this.el.chatInput;
    const before = input.value.slice(0, input.selectionStart);
    const match = /(^|[^\p{L}\p{N}])@([\p{L}\p{N} ._-]{0,30})$/u.exec(before);
    if (!match) return this._hideSuggestions();
    const typed = match[2].toLowerCase();
    const names = [...this.participants.values()]
      .filter((p) => p.present && p.id !== this.me && p.name.toLowerCase().startsWith(typed))
      .slice(0, 6);
    // A name typed out in full needs no offer (and Enter should send).
    const complete = names.length === 1 && names[0].name.toLowerCase() === typed;
    if (names.length === 0 || complete) return this._hideSuggestions();
    const start = before.length - match[2].length;
    this.el.suggestions.replaceChildren(
      ...names.map((p) =>
        h(
          "button",
          {
            type: "button",
            class: "suggestion",
            testid: "mention-suggestion",
            onmousedown: (e) => e.preventDefault(),
            onclick: () => {
              input.value = `${input.value.slice(0, start)}${p.name} ${input.value.slice(input.selectionStart)}`;
              const at = start + p.name.length + 1;
              input.setSelectionRange(at, at);
              input.focus();
              this._hideSuggestions();
            },
          },
          h("span", { class: "dot", style: { "--c": safeColour(p.colour) } }),
          p.name,
        ),
      ),
    );
    this.el.suggestions.hidden = false;
  }

  _hideSuggestions() {
    this.el.suggestions.hidden = true;
  }

  // ---- running code ------------------------------------------------------------

  /** Runs the current file on the server and shares the output with everyone. */
  async run() {
    const role = this.participants.get(this.me)?.role;
    if (this.running || !this.doc || role === "viewer") return;
    this.running = true;
    this._render();
    this.el.runMeta.textContent = "Running…";
    const language = this.session?.language || "plaintext";
    try {
      let res;
      try {
        res = await fetch("/api/v1/run", {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${this.token}` },
          body: JSON.stringify({ session: this.sessionId, language, code: this.doc.text(this.file) }),
        });
      } catch {
        return this._runProblem("Could not reach the server to run the code.");
      }
      if (res.status === 404 || res.status === 501) {
        this.el.runOutput.replaceChildren(
          h("p", { class: "run-disabled", testid: "run-disabled" }, "running code is turned off on this server"),
        );
        this.el.runMeta.textContent = "";
        return;
      }
      const body = await res.json().catch(() => null);
      if (!res.ok || !body || typeof body !== "object" || body.error) {
        const message = body?.error?.message ?? (typeof body?.error === "string" ? body.error : `HTTP ${res.status}`);
        return this._runProblem(`The run failed: ${message}`);
      }
      const frame = {
        type: "run_output",
        stdout: truncateUtf8(String(body.stdout ?? ""), MAX_OUTPUT_BYTES),
        stderr: truncateUtf8(String(body.stderr ?? ""), MAX_OUTPUT_BYTES),
      };
      if (Number.isInteger(body.exit_code)) frame.exit_code = body.exit_code;
      try {
        // Everyone, this page included, shows it from the run_finished event.
        await this._request(frame);
      } catch (e) {
        this._showRun({ ...frame, by: this.me, at: Date.now() });
        this.toast(`The output could not be shared: ${e.message}`, "error");
      }
    } finally {
      this.running = false;
      if (this.el.runMeta.textContent === "Running…") this.el.runMeta.textContent = "";
      this._render();
    }
  }

  _runProblem(text) {
    this.el.runOutput.replaceChildren(h("p", { class: "run-error", testid: "run-error" }, text));
    this.el.runMeta.textContent = "";
  }

  _showRun(run) {
    this.lastRun = run;
    const who = this.participants.get(run.by)?.name ?? "someone";
    const exit = run.exit_code === undefined ? "stopped" : `exit code ${run.exit_code}`;
    this.el.runMeta.textContent = `Run by ${who} at ${clock(run.at)} · ${exit}`;
    // A run without an exit code was stopped (a time or memory limit).
    const outcome = run.exit_code === 0 ? "ok" : run.exit_code == null ? "stopped" : "failed";
    this.el.runOutput.replaceChildren(
      h(
        "div",
        { class: `run-result ${outcome}`, testid: "run-result", dataset: { exitCode: String(run.exit_code ?? "") } },
        run.stdout && h("pre", { class: "stdout", testid: "run-stdout" }, run.stdout),
        run.stderr && h("pre", { class: "stderr", testid: "run-stderr" }, run.stderr),
        !run.stdout && !run.stderr && h("p", { class: "muted" }, "(no output)"),
      ),
    );
  }
}

