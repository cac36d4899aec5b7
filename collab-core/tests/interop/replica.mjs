// A replica peer of a collab session document, written against the
// @automerge/automerge npm package exactly as a browser would use it, driven
// over stdin/stdout by collab-core/tests/automerge_interop.rs.
//
// Protocol: one JSON object per line in, one JSON object per line out, in
// order. Binary data (sync messages, saved documents) is base64.
//
//   {"cmd":"receive","msg":B64}          -> {"ok":true}
//   {"cmd":"generate"}                   -> {"msg":B64|null}
//   {"cmd":"splice","path":P,"pos":N,"del":N,"text":S}
//                                        -> {"ok":true}   (UTF-16 positions)
//   {"cmd":"update_text","path":P,"text":S}
//                                        -> {"ok":true}   (Automerge.updateText)
//   {"cmd":"text","path":P}              -> {"text":S|null}
//   {"cmd":"language"}                   -> {"language":S|null}
//   {"cmd":"save"}                       -> {"doc":B64}
//   {"cmd":"load","doc":B64}             -> {"ok":true}   (also a fresh sync state)
//   {"cmd":"reset_sync"}                 -> {"ok":true}   (as after a reconnect)
//
// Any failure answers {"error":"..."} and leaves the replica as it was, so
// the driver can test refusals and go on.

import * as Automerge from "@automerge/automerge";
import { createInterface } from "node:readline";

let doc = Automerge.init();
let syncState = Automerge.initSyncState();

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const unb64 = (s) => {
  if (typeof s !== "string") throw new Error("expected a base64 string");
  return new Uint8Array(Buffer.from(s, "base64"));
};

// Text files live at doc.files[path]; automerge 3 shows text objects as JS strings.
function fileText(path) {
  const files = doc.files;
  if (files === undefined || files === null) return null;
  const text = files[path];
  return typeof text === "string" ? text : null;
}

function isLowSurrogate(code) {
  return code >= 0xdc00 && code < 0xe000;
}

// The same checks as collab-core's ReplicaClient::splice: a browser editor
// never produces a range outside the text or one that splits a surrogate pair.
function checkRange(text, pos, del) {
  if (!Number.isInteger(pos) || !Number.isInteger(del) || pos < 0 || del < 0) {
    throw new Error("pos and del must be non-negative integers");
  }
  const end = pos + del;
  if (end > text.length) {
    throw new Error(`range ${pos}..${end} is outside the text (${text.length} UTF-16 units)`);
  }
  for (const at of [pos, end]) {
    if (at > 0 && at < text.length && isLowSurrogate(text.charCodeAt(at))) {
      throw new Error(`position ${at} falls inside a surrogate pair`);
    }
  }
}

function handle(req) {
  switch (req.cmd) {
    case "receive": {
      const [next, state] = Automerge.receiveSyncMessage(doc, syncState, unb64(req.msg));
      doc = next;
      syncState = state;
      return { ok: true };
    }
    case "generate": {
      const [state, msg] = Automerge.generateSyncMessage(doc, syncState);
      syncState = state;
      return { msg: msg === null ? null : b64(msg) };
    }
    case "splice": {
      const text = fileText(req.path);
      if (text === null) throw new Error(`no file ${JSON.stringify(req.path)}`);
      const ins = req.text ?? "";
      if (typeof ins !== "string") throw new Error("text must be a string");
      checkRange(text, req.pos, req.del);
      doc = Automerge.change(doc, (d) => {
        Automerge.splice(d, ["files", req.path], req.pos, req.del, ins);
      });
      return { ok: true };
    }
    case "update_text": {
      if (fileText(req.path) === null) throw new Error(`no file ${JSON.stringify(req.path)}`);
      if (typeof req.text !== "string") throw new Error("text must be a string");
      doc = Automerge.change(doc, (d) => {
        Automerge.updateText(d, ["files", req.path], req.text);
      });
      return { ok: true };
    }
    case "text":
      return { text: fileText(req.path) };
    case "language": {
      // A scalar string: automerge 3 shows it as an ImmutableString.
      const lang = doc.language;
      return { language: lang === undefined || lang === null ? null : lang.toString() };
    }
    case "save":
      return { doc: b64(Automerge.save(doc)) };
    case "load":
      doc = Automerge.load(unb64(req.doc));
      syncState = Automerge.initSyncState();
      return { ok: true };
    case "reset_sync":
      syncState = Automerge.initSyncState();
      return { ok: true };
    default:
      throw new Error(`unknown command ${JSON.stringify(req.cmd)}`);
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  let reply;
  try {
    reply = handle(JSON.parse(line));
  } catch (e) {
    reply = { error: e instanceof Error ? e.message : String(e) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
