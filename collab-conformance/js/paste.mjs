// A thin client pastes a large text through a real server while another
// watches: run by the conformance scenario `a_megabyte_paste_reaches_everyone`
// as `node --experimental-websocket paste.mjs BASE SESSION TOKEN_A TOKEN_B SIZE`.
// Prints one JSON line: what each client ended with, and what the server
// refused on the way.
import { DocumentClient, TextOperation } from "../../collab-wire/js/collab-ot.mjs";

const [base, session, tokenA, tokenB, size] = process.argv.slice(2);
const wsBase = base.replace(/^http/, "ws");

function connect(token) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsBase}/ws/session/${session}?token=${token}`);
    const peer = { ws, client: null, errors: [], welcome: null };
    ws.onerror = (e) => reject(new Error(`socket: ${e.message ?? e.type}`));
    ws.onmessage = (ev) => {
      const frame = JSON.parse(ev.data);
      if (frame.type === "welcome") {
        peer.client = new DocumentClient(frame.document, (f) => ws.send(JSON.stringify(f)));
        peer.client.me = frame.you;
        peer.client.onResync = (code) => peer.errors.push(`resync:${code}`);
        resolve(peer);
        return;
      }
      if (frame.type === "error") peer.errors.push(frame.code);
      if (peer.client) peer.client.receive(frame);
    };
    ws.onopen = () => ws.send(JSON.stringify({ type: "join", name: token.slice(0, 8) }));
  });
}

const a = await connect(tokenA);
const b = await connect(tokenB);
let paste = "";
for (let i = 0; paste.length < Number(size); i++) paste += `line ${i}: "quoted" é 😀 \\ tab\t\n`;
const started = Date.now();
a.client.applyLocal("main", new TextOperation().retain(a.client.text("main").length).insert(paste));
// Typing right after the paste, while it is still on its way.
for (const ch of "typed after") {
  a.client.applyLocal("main", new TextOperation().retain(a.client.text("main").length).insert(ch));
}
const deadline = Date.now() + 120_000;
while (Date.now() < deadline) {
  if (!a.client.hasPending && a.client.text("main") === b.client.text("main")) break;
  await new Promise((r) => setTimeout(r, 50));
}
// Then a replay: 3,000 keystrokes as fast as the loop goes, one edit each;
// the client paces itself and nothing may be refused.
const replayStarted = Date.now();
let typed = 0;
for (let i = 0; i < 3000; i++) {
  const at = a.client.text("main").length;
  a.client.applyLocal("main", new TextOperation().retain(at).insert(String.fromCharCode(97 + (i % 26))));
  typed++;
  if (i % 50 === 0) await new Promise((r) => setImmediate(r));
}
const replayDeadline = Date.now() + 120_000;
while (Date.now() < replayDeadline) {
  if (!a.client.hasPending && a.client.text("main") === b.client.text("main")) break;
  await new Promise((r) => setTimeout(r, 50));
}
const out = {
  replay_ms: Date.now() - replayStarted,
  replay_typed: typed,
  ms: Date.now() - started,
  a_len: a.client.text("main").length,
  b_len: b.client.text("main").length,
  same: a.client.text("main") === b.client.text("main"),
  has_paste: b.client.text("main").includes(paste),
  ends_typed: b.client.text("main").includes("typed after"),
  replay_arrived: b.client.text("main").length - a.client.text("main").length === 0,
  pending: a.client.hasPending,
  errors: a.errors.concat(b.errors),
  rev: a.client.rev,
};
console.log(JSON.stringify(out));
a.ws.close();
b.ws.close();
process.exit(0);
