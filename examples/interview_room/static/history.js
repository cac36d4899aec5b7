// The history view: replays one file's text revision by revision, from the
// session's `history` (versions) and `text_at` frames.

import { TextOperation } from "/collab-ot.mjs";
import { clockSeconds, h } from "./dom.js";

// Texts are kept every CHECKPOINT steps, so that moving the slider anywhere
// applies at most that many operations instead of replaying from the start.
const CHECKPOINT = 50;
const PAGE = 10000;

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
   * @param {object} room `request(frame)`, `nameOf(participantId)`, `colourOf(participantId)`,
   *   `files()`, `currentFile()`, `createdAt()`.
   */
  constructor(room) {
    this.room = room;
    this.steps = [];
    this.checkpoints = new Map();
    this.timer = null;
    this.file = null;

    this.fileSelect = h("select", { testid: "history-file", "aria-label": "File", onchange: () => this._load(this.fileSelect.value) });
    this.slider = h("input", {
      type: "range",
      min: "0",
      max: "0",
      value: "0",
      testid: "history-slider",
      "aria-label": "Revision",
      oninput: () => {
        this._stop();
        this._show(Number(this.slider.value));
      },
    });
    this.play = h("button", { class: "primary", testid: "history-play", onclick: () => this._togglePlay() }, "▶ Play");
    this.prev = h("button", { testid: "history-prev", title: "Previous change", onclick: () => this._step(-1) }, "◀");
    this.next = h("button", { testid: "history-next", title: "Next change", onclick: () => this._step(1) }, "▶");
    this.label = h("div", { class: "history-label", testid: "history-rev" });
    this.code = h("pre", { class: "history-code", testid: "history-code" });
    this.gutter = h("div", { class: "gutter" });
    this.status = h("p", { class: "history-status", testid: "history-status" });
    // What was said and run up to the revision shown.
    this.timeline = h("ol", { class: "history-timeline", testid: "history-timeline", "aria-label": "Chat and runs up to this revision" });
    this.moments = [];
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
          h("button", { testid: "history-close", onclick: () => this.close() }, "Close"),
        ),
        h("div", { class: "history-controls" }, this.prev, this.play, this.next, this.slider),
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

  /** Opens the view on the file being edited, at its latest revision. */
  async open() {
    this.root.hidden = false;
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
      this.moments = await this._moments();
      if (this.file !== file) return;
      this.steps = [{ rev: 0, action: "start", at: this.room.createdAt() }];
      for (const v of versions) if (v.file === file) this.steps.push(v);
      this.checkpoints = new Map([[0, start.text ?? null]]);
      this.slider.max = String(this.steps.length - 1);
      this.status.hidden = true;
      this._show(this.steps.length - 1);
    } catch (e) {
      this.status.textContent = `Could not load the history: ${e.message}`;
    }
  }

  /** Chat messages, comments and runs, in the order they happened. */
  async _moments() {
    const moments = [];
    let since = 0;
    for (;;) {
      const page = await this.room.client.eventsSince(since);
      for (const e of page.events) {
        since = e.seq;
        const m = e.message;
        if ((e.kind === "message_posted" || e.kind === "comment_posted") && m) {
          const where = m.anchor ? ` on ${m.anchor.file}:${m.anchor.line}` : "";
          moments.push({ at: e.at, by: m.author, text: `${m.text}`, kind: m.anchor ? `comment${where}` : "chat" });
        } else if (e.kind === "run_finished" && e.run) {
          const exit = e.run.exit_code == null ? "stopped" : `exit ${e.run.exit_code}`;
          moments.push({ at: e.at, by: e.run.by, text: (e.run.stdout || e.run.stderr || "(no output)").trim().split("\n")[0], kind: `run · ${exit}` });
        }
      }
      if (!page.has_more || page.events.length === 0) break;
    }
    return moments;
  }

  /** Shows what was said and run up to `at`, the latest last. */
  _showMoments(at) {
    const upTo = at == null ? this.moments : this.moments.filter((m) => m.at <= at);
    const shown = upTo.slice(-8);
    this.timeline.replaceChildren(
      ...(shown.length === 0
        ? [h("li", { class: "muted" }, "Nothing said or run yet.")]
        : shown.map((m) => {
            const colour = m.by != null ? this.room.colourOf?.(m.by) : null;
            const who = m.by != null ? this.room.nameOf(m.by) : "someone";
            const name = h("span", { class: "who" }, who);
            if (colour) name.style.color = colour;
            return h(
              "li",
              { testid: "history-moment" },
              name,
              h("span", { class: "what" }, ` ${m.kind} · ${clockSeconds(m.at)}`),
              h("div", { class: "said" }, m.text),
            );
          })),
    );
  }

  /** The text after step `index` (null where the file did not exist). */
  _textAt(index) {
    let base = index - (index % CHECKPOINT);
    while (!this.checkpoints.has(base)) base -= CHECKPOINT;
    let text = this.checkpoints.get(base);
    for (let i = base + 1; i <= index; i++) {
      text = this._apply(text, this.steps[i]);
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
    const text = this._textAt(index);
    const who = step.author != null ? this.room.nameOf(step.author) : null;
    const what =
      step.action === "start" ? "as the session started" : step.action === "create" ? "file created" : step.action === "remove" ? "file removed" : "edit";
    this.label.textContent = `Revision ${step.rev} · change ${index} of ${this.steps.length - 1} · ${what}${who ? ` by ${who}` : ""}${
      step.at ? ` · ${clockSeconds(step.at)}` : ""
    }`;
    this.prev.disabled = index === 0;
    this.next.disabled = index === this.steps.length - 1;
    if (text === null) {
      this.code.replaceChildren(h("span", { class: "missing" }, "(the file does not exist at this revision)"));
      this.gutter.replaceChildren();
      return;
    }
    let range = null;
    if (step.action === "edit") range = changedRange(TextOperation.fromJSON(step.op));
    let mark = null;
    this._showMoments(step.at);
    if (range) {
      const [from, to] = range;
      mark = h("span", { class: to > from ? "hist-change" : "hist-change deletion" }, text.slice(from, to));
      // In the author's colour, as their cursor was.
      const colour = step.author != null ? this.room.colourOf?.(step.author) : null;
      if (colour) {
        mark.style.setProperty("--author", colour);
        mark.dataset.author = String(step.author);
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

  _togglePlay() {
    if (this.timer !== null) return this._stop();
    if (this.index >= this.steps.length - 1) this._show(0);
    // A long history plays in about 15 seconds, a short one no faster than 8 changes a second.
    const delay = Math.max(20, Math.min(120, 15000 / Math.max(1, this.steps.length)));
    this.play.textContent = "❚❚ Pause";
    this.timer = setInterval(() => {
      if (this.index >= this.steps.length - 1) return this._stop();
      this._show(this.index + 1);
    }, delay);
  }

  _stop() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.play.textContent = "▶ Play";
  }
}
