// The code editor: a plain <textarea> for input (so typing, selection,
// clipboard and accessibility are the browser's own), laid over a highlighted
// copy of the text, with line numbers and other participants' cursors drawn
// on a third layer. All three use the same font and metrics, so a character
// sits at the same place in each.

import { diffToOperation } from "/collab-ot.mjs";
import { h, lineOf, lineStart, safeColour } from "./dom.js";
import { highlight } from "./highlight.js";

const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

/**
 * The operation that turns `oldText` into `newText`, for an edit that left
 * the caret at `caret`. A plain common-prefix/suffix diff cannot tell where a
 * character went in a run of equal ones ("))" + ")"), and a concurrent edit
 * would then merge at the wrong place; every edit in a textarea (typing,
 * deleting, pasting over a selection) ends at the caret, so the common
 * suffix is not allowed to reach before it.
 */
export function diffAtCaret(oldText, newText, caret) {
  const bound = Math.max(0, Math.min(oldText.length, newText.length - caret));
  let suffix = 0;
  while (
    suffix < bound &&
    oldText.charCodeAt(oldText.length - 1 - suffix) === newText.charCodeAt(newText.length - 1 - suffix)
  ) {
    suffix++;
  }
  // Never cut between the halves of a surrogate pair.
  if (suffix > 0 && isLow(oldText.charCodeAt(oldText.length - suffix))) suffix--;
  return diffToOperation(oldText.slice(0, oldText.length - suffix), newText.slice(0, newText.length - suffix));
}

export class CodeEditor {
  /**
   * @param {HTMLElement} container where the editor goes.
   * @param {object} handlers `onEdit(op, text)` for a local edit, `onSelection({anchor, head})`,
   *   `onViewport({first_line, last_line})`, `onGutterClick(line)`, `onRun()`.
   */
  constructor(container, handlers) {
    this.handlers = handlers;
    this.text = "";
    this.language = "";
    this.readOnly = false;
    this.remote = [];
    this.commentLines = new Map();
    this.lineCount = 0;
    this.activeLine = 0;

    this.gutter = h("div", { class: "gutter", testid: "line-numbers", "aria-hidden": "true" });
    this.hl = h("pre", { class: "layer hl", "aria-hidden": "true" });
    this.marks = h("pre", { class: "layer marks", testid: "remote-cursors", "aria-hidden": "true" });
    this.flash = h("div", { class: "line-flash", hidden: true });
    this.ta = h("textarea", {
      class: "input",
      testid: "editor",
      spellcheck: "false",
      wrap: "off",
      autocapitalize: "off",
      autocomplete: "off",
      "aria-label": "Code",
    });
    this.box = h("div", { class: "code-box" }, this.flash, this.hl, this.ta, this.marks);
    this.scroller = h(
      "div",
      { class: "editor-scroll", testid: "editor-scroll" },
      h("div", { class: "editor-inner" }, this.gutter, this.box),
    );
    container.append(this.scroller);

    this.ta.addEventListener("input", () => this._onInput());
    this.ta.addEventListener("keydown", (e) => this._onKeyDown(e));
    // The textarea is as large as its text, so it never needs to scroll
    // itself; the browser may still nudge it while the layers catch up.
    this.ta.addEventListener("scroll", () => {
      this.ta.scrollTop = 0;
      this.ta.scrollLeft = 0;
    });
    document.addEventListener("selectionchange", () => {
      if (document.activeElement === this.ta) this._selectionChanged();
    });
    this.ta.addEventListener("focus", () => this._selectionChanged());
    this.scroller.addEventListener("scroll", () => this._viewportChanged(), { passive: true });
    this.gutter.addEventListener("click", (e) => {
      const row = e.target.closest("[data-line]");
      if (row) this.handlers.onGutterClick?.(Number(row.dataset.line));
    });
    new ResizeObserver(() => this._viewportChanged()).observe(this.scroller);
    this._render();
  }

  /** Line height in pixels, as the stylesheet sets it. */
  get lineHeight() {
    return parseFloat(getComputedStyle(this.ta).lineHeight) || 20;
  }

  /** Replaces the whole text (another file, a fresh document); the caret goes to `caret` or the start. */
  setText(text, caret = 0) {
    this.text = text;
    this.ta.value = text;
    const at = Math.min(caret, this.ta.value.length);
    this.ta.setSelectionRange(at, at);
    this._render();
  }

  /**
   * Shows a remote edit: `text` is the text after `op`, and `moveIndex`
   * moves a position over `op` (DocumentClient.transformCursor), so that the
   * local caret and selection stay on the same characters.
   */
  applyRemote(text, moveIndex) {
    const { selectionStart, selectionEnd, selectionDirection } = this.ta;
    // Setting the value would scroll to the caret; the reader keeps their place.
    const { scrollTop, scrollLeft } = this.scroller;
    this.text = text;
    this.ta.value = text;
    this.ta.setSelectionRange(moveIndex(selectionStart), moveIndex(selectionEnd), selectionDirection);
    this.scroller.scrollTop = scrollTop;
    this.scroller.scrollLeft = scrollLeft;
    this._render();
  }

  /** Shows a local change made outside the textarea (undo, redo): caret at `caret`. */
  replaceText(text, caret) {
    this.text = text;
    this.ta.value = text;
    this.ta.setSelectionRange(caret, caret);
    this._render();
    this._selectionChanged();
  }

  /** What the textarea holds (it may differ from `text` after the browser normalized line ends). */
  get shownText() {
    return this.ta.value;
  }

  /** Whether the local participant may type. */
  setReadOnly(readOnly) {
    this.readOnly = readOnly;
    this.ta.readOnly = readOnly;
    this.box.classList.toggle("read-only", readOnly);
  }

  setLanguage(language) {
    if (language === this.language) return;
    this.language = language;
    this._render();
  }

  /** Other participants' selections in this file: `[{id, name, colour, anchor, head, typing}]`. */
  setRemoteCursors(cursors) {
    this.remote = cursors;
    this._renderMarks();
  }

  /** Lines that have code comments: line -> number of comments. */
  setCommentLines(lines) {
    this.commentLines = lines;
    this._renderGutter(true);
  }

  /** The local selection, as UTF-16 offsets. */
  selection() {
    const { selectionStart, selectionEnd, selectionDirection } = this.ta;
    return selectionDirection === "backward"
      ? { anchor: selectionEnd, head: selectionStart }
      : { anchor: selectionStart, head: selectionEnd };
  }

  /** The caret's line and column, 1-based. */
  caretPosition() {
    const head = this.selection().head;
    const line = lineOf(this.text, head);
    return { line, column: head - lineStart(this.text, line) + 1 };
  }

  /** The lines on screen, 1-based and inclusive. */
  visibleLines() {
    const lh = this.lineHeight;
    const first = Math.floor(this.scroller.scrollTop / lh) + 1;
    const last = Math.max(first, Math.ceil((this.scroller.scrollTop + this.scroller.clientHeight) / lh));
    return { first_line: first, last_line: Math.min(Math.max(last, first), Math.max(this.lineCount, first)) };
  }

  /** Puts the caret at the start of `line`, scrolls it into view and flashes it. */
  jumpToLine(line) {
    const at = lineStart(this.text, line);
    this.ta.focus({ preventScroll: true });
    this.ta.setSelectionRange(at, at);
    const lh = this.lineHeight;
    const top = (lineOf(this.text, at) - 1) * lh;
    const view = this.scroller;
    if (top < view.scrollTop || top + lh > view.scrollTop + view.clientHeight) {
      view.scrollTop = Math.max(0, top - view.clientHeight / 3);
    }
    this.flash.hidden = false;
    this.flash.style.top = `calc(var(--pad-y) + ${top}px)`;
    this.flash.classList.remove("on");
    void this.flash.offsetWidth; // Restarts the animation.
    this.flash.classList.add("on");
    this._selectionChanged();
  }

  focus() {
    this.ta.focus();
  }

  _onInput() {
    const value = this.ta.value;
    if (value === this.text) return;
    const op = diffAtCaret(this.text, value, this.ta.selectionEnd);
    this.text = value;
    this._render();
    this.handlers.onEdit(op, value);
    this._selectionChanged();
  }

  _onKeyDown(e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      this.handlers.onRun?.();
      return;
    }
    if (this.readOnly || e.isComposing) return;
    // The browser's own undo history is lost whenever a remote edit sets the
    // value, so undo and redo are the room's (they follow remote edits).
    const key = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && !e.altKey && (key === "z" || key === "y")) {
      e.preventDefault();
      if (key === "z" && !e.shiftKey) this.handlers.onUndo?.();
      else this.handlers.onRedo?.();
      return;
    }
    if (e.key === "Tab" && !e.ctrlKey && !e.altKey && !e.metaKey && !e.shiftKey) {
      e.preventDefault();
      // insertText keeps the browser's undo history, unlike setting value.
      document.execCommand("insertText", false, "    ");
    } else if (e.key === "Enter" && !e.shiftKey && !e.altKey) {
      const head = this.ta.selectionStart;
      const start = this.text.lastIndexOf("\n", head - 1) + 1;
      const indent = /^[ \t]*/.exec(this.text.slice(start, head))[0];
      const opens = /[:{[(]\s*$/.test(this.text.slice(start, head));
      if (indent || opens) {
        e.preventDefault();
        document.execCommand("insertText", false, "\n" + indent + (opens ? "    " : ""));
      }
    }
  }

  _selectionChanged() {
    this._renderGutter(false);
    this.handlers.onSelection?.(this.selection());
  }

  _viewportChanged() {
    this.handlers.onViewport?.(this.visibleLines());
  }

  _render() {
    // A trailing space gives a final empty line its height in a <pre>.
    this.hl.replaceChildren(...highlight(this.text, this.language), " ");
    this._renderGutter(false);
    this._renderMarks();
  }

  _renderGutter(force) {
    let count = 1;
    for (let i = this.text.indexOf("\n"); i !== -1; i = this.text.indexOf("\n", i + 1)) count++;
    const active = document.activeElement === this.ta ? this.caretPosition().line : 0;
    if (force || count !== this.lineCount) {
      this.lineCount = count;
      const rows = [];
      for (let line = 1; line <= count; line++) {
        const comments = this.commentLines.get(line) || 0;
        rows.push(
          h(
            "div",
            {
              class: comments ? "ln has-comment" : "ln",
              dataset: { line: String(line) },
              title: comments ? `${comments} comment${comments > 1 ? "s" : ""} on this line` : "Comment on this line",
            },
            String(line),
          ),
        );
      }
      this.gutter.replaceChildren(...rows);
      this.activeLine = 0;
    }
    if (active !== this.activeLine) {
      this.gutter.children[this.activeLine - 1]?.classList.remove("active");
      this.gutter.children[active - 1]?.classList.add("active");
      this.activeLine = active;
    }
  }

  /**
   * Draws remote selections and carets as spans over a transparent copy of
   * the text: the browser lays them out exactly where the characters are,
   * tabs and wide characters included.
   */
  _renderMarks() {
    const text = this.text;
    const len = text.length;
    const marks = this.remote.map((r) => {
      const anchor = Math.max(0, Math.min(len, r.anchor));
      const head = Math.max(0, Math.min(len, r.head));
      return { ...r, head, from: Math.min(anchor, head), to: Math.max(anchor, head) };
    });
    const points = new Set([0, len]);
    for (const m of marks) points.add(m.from).add(m.to).add(m.head);
    const sorted = [...points].sort((a, b) => a - b);
    const nodes = [];
    for (let i = 0; i < sorted.length; i++) {
      const pos = sorted[i];
      for (const m of marks) if (m.head === pos) nodes.push(this._caret(m, lineOf(text, pos) === 1));
      const next = sorted[i + 1];
      if (next === undefined) break;
      const piece = text.slice(pos, next);
      const over = marks.filter((m) => m.from <= pos && m.to >= next && m.from !== m.to);
      if (over.length > 0) {
        const m = over[over.length - 1];
        nodes.push(
          h("span", { class: "rsel", dataset: { participantId: String(m.id) }, style: { "--c": safeColour(m.colour) } }, piece),
        );
      } else nodes.push(piece);
    }
    nodes.push(" ");
    this.marks.replaceChildren(...nodes.map((n) => (typeof n === "string" ? document.createTextNode(n) : n)));
  }

  _caret(m, firstLine) {
    return h(
      "span",
      {
        class: `rcaret${firstLine ? " first-line" : ""}${m.typing ? " typing" : ""}${m.still ? " still" : ""}`,
        testid: "remote-cursor",
        dataset: { participantId: String(m.id) },
        style: { "--c": safeColour(m.colour) },
      },
      h("span", { class: "rlabel", testid: "remote-cursor-label" }, m.name),
    );
  }
}
