// The history view: the whole session as a timeline of steps, one file's
// edits (from the `history` and `text_at` frames) between everything else
// that happened (from the event log: chat, comments, runs, joins and
// leaves, role changes, pauses, the end), played at 1× to 32× with idle
// time skipped, large pastes marked. Hosts can export it all as JSON.

import { TextOperation } from "/collab-ot.mjs";
import { clockSeconds, h } from "./dom.js";

// Texts are kept every CHECKPOINT steps, so that moving the slider anywhere
// applies at most that many operations instead of replaying from the start.
const CHECKPOINT = 50;
const PAGE = 10000;
// An insert at least this long is marked as a paste.
const PASTE_CHARS = 200;
// A pause longer than this plays as this long: idle time is skipped.
const IDLE_MS = 1500;
const SPEEDS = [1, 2, 4, 8, 16, 32];
const JSON_MEDIA = "application/json";

/** What an event was, in words, or null for those the timeline leaves out. `status`: the session's before it. */
function describe(e, status) {
  const m = e.message;
  switch (e.kind) {
    case "message_posted":
      return m ? { by: m.author, kind: "chat", text: m.text } : null;
    case "comment_posted":
      return m ? { by: m.author, kind: m.anchor ? `comment on ${m.anchor.file}:${m.anchor.line}` : "comment", text: m.text } : null;
    case "run_finished": {
      if (!e.run) return null;
      const exit = e.run.exit_code == null ? "stopped" : `exit ${e.run.exit_code}`;
      return { by: e.run.by, kind: `run · ${exit}`, text: (e.run.stdout || e.run.stderr || "(no output)").trim().split("\n")[0] };
    }
    case "participant_joined":
      return { by: e.participant?.id, kind: e.rejoined ? "came back" : "joined", text: "" };
    case "participant_left":
      return { by: e.participant, kind: "left", text: "" };
    case "participant_kicked":
      return { by: e.by, kind: "removed someone", text: "", about: e.participant };
    case "role_changed":
      return { by: e.by, kind: `made someone ${e.role}`, text: "", about: e.participant };
    case "session_updated": {
      // Without `by`, the session did it itself: "The session started".
      const what =
        e.status === "paused"
          ? "paused"
          : e.status === "active" && status === "paused"
            ? "resumed"
            : e.status === "active"
              ? "started"
              : "changed";
      const text = [e.title != null ? `title: ${e.title}` : null, e.language != null ? `language: ${e.language}` : null].filter(Boolean).join(", ");
      const moved = e.closes_at != null ? `closes at ${clockSeconds(e.closes_at)}` : null;
      if (moved && e.title == null && e.language == null && e.status == null) {
        return { by: e.by, kind: "moved the closing time", text: moved };
      }
      return { by: e.by, kind: e.by == null ? what : `${what} the session`, text: [text, moved].filter(Boolean).join(", ") };
    }
    case "session_closing":
      return { by: null, kind: `closes soon, at ${clockSeconds(e.closes_at)}`, text: "" };
    case "session_ended":
      return { by: e.by, kind: e.by == null ? { expired: "expired", closed: "closed at its scheduled time" }[e.reason] ?? "ended" : "ended the session", text: "" };
    default:
      return null;
  }
}

/** The longest text an edit inserts, in characters. */
function longestInsert(op) {
  let longest = 0;
  for (const c of op.ops) if (typeof c === "string") longest = Math.max(longest, c.length);
  return longest;
}

/** Where an operation changed the text it produced: `[from, to)` in the new text, or null. */
function changedRange(op) {
  let pos = 0;
  let from = null;
  let to = null;
  for (const c of op.ops) {
    if (typeof c === "string") {
      from ??= pos;
      pos += c.length;
      to = pos;
    } else if (c > 0) pos += c;
    else {
      from ??= pos;
      to = Math.max(to ?? pos, pos);
    }
  }
  return from === null ? null : [from, to];
}

export class HistoryView {
  /**
   * @param {object} room `client`, `nameOf(participantId)`, `colourOf(participantId)`,
   *   `files()`, `currentFile()`, `createdAt()`, `isHost()`, and
   *   `exportSession()`, which resolves to the session's export.
   */
  constructor(room) {
    this.room = room;
    // The file's versions, and the texts kept every CHECKPOINT of them.
    this.versions = [];
    this.checkpoints = new Map();
    // The timeline: `{ at, version }` for an edit (an index into
    // `versions`), `{ at, version, moment }` for anything else (`version`:
    // the last edit before it).
    this.steps = [];
    this.timer = null;
    this.file = null;
    this.speed = 8;

    this.fileSelect = h("select", { testid: "history-file", "aria-label": "File", onchange: () => this._load(this.fileSelect.value) });
    this.slider = h("input", {
      type: "range",
      min: "0",
      max: "0",
      value: "0",
      testid: "history-slider",
      "aria-label": "Step",
      oninput: () => {
        this._stop();
        this._show(Number(this.slider.value));
      },
    });
    this.play = h("button", { class: "primary", testid: "history-play", onclick: () => this._togglePlay() }, "▶ Play");
    this.prev = h("button", { testid: "history-prev", title: "Previous step", onclick: () => this._step(-1) }, "◀");
    this.next = h("button", { testid: "history-next", title: "Next step", onclick: () => this._step(1) }, "▶");
    this.speedSelect = h(
      "select",
      {
        testid: "history-speed",
        "aria-label": "Speed",
        title: "Playback speed (pauses longer than 1.5 s are skipped)",
        onchange: () => (this.speed = Number(this.speedSelect.value)),
      },
      ...SPEEDS.map((x) => h("option", { value: String(x) }, `${x}×`)),
    );
    this.speedSelect.value = String(this.speed);
    // Where the large pastes are along the slider.
    this.marks = h("div", { class: "history-marks", testid: "history-marks" });
    this.label = h("div", { class: "history-label", testid: "history-rev" });
    this.code = h("pre", { class: "history-code", testid: "history-code" });
    this.gutter = h("div", { class: "gutter" });
    this.status = h("p", { class: "history-status", testid: "history-status" });
    // What happened up to the step shown.
    this.timeline = h("ol", { class: "history-timeline", testid: "history-timeline", "aria-label": "What happened up to this step" });
    this.exportButton = h("button", { testid: "history-export", title: "Everything, as one JSON file", onclick: () => this._export() }, "Export");
    this.root = h(
      "div",
      { class: "overlay", testid: "history-panel", hidden: true, onclick: (e) => e.target === this.root && this.close() },
      h(
        "div",
        { class: "dialog history", role: "dialog", "aria-label": "Session history" },
        h(
          "header",
          null,
          h("h2", null, "History"),
          this.fileSelect,
          h("span", { class: "spacer" }),
          this.exportButton,
          h("button", { testid: "history-close", onclick: () => this.close() }, "Close"),
        ),
        h("div", { class: "history-controls" }, this.prev, this.play, this.next, this.speedSelect, h("div", { class: "history-track" }, this.slider, this.marks)),
        this.label,
        this.status,
        h(
          "div",
          { class: "history-body" },
          h("div", { class: "history-scroll" }, h("div", { class: "editor-inner" }, this.gutter, this.code)),
          this.timeline,
        ),
      ),
    );
    document.body.append(this.root);
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !this.root.hidden) this.close();
    });
  }

  /** Opens the view on the file being edited, at the end of the story. */
  async open() {
    this.root.hidden = false;
    this.exportButton.hidden = !this.room.isHost?.();
    const files = this.room.files();
    this.fileSelect.replaceChildren(...files.map((f) => h("option", { value: f }, f)));
    this.fileSelect.value = this.room.currentFile();
    await this._load(this.room.currentFile());
  }

  close() {
    this._stop();
    this.root.hidden = true;
  }

  async _load(file) {
    this._stop();
    this.file = file;
    this.status.textContent = "Loading history…";
    this.status.hidden = false;
    this.code.replaceChildren();
    try {
      const versions = [];
      let after = 0;
      for (;;) {
        const page = await this.room.client.history({ after, limit: PAGE });
        versions.push(...page.versions);
        if (!page.has_more || page.versions.length === 0) break;
        after = page.versions[page.versions.length - 1].rev;
      }
      const start = await this.room.client.textAt(file, 0);
      const events = await this._events();
      if (this.file !== file) return;
      this.versions = [{ rev: 0, action: "start", at: this.room.createdAt() ?? 0 }];
      for (const v of versions) if (v.file === file) this.versions.push(v);
      this.checkpoints = new Map([[0, start.text ?? null]]);
      this.steps = this._merge(events);
      this.slider.max = String(this.steps.length - 1);
      this._drawMarks();
      this.status.hidden = true;
      this._show(this.steps.length - 1);
    } catch (e) {
      this.status.textContent = `Could not load the history: ${e.message}`;
    }
  }

  /** Every event the timeline tells, in the order they happened. */
  async _events() {
    const events = [];
    let since = 0;
    let status = "waiting";
    for (;;) {
      const page = await this.room.client.eventsSince(since);
      for (const e of page.events) {
        since = e.seq;
        const moment = describe(e, status);
        if (moment) events.push({ at: e.at, moment });
        if (e.kind === "session_updated" && e.status) status = e.status;
      }
      if (!page.has_more || page.events.length === 0) break;
    }
    return events;
  }

  /** The file's versions and the events as one list of steps, by time; an edit first when they tie. */
  _merge(events) {
    const steps = [];
    let v = 0;
    let e = 0;
    while (v < this.versions.length || e < events.length) {
      const version = this.versions[v];
      const event = events[e];
      if (version && (!event || version.at <= event.at || v === 0)) {
        steps.push({ at: version.at, version: v });
        v += 1;
      } else {
        steps.push({ at: event.at, version: v - 1, moment: event.moment });
        e += 1;
      }
    }
    return steps;
  }

  /** A mark along the slider at each large paste, which jumps to it. */
  _drawMarks() {
    const last = Math.max(1, this.steps.length - 1);
    const marks = [];
    this.steps.forEach((step, i) => {
      const v = this.versions[step.version];
      if (step.moment || v.action !== "edit") return;
      const chars = longestInsert(TextOperation.fromJSON(v.op));
      if (chars < PASTE_CHARS) return;
      const mark = h("button", {
        class: "history-mark",
        testid: "history-paste-mark",
        title: `Paste of ${chars} characters`,
        "aria-label": `Paste of ${chars} characters`,
        onclick: () => {
          this._stop();
          this._show(i);
        },
      });
      mark.style.left = `${(100 * i) / last}%`;
      marks.push(mark);
    });
    this.marks.replaceChildren(...marks);
  }

  /** Shows the last things that happened up to step `index`, the latest last. */
  _showMoments(index) {
    const shown = [];
    for (let i = index; i >= 0 && shown.length < 8; i--) if (this.steps[i].moment) shown.unshift(this.steps[i]);
    this.timeline.replaceChildren(
      ...(shown.length === 0
        ? [h("li", { class: "muted" }, "Nothing said or run yet.")]
        : shown.map(({ at, moment: m }) => {
            const colour = m.by != null ? this.room.colourOf?.(m.by) : null;
            const who = m.by != null ? this.room.nameOf(m.by) : "The session";
            const name = h("span", { class: "who" }, who);
            if (colour) name.style.color = colour;
            const text = m.about != null ? this.room.nameOf(m.about) : m.text;
            return h(
              "li",
              { testid: "history-moment" },
              name,
              h("span", { class: "what" }, ` ${m.kind} · ${clockSeconds(at)}`),
              text ? h("div", { class: "said" }, text) : null,
            );
          })),
    );
  }

  /** The text after version `index` (null where the file did not exist). */
  _textAt(index) {
    let base = index - (index % CHECKPOINT);
    while (!this.checkpoints.has(base)) base -= CHECKPOINT;
    let text = this.checkpoints.get(base);
    for (let i = base + 1; i <= index; i++) {
      text = this._apply(text, this.versions[i]);
      if (i % CHECKPOINT === 0) this.checkpoints.set(i, text);
    }
    return text;
  }

  _apply(text, step) {
    if (step.action === "create") return step.text ?? "";
    if (step.action === "remove") return null;
    if (step.action === "edit" && text !== null) return TextOperation.fromJSON(step.op).apply(text);
    return text;
  }

  _show(index) {
    this.index = index;
    this.slider.value = String(index);
    const step = this.steps[index];
    const version = this.versions[step.version];
    const text = this._textAt(step.version);
    const place = `Revision ${version.rev} · step ${index} of ${this.steps.length - 1}`;
    const time = step.at ? ` · ${clockSeconds(step.at)}` : "";
    if (step.moment) {
      const who = step.moment.by != null ? this.room.nameOf(step.moment.by) : "the session";
      this.label.textContent = `${place} · ${who} ${step.moment.kind}${time}`;
    } else {
      const who = version.author != null ? this.room.nameOf(version.author) : null;
      let what =
        version.action === "start" ? "as the session started" : version.action === "create" ? "file created" : version.action === "remove" ? "file removed" : "edit";
      if (version.action === "edit") {
        const chars = longestInsert(TextOperation.fromJSON(version.op));
        if (chars >= PASTE_CHARS) what = `paste of ${chars} characters`;
      }
      this.label.textContent = `${place} · ${what}${who ? ` by ${who}` : ""}${time}`;
    }
    this.prev.disabled = index === 0;
    this.next.disabled = index === this.steps.length - 1;
    this._showMoments(index);
    if (text === null) {
      this.code.replaceChildren(h("span", { class: "missing" }, "(the file does not exist at this revision)"));
      this.gutter.replaceChildren();
      return;
    }
    let range = null;
    // An edit is marked where it changed the text, in its author's colour.
    if (!step.moment && version.action === "edit") range = changedRange(TextOperation.fromJSON(version.op));
    let mark = null;
    if (range) {
      const [from, to] = range;
      mark = h("span", { class: to > from ? "hist-change" : "hist-change deletion" }, text.slice(from, to));
      const colour = version.author != null ? this.room.colourOf?.(version.author) : null;
      if (colour) {
        mark.style.setProperty("--author", colour);
        mark.dataset.author = String(version.author);
      }
      this.code.replaceChildren(text.slice(0, from), mark, text.slice(to), " ");
    } else this.code.replaceChildren(text, " ");
    const lines = text.split("\n").length;
    this.gutter.replaceChildren(...Array.from({ length: lines }, (_, i) => h("div", { class: "ln" }, String(i + 1))));
    if (mark) mark.scrollIntoView({ block: "nearest" });
  }

  _step(delta) {
    this._stop();
    const index = Math.max(0, Math.min(this.steps.length - 1, this.index + delta));
    this._show(index);
  }

  /** Plays from the step shown (from the start at the end), in the time the steps took, sped up, idle time skipped. */
  _togglePlay() {
    if (this.timer !== null) return this._stop();
    if (this.index >= this.steps.length - 1) this._show(0);
    this.play.textContent = "❚❚ Pause";
    const tick = () => {
      if (this.index >= this.steps.length - 1) return this._stop();
      const gap = (this.steps[this.index + 1].at ?? 0) - (this.steps[this.index].at ?? 0);
      this.timer = setTimeout(() => {
        this._show(this.index + 1);
        tick();
      }, Math.max(16, Math.min(Math.max(gap, 0), IDLE_MS) / this.speed));
    };
    tick();
  }

  _stop() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.play.textContent = "▶ Play";
  }

  /** Downloads the session's export (hosts only). */
  async _export() {
    try {
      const exported = await this.room.exportSession();
      const blob = new Blob([JSON.stringify(exported, null, 2)], { type: JSON_MEDIA });
      const link = h("a", { href: URL.createObjectURL(blob), download: `session-${exported.session.id}.json` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (e) {
      this.status.textContent = `Could not export: ${e.message}`;
      this.status.hidden = false;
    }
  }
}
