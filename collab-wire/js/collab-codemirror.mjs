// collab-codemirror: binds a CodeMirror 6 editor to a collab session through
// collab-client.mjs. It imports "@codemirror/state" and "@codemirror/view"
// by their package names; an import map (or a bundler) resolves them to the
// app's own copy, so the editor and the binding share one CodeMirror.
//
//   import { EditorView } from "@codemirror/view";
//   import { collab } from "/collab-codemirror.mjs";
//   await client.ready();
//   const view = new EditorView({
//     doc: client.doc.text("main"),
//     extensions: [collab(client, { file: "main" })],
//     parent: document.body,
//   });
//
// What it does:
// - the participant's changes go to the client as collab-ot operations,
//   others' edits come into the editor as changes kept out of the undo
//   history (so undo takes back one's own changes only, moved over what
//   others typed since);
// - others' carets and selections are drawn in their colours, with their
//   names after the end of the caret's line, where they cover no code;
// - the participant's caret and visible lines go to the others as presence.
//
// Offsets are UTF-16 code units, CodeMirror's own. The binding sets
// `EditorState.lineSeparator` to "\n" so that a "\r" in a document is a
// character like any other and offsets stay the document's.

import { Annotation, EditorState, StateEffect, StateField, Transaction } from "@codemirror/state";
import { Decoration, EditorView, ViewPlugin, WidgetType } from "@codemirror/view";
import { TextOperation } from "./collab-ot.mjs";

/**
 * @typedef {{id: number, name: string, colour: string, anchor: number, head: number, typing?: boolean, still?: boolean}} RemoteCursor
 */

/** Marks the transactions that carry others' edits: not the participant's own. */
export const fromSession = Annotation.define();

/**
 * The collab-ot operation for a CodeMirror change set over a document of
 * `length` UTF-16 units.
 * @param {import("@codemirror/state").ChangeSet} changes
 * @param {number} length
 * @returns {TextOperation}
 */
export function changesToOperation(changes, length) {
  const op = new TextOperation();
  let pos = 0;
  changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    if (fromA > pos) op.retain(fromA - pos);
    if (inserted.length > 0) op.insert(inserted.toString());
    if (toA > fromA) op.delete(toA - fromA);
    pos = toA;
  });
  if (length > pos) op.retain(length - pos);
  return op;
}

/**
 * The CodeMirror change specs of a collab-ot operation (positions in the
 * document before it).
 * @param {TextOperation} op
 * @returns {{from: number, to?: number, insert?: string}[]}
 */
export function operationToChanges(op) {
  const changes = [];
  let pos = 0;
  for (const c of op.ops) {
    if (typeof c === "string") changes.push({ from: pos, insert: c });
    else if (c > 0) pos += c;
    else {
      changes.push({ from: pos, to: pos - c });
      pos -= c;
    }
  }
  return changes;
}

/**
 * The transaction spec that shows others' edit `op`: outside the undo
 * history, marked as not the participant's own.
 * @param {TextOperation} op
 */
export function remoteEdit(op) {
  return {
    changes: operationToChanges(op),
    annotations: [fromSession.of(true), Transaction.addToHistory.of(false), Transaction.remote.of(true)],
  };
}

// ---- others' carets, selections and names ----

/** Replaces the remote cursors drawn: `setRemoteCursors.of([RemoteCursor, ...])`. */
export const setRemoteCursors = StateEffect.define();

/** Only characters valid in a CSS colour, so a colour cannot inject style. */
const safeColour = (colour) => (/^#[0-9a-fA-F]{3,8}$|^[a-z]{3,20}$/.test(String(colour)) ? colour : "#888");

/** A mark of a participant's cursor: a span with their colour and id. */
class CursorWidget extends WidgetType {
  /**
   * @param {RemoteCursor} cursor
   * @param {string} kind the class (`rcaret` or `rlabel`)
   * @param {string} testid
   */
  constructor(cursor, kind, testid) {
    super();
    this.cursor = cursor;
    this.kind = kind;
    this.testid = testid;
  }
  eq(other) {
    const [a, b] = [this.cursor, other.cursor];
    return (
      this.kind === other.kind &&
      a.id === b.id &&
      a.name === b.name &&
      a.colour === b.colour &&
      a.typing === b.typing &&
      a.still === b.still
    );
  }
  toDOM() {
    const c = this.cursor;
    const el = document.createElement("span");
    el.className = `${this.kind}${c.typing ? " typing" : ""}${c.still ? " still" : ""}`;
    el.dataset.testid = this.testid;
    el.dataset.participantId = String(c.id);
    el.style.setProperty("--c", safeColour(c.colour));
    if (this.kind === "rlabel") el.textContent = c.name;
    else el.title = c.name;
    return el;
  }
  ignoreEvent() {
    return true;
  }
}

/** The caret: zero width with a coloured border, so it moves no character. */
const caret = (cursor) => new CursorWidget(cursor, "rcaret", "remote-cursor");

/**
 * The participant's name, after the end of the line their caret is on: in
 * the flow of the text, so it never covers a character (a label floating
 * over the caret hides the code around it).
 */
const label = (cursor) => new CursorWidget(cursor, "rlabel", "remote-cursor-label");

/**
 * The decorations of `cursors` in `doc`: a mark over each selection
 * (class `rsel`), a zero-width caret (`rcaret`) and one name label per
 * participant (`rlabel`) after the end of their caret's line.
 * @param {RemoteCursor[]} cursors
 * @param {import("@codemirror/state").Text} doc
 */
export function remoteCursorDecorations(cursors, doc) {
  const ranges = [];
  const clamp = (i) => Math.max(0, Math.min(doc.length, Number(i) || 0));
  const labelled = new Set();
  for (const c of cursors) {
    const anchor = clamp(c.anchor);
    const head = clamp(c.head);
    const [from, to] = anchor < head ? [anchor, head] : [head, anchor];
    if (from < to) {
      ranges.push(
        Decoration.mark({
          class: "rsel",
          attributes: { "data-participant-id": String(c.id), style: `--c: ${safeColour(c.colour)}` },
        }).range(from, to),
      );
    }
    ranges.push(Decoration.widget({ widget: caret(c), side: head === to ? 1 : -1 }).range(head));
    if (!labelled.has(c.id)) {
      labelled.add(c.id);
      ranges.push(Decoration.widget({ widget: label(c), side: 1000 }).range(doc.lineAt(head).to));
    }
  }
  return Decoration.set(ranges, true);
}

/** The field that holds the remote cursors' decorations; they move with every change. */
export const remoteCursorsField = StateField.define({
  create: () => Decoration.none,
  update(decorations, tr) {
    let next = decorations.map(tr.changes);
    for (const e of tr.effects) if (e.is(setRemoteCursors)) next = remoteCursorDecorations(e.value, tr.state.doc);
    return next;
  },
  provide: (field) => EditorView.decorations.from(field),
});

/** Default look of the remote cursors (an app's stylesheet may restyle the classes). */
export const remoteCursorTheme = EditorView.baseTheme({
  ".rsel": { backgroundColor: "color-mix(in srgb, var(--c) 30%, transparent)", borderRadius: "2px" },
  ".rcaret": {
    position: "relative",
    display: "inline-block",
    width: "0",
    height: "1.25em",
    verticalAlign: "text-bottom",
    borderLeft: "2px solid var(--c)",
    margin: "0 -1px",
  },
  ".rlabel": {
    display: "inline-block",
    marginLeft: "1.5ch",
    padding: "0 6px",
    font: "600 10.5px/16px sans-serif",
    color: "#fff",
    background: "var(--c)",
    borderRadius: "3px",
    whiteSpace: "nowrap",
    userSelect: "none",
  },
  ".rlabel.still": { opacity: "0.4", transition: "opacity 0.6s" },
});

/**
 * The remote cursors of `file` as the client knows them (every other
 * present participant's cursors in that file).
 * @param {import("./collab-client.mjs").CollabClient} client
 * @param {string} file
 * @returns {RemoteCursor[]}
 */
export function remoteCursorsFor(client, file) {
  const cursors = [];
  for (const p of client.participants.values()) {
    if (p.id === client.me || !p.present || !p.presence || p.presence.status === "offline") continue;
    for (const c of p.presence.cursors || []) {
      if (c.file === file) cursors.push({ id: p.id, name: p.name, colour: p.colour, anchor: c.anchor, head: c.head, typing: p.presence.typing });
    }
  }
  return cursors;
}

/**
 * Binds an editor showing `file` to the session `client` is joined to: local
 * changes become the participant's edits, others' edits come in outside the
 * undo history, and (unless turned off) others' cursors are drawn from
 * their presence and the local caret and visible lines are sent as presence.
 * The editor must start with `client.doc.text(file)`.
 *
 * @param {import("./collab-client.mjs").CollabClient} client
 * @param {{file: string, cursors?: boolean, presence?: boolean, onLocalEdit?: (op: TextOperation) => void}} options
 *   `cursors: false` leaves drawing them to the app (with `setRemoteCursors`);
 *   `presence: false` leaves sending the local caret to the app;
 *   `onLocalEdit` is told of each local edit after the client has it.
 * @returns {import("@codemirror/state").Extension}
 */
export function collab(client, { file, cursors = true, presence = true, onLocalEdit }) {
  const plugin = ViewPlugin.fromClass(
    class {
      constructor(view) {
        this.view = view;
        this.stops = [
          client.on("remote-edit", (edited, op) => {
            if (edited === file) view.dispatch(remoteEdit(op));
          }),
        ];
        if (cursors) {
          // Drawn once the current task is done: never inside an update
          // (sending presence during one reports the local presence), and
          // once for a burst of reports.
          let queued = false;
          const draw = () => {
            if (queued) return;
            queued = true;
            queueMicrotask(() => {
              queued = false;
              if (!this.destroyed) view.dispatch({ effects: setRemoteCursors.of(remoteCursorsFor(client, file)) });
            });
          };
          this.stops.push(client.on("presence", draw), client.on("event", draw));
          draw();
        }
      }
      update(update) {
        for (const tr of update.transactions) {
          if (!tr.docChanged || tr.annotation(fromSession)) continue;
          const op = changesToOperation(tr.changes, tr.startState.doc.length);
          client.edit(file, op);
          onLocalEdit?.(op);
        }
        if (presence && (update.selectionSet || update.docChanged || update.viewportChanged || update.focusChanged)) {
          const { anchor, head } = update.state.selection.main;
          const doc = update.state.doc;
          const { from, to } = update.view.viewport;
          client.setPresence({
            cursor: { file, anchor, head },
            viewport: { file, first_line: doc.lineAt(from).number, last_line: doc.lineAt(to).number },
          });
        }
      }
      destroy() {
        this.destroyed = true;
        for (const stop of this.stops) stop();
      }
    },
  );
  return [EditorState.lineSeparator.of("\n"), remoteCursorsField, remoteCursorTheme, plugin];
}
