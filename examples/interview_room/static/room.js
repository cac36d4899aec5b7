// One interview room: the views of a session (the editor, presence, chat,
// runs, history) drawn from the state of the client library
// (collab-client.mjs), which holds the connection, reconnects and speaks
// the protocol.

import { CollabClient } from "/collab-client.mjs";
import { remoteCursorsFor } from "/collab-codemirror.mjs";
import { ChatView } from "./chat.js";
import { Composer } from "./composer.js";
import { byTestId, clockDay, fingerprint, h, lineOf, noReentry, throttle } from "./dom.js";
import { CodeEditor } from "./editor.js";
import { renderConnection, renderHeader } from "./header.js";
import { HistoryView } from "./history.js";
import { LANGUAGES, RUNNABLE } from "./languages.js";
import { Notices } from "./notices.js";
import { PresenceView } from "./presence.js";
import { RunPanel } from "./run.js";

// How long a remote cursor's name tag stays bright after it moved.
const CURSOR_LABEL_MS = 4000;

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

    // The connection, the session's state and the protocol are the client
    // library's (collab-client.mjs); the room draws them.
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const id = encodeURIComponent(sessionId);
    this.client = new CollabClient({
      // The token travels as a subprotocol rather than in the URL, where it
      // would end up in access logs (PROTOCOL.md, Authentication).
      url: `${scheme}://${location.host}/ws/session/${id}`,
      token,
      name,
      sessionUrl: `/api/v1/sessions/${id}`,
    });
    /** The file on screen. */
    this.file = "main";
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
    this._listen();
    // Says so when edits wait for the server's acknowledgement too long.
    this.unsavedTimer = setInterval(() => {
      if (this.doc && this.doc.hasPending) this._setConnection();
      else if (this.el.conn.dataset.state === "unsaved") this._setConnection();
    }, 1000);
  }

  // The session's state, as the client keeps it.
  get me() {
    return this.client.me;
  }
  get session() {
    return this.client.session;
  }
  get participants() {
    return this.client.participants;
  }
  get messages() {
    return this.client.messages;
  }
  get hasOlderChat() {
    return this.client.hasOlderChat;
  }
  get doc() {
    return this.client.doc;
  }
  get files() {
    return this.client.files;
  }
  get joined() {
    return this.client.joined;
  }
  get finished() {
    return this.client.finished;
  }
  /** An ended session, opened to review it. */
  get reviewing() {
    return this.client.reviewing;
  }

  // ---- views -------------------------------------------------------------------

  _buildViews() {
    const $ = (id) => byTestId(id);
    this.el = {
      title: $("session-title"),
      status: $("session-status"),
      statusSelect: $("session-status-select"),
      closesAt: $("closes-at"),
      extend: $("extend-session"),
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

    this.notices = new Notices();
    this.composer = new Composer(this, el);
    this.runPanel = new RunPanel(this, el);
    this.editor = new CodeEditor(document.getElementById("editor-host"), this.client, {
      onEdit: () => this._render("cursors", "comments"),
      onSelection: () => {
        this._showCaret();
        this._sendPresence();
      },
      onViewport: () => this._sendPresence(),
      onGutterClick: (line) => this.composer.startComment(line),
      onRun: () => this.runPanel.run(),
    });
    this.presence = new PresenceView(el.people, {
      setRole: (id, role) => this.act(() => this.client.setRole(id, role), () => this._render()),
      // Removing someone also keeps newcomers from their address out, so they
      // cannot come back under a fresh guest identity.
      kick: (id) => this.act(() => this.client.kick(id, { banAddress: true })),
    });
    this.chat = new ChatView(el.chat, {
      reply: (m) => this.composer.set({ mode: "reply", message: m.id }),
      edit: (m) => {
        this.composer.set({ mode: "edit", message: m.id });
        el.chatInput.value = m.text;
      },
      remove: (m) => this.act(() => this.client.deleteMessage(m.id)),
      react: (m, emoji) => this.act(() => this.client.react(m.id, emoji)),
      jump: (anchor) => this.jumpTo(anchor),
      loadOlder: () => this._loadChat(true),
    });
    this.history = new HistoryView({
      client: this.client,
      nameOf: (id) => this.participants.get(id)?.name ?? `#${id}`,
      colourOf: (id) => this.participants.get(id)?.colour ?? null,
      files: () => this.files,
      currentFile: () => this.file,
      createdAt: () => this.session?.created_at,
      isHost: () => this.participants.get(this.me)?.role === "host",
      exportSession: () => this.client.exportSession(),
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
    el.extend.addEventListener("click", () => {
      const closes = this.session?.closes_at;
      if (closes) this.act(() => this.client.updateSession({ closes_at: closes + 30 * 60 * 1000 }), () => this.toast("Extended by 30 minutes."));
    });
    el.statusSelect.addEventListener("change", () => {
      const status = el.statusSelect.value;
      this.act(() => this.client.updateSession({ status }), null, () => this._render());
    });
    el.language.addEventListener("change", () => {
      const language = el.language.value;
      this.act(() => this.client.updateSession({ language }), null, () => this._render());
    });
    el.run.addEventListener("click", () => this.runPanel.run());
    el.newFile.addEventListener("click", () => this._newFileClicked());
    byTestId("comment-line-button").addEventListener("click", () => this.composer.startComment(this.editor.caretPosition().line));
    byTestId("composer-cancel").addEventListener("click", () => this.composer.set({ mode: null }));
    el.chatForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.composer.send();
    });
    el.chatInput.addEventListener("keydown", (e) => this.composer.key(e));
    el.chatInput.addEventListener("input", () => this.composer.suggestMentions());
    byTestId("closed-rejoin").addEventListener("click", () => this._rejoin());

    // Going offline and back is the client's to notice.
    document.addEventListener("visibilitychange", () => this.client.setStatus(document.hidden ? "away" : "active"));
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
      this.composer.renderContext();
    }
    if (needs("cursors") || needs("presence")) this._renderRemoteCursors();
    if (needs("comments") || needs("chat")) this._renderCommentLines();
    this._showCaret();
  }

  _renderHeader() {
    renderHeader(this);
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
    const now = Date.now();
    let nextChange = Infinity;
    const cursors = remoteCursorsFor(this.client, this.file).map((c) => {
      const movedAt = this.cursorMoved.get(c.id)?.at ?? 0;
      const still = !c.typing && now - movedAt > CURSOR_LABEL_MS;
      if (!still) nextChange = Math.min(nextChange, movedAt + CURSOR_LABEL_MS - now);
      return { ...c, still };
    });
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
    renderConnection(this);
  }

  /** A short message at the corner of the screen. */
  toast(text, kind = "info") {
    this.notices.show(text, kind);
  }

  // ---- the session, through the client library -----------------------------------

  /** Opens the connection to the session (the client reconnects by itself). */
  connect() {
    this.client.connect();
  }

  _listen() {
    const client = this.client;
    client.on("state", () => {
      this._setConnection();
      // "Reconnecting in Ns" counts down while a reconnect waits.
      if (client.retrying && !this.countdown) {
        this.countdown = setInterval(() => {
          if (!client.retrying) {
            clearInterval(this.countdown);
            this.countdown = null;
          }
          this._setConnection();
        }, 1000);
      }
    });
    client.on("welcome", ({ resumed }) => this._welcomed(resumed));
    client.on("event", (e, { live, wasPresent }) => this._onEvent(e, live, wasPresent));
    client.on("presence", (id) => {
      const p = this.participants.get(id);
      const key = JSON.stringify(p?.presence?.cursors || []);
      if (id !== this.me && this.cursorMoved.get(id)?.key !== key) this.cursorMoved.set(id, { key, at: Date.now() });
      this._render("presence");
    });
    client.on("remote-edit", (file, op) => {
      // The editor's binding shows it in the file on screen (outside the
      // local history, so undo stays one's own); kept files take it here.
      this.editor.applyRemoteToKept(file, op);
      this._render("cursors", "comments");
    });
    client.on("file", (op) => this._fileChanged(op));
    client.on("chat", () => this._render("chat"));
    client.on("problem", ({ code, message }) => {
      if (code === "name_refused") this.nameRefusal = message;
      else this.toast(message, "error");
    });
    client.on("closed", (reason) => this._closed(reason));
  }

  _welcomed(resumed) {
    this.el.reviewBanner.hidden = !this.reviewing;
    this.pausedSeen = this.session?.status === "paused";
    if (!resumed) {
      if (!this.files.includes(this.file)) this.file = this.files.includes("main") ? "main" : this.files[0];
      this.editor.reset(this.file, this.doc.text(this.file));
      this.runPanel.loadLast(this.client.lastSeq);
    }
    this._presenceNow();
    this._render();
  }

  /** What the page says and shows of an event (the client has taken it in). */
  _onEvent(e, live, wasPresent) {
    const p = e.participant != null && typeof e.participant !== "object" ? this.participants.get(e.participant) : null;
    switch (e.kind) {
      case "participant_joined":
        if (live && !wasPresent) this.notices.joined(e.participant.name);
        break;
      case "participant_kicked":
        if (live && p && e.participant !== this.me) this.toast(`${p.name} was removed from the session`);
        break;
      case "role_changed":
        if (live && e.participant === this.me) {
          this.toast(e.role === "viewer" ? "You are now a viewer: the code is read-only for you." : `You are now ${e.role === "host" ? "a host" : "an editor"}.`);
        }
        break;
      case "message_posted":
      case "comment_posted":
        if (live && e.message.author !== this.me && (e.message.mentions || []).includes(this.me)) {
          this.toast(`${this.participants.get(e.message.author)?.name ?? "Someone"} mentioned you`, "mention");
        }
        break;
      case "run_finished":
        this.runPanel.show(e.run);
        break;
      case "session_closing":
        if (live) {
          const host = this.participants.get(this.me)?.role === "host";
          this.toast(`The session closes at ${clockDay(e.closes_at)}.${host ? " Extend it from the header if you need more time." : ""}`, "pause");
        }
        break;
      case "session_updated": {
        // A pause is announced to everyone, and so is its end.
        const who = e.by === this.me ? "You" : (this.participants.get(e.by)?.name ?? "A host");
        if (live && e.status === "paused") {
          const host = this.participants.get(this.me)?.role === "host";
          this.toast(host ? `${who} paused the session: only hosts can change the code.` : `${who} paused the session: the code is read-only until a host resumes it.`, "pause");
        } else if (live && e.status === "active" && this.pausedSeen) {
          this.toast(`${who} resumed the session: everyone can type again.`, "pause");
        }
        if (e.status) this.pausedSeen = e.status === "paused";
        break;
      }
      default:
        break;
    }
    this._render();
  }

  /** The client stopped for good: say why. */
  _closed(reason) {
    if (reason === "name_refused") {
      this.el.closed.hidden = true;
      return this.onNameRefused(this.nameRefusal ?? "That name cannot be used.");
    }
    if (reason === "kicked") localStorage.setItem(kickedKey(this.sessionId, this.token), "1");
    const text = {
      left: ["You left the session", "Your edits and messages stay in the session. You can come back with the same link."],
      kicked: ["You were removed from this session", "A host removed you; you cannot join it again."],
      session_ended: ["This interview has ended", `${this._whyEnded()} Nobody can join it any more.`],
      not_found: ["Session not found", "This link does not lead to a live session. It may have expired."],
      unauthorized: ["Not admitted", "The server did not accept this browser's credentials. Open the link again to get new ones."],
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

  /** Why the session ended, in a sentence, from its `end_reason`. */
  _whyEnded() {
    const s = this.session;
    switch (s?.end_reason) {
      case "expired":
        return `Nobody was in it for ${Math.round((s.expires_after_secs ?? 1800) / 60)} minutes, so it expired.`;
      case "closed":
        return `Its scheduled time ran out${s.closes_at ? ` at ${clockDay(s.closes_at)}` : ""}.`;
      default:
        return "A host ended the session.";
    }
  }

  /** Stops for good with `reason` (the page knows this participant was removed, say). */
  stop(reason) {
    this.client.close(reason);
  }

  _rejoin() {
    this.el.closed.hidden = true;
    this.client.rejoin();
  }

  /** Leaves the session for good (the participant may come back later). */
  leave() {
    // Reviewing an ended session: nothing to leave, just go.
    if (this.reviewing) location.href = "/";
    else this.client.leave();
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
    this.client.endSession().catch((e) => this.toast(e.message, "error"));
  }

  /**
   * Makes a change through the client (`change` returns its promise) and
   * reports a refusal as a toast (then runs `onError`).
   */
  act(change, onDone, onError) {
    change()
      .then(() => onDone?.())
      .catch((e) => {
        this.toast(e.code === "offline" ? "You are offline; try again when the connection is back." : e.message, "error");
        onError?.(e);
        this._render();
      });
  }

  // ---- the document --------------------------------------------------------------

  _fileChanged(op) {
    if (op.action === "remove") {
      this.editor.forgetFile(op.file);
      if (op.file === this.file && this.files.length > 0) {
        this.toast(`${op.file} was removed`);
        this.openFile(this.files.includes("main") ? "main" : this.files[0]);
      }
    }
    this._render();
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
    try {
      await this.client.createFile(path);
    } catch (e) {
      return this.toast(e.message, "error");
    }
    this.openFile(path);
    this.editor.focus();
  }

  // ---- presence ----------------------------------------------------------------

  /** Tells the others where this participant's caret and view are (the client sends only changes). */
  _presenceNow() {
    if (!this.doc) return;
    const sel = this.editor.selection();
    const cursor = { file: this.file, anchor: sel.anchor, head: sel.head };
    const viewport = { file: this.file, ...this.editor.visibleLines() };
    this.client.setPresence({ cursor, viewport });
  }

  // ---- chat --------------------------------------------------------------------

  _loadChat(older) {
    this.client.loadChat(older);
  }


}

/** Where the page remembers that an identity was removed from a session (per identity: a tab can be someone else). */
export function kickedKey(sessionId, token) {
  return `interview-room.kicked.${sessionId}.${fingerprint(token)}`;
}

