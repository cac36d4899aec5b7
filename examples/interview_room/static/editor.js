// The code editor: CodeMirror 6 (vendored, see vendor/revendor.mjs) bound
// to the session by collab-codemirror.mjs, which sends the participant's
// changes, brings in others' edits outside the undo history (so Ctrl+Z takes
// back only one's own changes, moved over what others typed since) and
// draws others' carets, selections and names. Here: the room's setup, the
// languages, comment markers in the gutter, and one editor state per file,
// history included, kept while another file is shown.

import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  bracketMatching,
  foldGutter,
  foldKeymap,
  indentOnInput,
  indentUnit,
  language as languageFacet,
  StreamLanguage,
} from "@codemirror/language";
import { highlightSelectionMatches, search, searchKeymap } from "@codemirror/search";
import { Compartment, EditorState, Prec, RangeSet, StateEffect, StateField } from "@codemirror/state";
import { oneDark } from "@codemirror/theme-one-dark";
import {
  Decoration,
  drawSelection,
  dropCursor,
  EditorView,
  gutter,
  GutterMarker,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
  rectangularSelection,
} from "@codemirror/view";
import { collab, remoteEdit, setRemoteCursors } from "/collab-codemirror.mjs";

/**
 * The language support for each language the room offers, loaded when a
 * session first uses it (the grammars are most of the editor's weight).
 * The languages without a Lezer grammar use CodeMirror's legacy modes.
 */
const LANGUAGE_SUPPORT = {
  javascript: async () => (await import("@codemirror/lang-javascript")).javascript(),
  typescript: async () => (await import("@codemirror/lang-javascript")).javascript({ typescript: true }),
  python: async () => (await import("@codemirror/lang-python")).python(),
  java: async () => (await import("@codemirror/lang-java")).java(),
  cpp: async () => (await import("@codemirror/lang-cpp")).cpp(),
  c: async () => (await import("@codemirror/lang-cpp")).cpp(),
  rust: async () => (await import("@codemirror/lang-rust")).rust(),
  go: async () => (await import("@codemirror/lang-go")).go(),
  php: async () => (await import("@codemirror/lang-php")).php({ plain: true }),
  sql: async () => (await import("@codemirror/lang-sql")).sql(),
  csharp: async () => StreamLanguage.define((await import("@codemirror/legacy-modes/mode/clike.js")).csharp),
  kotlin: async () => StreamLanguage.define((await import("@codemirror/legacy-modes/mode/clike.js")).kotlin),
  swift: async () => StreamLanguage.define((await import("@codemirror/legacy-modes/mode/swift.js")).swift),
  ruby: async () => StreamLanguage.define((await import("@codemirror/legacy-modes/mode/ruby.js")).ruby),
  bash: async () => StreamLanguage.define((await import("@codemirror/legacy-modes/mode/shell.js")).shell),
};

/** The indentation each language's starter code and community use. */
function indentFor(language) {
  if (language === "go") return "\t";
  if (["javascript", "typescript", "ruby", "sql"].includes(language)) return "  ";
  return "    ";
}

// ---- comment markers and the line that was jumped to ----

const setCommentLines = StateEffect.define();

class CommentMarker extends GutterMarker {
  constructor(count) {
    super();
    this.count = count;
  }
  eq(other) {
    return other.count === this.count;
  }
  toDOM() {
    const el = document.createElement("span");
    el.className = "comment-dot";
    el.dataset.testid = "comment-marker";
    el.title = `${this.count} comment${this.count > 1 ? "s" : ""} on this line`;
    return el;
  }
}

const commentMarkers = StateField.define({
  create: () => RangeSet.empty,
  update(markers, tr) {
    let next = markers.map(tr.changes);
    for (const e of tr.effects) {
      if (!e.is(setCommentLines)) continue;
      const doc = tr.state.doc;
      const ranges = [...e.value]
        .filter(([line]) => line >= 1 && line <= doc.lines)
        .map(([line, count]) => new CommentMarker(count).range(doc.line(line).from));
      next = RangeSet.of(ranges, true);
    }
    return next;
  },
});

const flashLine = StateEffect.define();
const flashMark = Decoration.line({ class: "cm-flash" });

const flashed = StateField.define({
  create: () => Decoration.none,
  update(decorations, tr) {
    let next = decorations.map(tr.changes);
    for (const e of tr.effects) {
      if (e.is(flashLine)) next = e.value === null ? Decoration.none : Decoration.set([flashMark.range(e.value)]);
    }
    return next;
  },
  provide: (field) => EditorView.decorations.from(field),
});

/** The editor's look beside the page's dark theme (one-dark does the syntax colours). */
const roomTheme = EditorView.theme(
  {
    "&": { height: "100%", backgroundColor: "var(--bg-sunken)", fontSize: "var(--code-size)" },
    ".cm-scroller": { fontFamily: "var(--mono)", lineHeight: "var(--line)" },
    ".cm-content": { paddingBottom: "40vh" },
    ".cm-gutters": { backgroundColor: "var(--bg-sunken)", borderRight: "none" },
    ".cm-lineNumbers .cm-gutterElement": { cursor: "pointer", padding: "0 8px 0 14px" },
  },
  { dark: true },
);

export class CodeEditor {
  /**
   * @param {HTMLElement} container where the editor goes.
   * @param {import("/collab-client.mjs").CollabClient} client the session's client.
   * @param {object} handlers `onEdit(op)` after a local edit (the client has it), `onSelection({anchor, head})`,
   *   `onViewport({first_line, last_line})`, `onGutterClick(line)`, `onRun()`.
   */
  constructor(container, client, handlers) {
    this.client = client;
    this.handlers = handlers;
    this.language = "";
    this.readOnly = false;
    this.keepFocus = false;
    this.file = null;
    /** The editor state of each file not on screen, kept with its history. */
    this.states = new Map();
    this.languageConf = new Compartment();
    this.readOnlyConf = new Compartment();
    this.languageSupport = [];
    this.flashTimer = 0;
    this.view = new EditorView({ state: this._newState(""), parent: container });
    this.view.scrollDOM.dataset.testid = "editor-scroll";
    this.view.scrollDOM.addEventListener("scroll", () => this._viewportChanged(), { passive: true });
    new ResizeObserver(() => this._viewportChanged()).observe(this.view.scrollDOM);
  }

  _extensions() {
    return [
      lineNumbers({
        domEventHandlers: {
          click: (view, line) => {
            this.handlers.onGutterClick?.(view.state.doc.lineAt(line.from).number);
            return true;
          },
        },
      }),
      gutter({
        class: "cm-comment-gutter",
        markers: (view) => view.state.field(commentMarkers),
        domEventHandlers: {
          click: (view, line) => {
            this.handlers.onGutterClick?.(view.state.doc.lineAt(line.from).number);
            return true;
          },
        },
      }),
      foldGutter(),
      highlightActiveLineGutter(),
      highlightSpecialChars(),
      history(),
      drawSelection(),
      dropCursor(),
      EditorState.allowMultipleSelections.of(true),
      indentOnInput(),
      bracketMatching(),
      closeBrackets(),
      rectangularSelection(),
      highlightActiveLine(),
      highlightSelectionMatches(),
      search({ top: true }),
      Prec.highest(
        keymap.of([
          {
            key: "Mod-Enter",
            run: () => {
              this.handlers.onRun?.();
              return true;
            },
          },
        ]),
      ),
      keymap.of([
        ...closeBracketsKeymap,
        ...defaultKeymap,
        ...searchKeymap,
        ...historyKeymap,
        ...foldKeymap,
        indentWithTab,
      ]),
      oneDark,
      Prec.highest(roomTheme),
      commentMarkers,
      flashed,
      this.languageConf.of([indentUnit.of(indentFor(this.language)), this.languageSupport]),
      this.readOnlyConf.of(this._readOnlyExtension()),
      EditorView.contentAttributes.of({ "data-testid": "editor", "aria-label": "Code", spellcheck: "false" }),
      EditorView.updateListener.of((update) => this._updated(update)),
    ];
  }

  _readOnlyExtension() {
    // Kept editable while read-only only to keep the focus and the caret
    // (a pause): the state refuses every change all the same.
    return [EditorState.readOnly.of(this.readOnly), EditorView.editable.of(!this.readOnly || this.keepFocus)];
  }

  /**
   * A state for `file` (null: none yet, nothing bound), bound to the session;
   * the binding also makes "\n" the only line end, so a stray "\r" is a
   * character and offsets are the document's own.
   */
  _newState(text, file = null) {
    const binding =
      file === null
        ? []
        : // The room draws others' cursors itself (their names fade when
          // still) and sends its presence throttled, with the visible lines.
          collab(this.client, { file, cursors: false, presence: false, onLocalEdit: (op) => this.handlers.onEdit(op) });
    return EditorState.create({ doc: text, extensions: [this._extensions(), binding] });
  }

  _updated(update) {
    if (update.selectionSet || update.focusChanged || update.docChanged) {
      if (update.view.hasFocus || update.selectionSet) this.handlers.onSelection?.(this.selection());
    }
    if (update.viewportChanged || update.geometryChanged) this._viewportChanged();
  }

  /** The text on screen. */
  get text() {
    return this.view.state.doc.toString();
  }

  /** The same as `text`: the editor keeps the document's characters as they are. */
  get shownText() {
    return this.text;
  }

  /**
   * Shows `file` with `text`: its kept state (history included) when the
   * text is still what it held, a fresh one otherwise; `caret` places the
   * caret in a fresh one.
   */
  showFile(file, text, caret = 0) {
    if (this.file !== null && this.file !== file) this.states.set(this.file, this.view.state);
    const kept = this.states.get(file);
    this.states.delete(file);
    this.file = file;
    if (kept && kept.doc.toString() === text) {
      this.view.setState(kept);
      // The kept state has the settings of the time it was put away.
      this.view.dispatch({
        effects: [
          this.languageConf.reconfigure([indentUnit.of(indentFor(this.language)), this.languageSupport]),
          this.readOnlyConf.reconfigure(this._readOnlyExtension()),
        ],
      });
    } else {
      const state = this._newState(text, file);
      const at = Math.min(caret, text.length);
      this.view.setState(state.update({ selection: { anchor: at } }).state);
    }
    this._viewportChanged();
  }

  /** Forgets every kept state (a new document arrived) and shows `text` as `file`. */
  reset(file, text) {
    this.states.clear();
    this.file = null;
    this.showFile(file, text);
  }

  /**
   * Takes others' edit `op` to a file that is not on screen into its kept
   * state (the binding shows those to the file on screen).
   */
  applyRemoteToKept(file, op) {
    const kept = file === this.file ? null : this.states.get(file);
    if (kept) this.states.set(file, kept.update(remoteEdit(op)).state);
  }

  /** Forgets the kept state of a file that is gone. */
  forgetFile(file) {
    this.states.delete(file);
  }

  /**
   * Whether the local participant may type. `keepFocus`: read-only for a
   * while (a pause), so the editor keeps its focus and caret.
   */
  setReadOnly(readOnly, { keepFocus = false } = {}) {
    keepFocus = readOnly && keepFocus;
    if (readOnly === this.readOnly && keepFocus === this.keepFocus) return;
    this.readOnly = readOnly;
    this.keepFocus = keepFocus;
    this.view.dispatch({ effects: this.readOnlyConf.reconfigure(this._readOnlyExtension()) });
  }

  /** Highlights and indents as `language`; the grammar loads in the background. */
  setLanguage(language) {
    if (language === this.language) return;
    this.language = language;
    this.languageSupport = [];
    this._configureLanguage();
    const load = LANGUAGE_SUPPORT[language];
    if (!load) return;
    load()
      .then((support) => {
        if (this.language !== language) return;
        this.languageSupport = support;
        this._configureLanguage();
      })
      .catch((e) => console.warn(`no highlighting for ${language}`, e));
  }

  /** The name of the grammar highlighting the code, or null (none, or still loading). */
  languageName() {
    return this.view.state.facet(languageFacet)?.name ?? null;
  }

  _configureLanguage() {
    this.view.dispatch({
      effects: this.languageConf.reconfigure([indentUnit.of(indentFor(this.language)), this.languageSupport]),
    });
  }

  /** Other participants' selections in this file: `[{id, name, colour, anchor, head, typing, still}]`. */
  setRemoteCursors(cursors) {
    this.view.dispatch({ effects: setRemoteCursors.of(cursors) });
  }

  /** Lines that have code comments: line -> number of comments. */
  setCommentLines(lines) {
    this.view.dispatch({ effects: setCommentLines.of(lines) });
  }

  /** The local selection (the main one), as UTF-16 offsets. */
  selection() {
    const { anchor, head } = this.view.state.selection.main;
    return { anchor, head };
  }

  /** The caret's line and column, 1-based. */
  caretPosition() {
    const head = this.view.state.selection.main.head;
    const line = this.view.state.doc.lineAt(head);
    return { line: line.number, column: head - line.from + 1 };
  }

  /** The lines on screen, 1-based and inclusive. */
  visibleLines() {
    const { view } = this;
    const doc = view.state.doc;
    // Heights from the document's top, which is above the scroller's when scrolled.
    const top = view.scrollDOM.getBoundingClientRect().top - view.documentTop;
    const first = doc.lineAt(view.lineBlockAtHeight(Math.max(0, top)).from).number;
    const bottom = top + view.scrollDOM.clientHeight;
    const last = doc.lineAt(view.lineBlockAtHeight(Math.max(0, bottom)).from).number;
    return { first_line: first, last_line: Math.max(first, last) };
  }

  /** Puts the caret at the start of `line`, scrolls it into view and flashes it. */
  jumpToLine(line) {
    const doc = this.view.state.doc;
    const at = doc.line(Math.max(1, Math.min(doc.lines, line))).from;
    this.view.dispatch({
      selection: { anchor: at },
      effects: [EditorView.scrollIntoView(at, { y: "center" }), flashLine.of(at)],
    });
    this.view.focus();
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => this.view.dispatch({ effects: flashLine.of(null) }), 1600);
  }

  focus() {
    this.view.focus();
  }

  _viewportChanged() {
    this.handlers.onViewport?.(this.visibleLines());
  }
}
