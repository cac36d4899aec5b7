// The CodeMirror binding (collab-wire/js/collab-codemirror.mjs) with the
// vendored CodeMirror, in node: editor states only (no DOM). Conversions
// between CodeMirror changes and collab-ot operations, others' edits kept
// out of the undo history, and remote cursors that move with edits.
// Needs `--import ./tests/client/import-map.mjs`.

import assert from "node:assert/strict";
import { test } from "node:test";

import { history, undo, redo } from "@codemirror/commands";
import { EditorState } from "@codemirror/state";
import {
  changesToOperation,
  operationToChanges,
  remoteCursorsField,
  remoteEdit,
  setRemoteCursors,
} from "../../../../collab-wire/js/collab-codemirror.mjs";
import { TextOperation } from "../../../../collab-wire/js/collab-ot.mjs";

const newline = EditorState.lineSeparator.of("\n");

/** A deterministic pseudo-random source. */
function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A random operation on `text` (inserts with emoji and line breaks, deletes). */
function randomOperation(text, rnd) {
  const op = new TextOperation();
  let pos = 0;
  while (pos < text.length) {
    const r = rnd();
    const n = Math.min(text.length - pos, 1 + Math.floor(rnd() * 5));
    if (r < 0.5) op.retain(n);
    else if (r < 0.75) op.delete(n);
    else {
      op.insert(["a", "\n", "😀", "é", "\r\n", "xyz"][Math.floor(rnd() * 6)]);
      continue;
    }
    pos += n;
  }
  if (rnd() < 0.5) op.insert("end");
  return op;
}

test("operations and change sets convert both ways over UTF-16 offsets", () => {
  const rnd = random(7);
  let text = "fn main() {\n    println!(\"😀 hi\");\r\n}\n";
  let applied = 0;
  for (let i = 0; i < 500; i++) {
    const op = randomOperation(text, rnd);
    let expected;
    try {
      expected = op.apply(text);
    } catch {
      // The random cut fell inside a surrogate pair: collab-ot refuses it.
      continue;
    }
    const state = EditorState.create({ doc: text, extensions: newline });
    const tr = state.update({ changes: operationToChanges(op) });
    assert.equal(tr.state.doc.toString(), expected, `operation ${i} applied as changes`);
    const back = changesToOperation(tr.changes, text.length);
    assert.equal(back.apply(text), expected, `changes ${i} back as an operation`);
    applied++;
    text = expected.length > 2000 ? expected.slice(0, 100) : expected;
  }
  assert.ok(applied > 250, `only ${applied} of 500 operations applied`);
});

test("a CR is a character, so offsets are the document's", () => {
  const text = "a\r\nb";
  const state = EditorState.create({ doc: text, extensions: newline });
  assert.equal(state.doc.length, 4);
  assert.equal(state.doc.toString(), text);
  const op = new TextOperation().retain(3).insert("X").retain(1);
  assert.equal(state.update({ changes: operationToChanges(op) }).state.doc.toString(), "a\r\nXb");
});

test("undo takes back one's own typing only, moved over others' edits", () => {
  let state = EditorState.create({ doc: "let x = 1;\n", extensions: [newline, history()] });
  const apply = (spec) => {
    state = state.update(spec).state;
  };
  // The local participant types at the end of line 1.
  apply({ changes: { from: 10, insert: " // mine" }, userEvent: "input.type" });
  // Someone else inserts at the start, twice.
  apply(remoteEdit(new TextOperation().insert("// theirs\n").retain(state.doc.length)));
  apply(remoteEdit(new TextOperation().retain(state.doc.length).insert("more\n")));
  assert.equal(state.doc.toString(), "// theirs\nlet x = 1; // mine\nmore\n");
  const dispatch = (tr) => {
    state = tr.state;
  };
  assert.ok(undo({ state, dispatch }));
  assert.equal(state.doc.toString(), "// theirs\nlet x = 1;\nmore\n", "only the local typing is undone");
  assert.equal(undo({ state, dispatch }), false, "others' edits are not on the local history");
  assert.ok(redo({ state, dispatch }));
  assert.equal(state.doc.toString(), "// theirs\nlet x = 1; // mine\nmore\n");
});

test("the local changes of a transaction become one operation the server can apply", () => {
  const state = EditorState.create({ doc: "abc\ndef\n", extensions: [newline, EditorState.allowMultipleSelections.of(true)] });
  // Two carets typing at once (multi-cursor).
  const tr = state.update({ changes: [{ from: 1, insert: "X" }, { from: 5, to: 6, insert: "Y" }] });
  const op = changesToOperation(tr.changes, state.doc.length);
  // Canonical: no trailing retain, so it spans at most the document.
  assert.ok(op.baseLength <= state.doc.length);
  assert.equal(op.apply("abc\ndef\n"), "aXbc\ndYf\n");
});

test("remote cursors are drawn where they are and move with edits", () => {
  let state = EditorState.create({ doc: "one\ntwo\nthree\n", extensions: [newline, remoteCursorsField] });
  state = state.update({
    effects: setRemoteCursors.of([{ id: 2, name: "Grace", colour: "#ff0000", anchor: 4, head: 7 }]),
  }).state;
  const ranges = () => {
    const out = [];
    state.field(remoteCursorsField).between(0, state.doc.length, (from, to, deco) => {
      out.push([from, to, deco.spec.class ?? deco.spec.widget?.kind]);
    });
    return out;
  };
  // The selection (4..7), the caret at 7, the name after the end of line 2.
  assert.deepEqual(ranges(), [
    [4, 7, "rsel"],
    [7, 7, "rcaret"],
    [7, 7, "rlabel"],
  ]);
  // Someone types at the start: everything moves by two.
  state = state.update(remoteEdit(new TextOperation().insert("> ").retain(state.doc.length))).state;
  assert.deepEqual(ranges(), [
    [6, 9, "rsel"],
    [9, 9, "rcaret"],
    [9, 9, "rlabel"],
  ]);
  // Positions past the end (stale presence) are clamped, not thrown on.
  state = state.update({ effects: setRemoteCursors.of([{ id: 3, name: "Lin", colour: "red", anchor: 999, head: 999 }]) }).state;
  assert.deepEqual(ranges().map(([from]) => from), [state.doc.length, state.doc.length]);
});
