//! Interop between collab-core's automerge documents (Rust automerge 0.6.1)
//! and the `@automerge/automerge` npm package that browsers use: proof that a
//! page running the npm package can be a replica of a collab session.
//!
//! Each test spawns `node tests/interop/replica.mjs`, a replica peer driven
//! over stdin/stdout JSON lines (see that file for the commands), and plays it
//! against a server [`Document`] and, where useful, a Rust [`ReplicaClient`].
//! The npm package and its exact version are pinned by
//! `tests/interop/package.json` and `package-lock.json`; `npm ci` runs once if
//! `tests/interop/node_modules` is missing or holds another version.
//! `@automerge/automerge` 3.5.0 is pinned because it is the release these
//! tests show to interoperate with automerge 0.6.1 both ways (sync messages
//! and saved documents); bump it only with these tests green.
//!
//! Node is required, and npm whenever the package is not installed yet:
//! without them these tests fail, naming what is missing, rather than skip,
//! so that CI cannot pass without the check.
//!
//! All positions are UTF-16 code units on both sides, as in browsers.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use collab_core::{
    Applied, Change, Document, ParticipantId, ReplicaClient, SyncState, TextOperation, Timestamp,
    Version,
};
use serde_json::{json, Value};

/// A file with a precomposed accent, a decomposed one (`e` + U+0301), an
/// emoji (a surrogate pair in UTF-16) and CRLF line ends.
const TEXT: &str = "Café 😀 naïve\r\nre\u{301}sume\u{301}\r\nend\r\n";
const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const REPLICA: ParticipantId = ParticipantId(7);
const THIN: ParticipantId = ParticipantId(8);
/// Rounds of message exchange before a sync is declared stuck.
const MAX_ROUNDS: usize = 32;

// ---- the node replica ------------------------------------------------------------

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

fn npm() -> &'static str {
    if cfg!(windows) {
        "npm.cmd"
    } else {
        "npm"
    }
}

/// Checks for node and installs the npm package once per test run (the
/// tests of this file run on parallel threads of one process).
fn ensure_node_setup() {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = SETUP.get_or_init(node_setup) {
        panic!("automerge interop setup failed: {e}");
    }
}

fn node_setup() -> Result<(), String> {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| {
            format!(
                "`node` could not be run ({e}); Node.js 20 or later is required for these tests"
            )
        })?;
    if !version.status.success() {
        return Err(format!(
            "`node --version` failed: {}",
            String::from_utf8_lossy(&version.stderr)
        ));
    }
    let dir = interop_dir();
    let manifest = std::fs::read_to_string(dir.join("package.json"))
        .map_err(|e| format!("cannot read {}: {e}", dir.join("package.json").display()))?;
    let manifest: Value =
        serde_json::from_str(&manifest).map_err(|e| format!("package.json: {e}"))?;
    let pinned = manifest["dependencies"]["@automerge/automerge"]
        .as_str()
        .ok_or("package.json does not depend on @automerge/automerge")?
        .to_owned();
    let installed =
        std::fs::read_to_string(dir.join("node_modules/@automerge/automerge/package.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["version"].as_str().map(str::to_owned));
    if installed.as_deref() == Some(pinned.as_str()) {
        return Ok(());
    }
    // Missing or another version: install exactly what the lock file says.
    let out = Command::new(npm())
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .output()
        .map_err(|e| {
            format!("`npm` could not be run ({e}); npm is required to install @automerge/automerge")
        })?;
    if !out.status.success() {
        return Err(format!(
            "`npm ci` in {} failed:\n{}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The node replica process: one JSON request per line, one reply per line.
struct JsReplica {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
}

impl JsReplica {
    fn spawn() -> Self {
        ensure_node_setup();
        let dir = interop_dir();
        let mut child = Command::new("node")
            .arg(dir.join("replica.mjs"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node replica: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        // Drained on a thread so that a chatty stderr never blocks node;
        // shown when the replica dies.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = String::new();
            let _ = pipe.read_to_string(&mut buf);
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&buf);
        });
        Self {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Sends a request; `Err` carries the replica's `error` reply.
    fn call(&mut self, request: Value) -> Result<Value, String> {
        let line = format!("{request}\n");
        let sent = self
            .stdin
            .write_all(line.as_bytes())
            .and_then(|()| self.stdin.flush());
        let mut reply = String::new();
        let read = sent.and_then(|()| self.stdout.read_line(&mut reply));
        if !matches!(read, Ok(n) if n > 0) {
            let status = self.child.wait().ok();
            let stderr = self
                .stderr
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            panic!("node replica died on {request} ({read:?}, exit {status:?}):\n{stderr}");
        }
        let reply: Value =
            serde_json::from_str(&reply).unwrap_or_else(|e| panic!("bad reply {reply:?}: {e}"));
        match reply.get("error") {
            Some(e) => Err(e.as_str().unwrap_or_default().to_owned()),
            None => Ok(reply),
        }
    }

    fn ok(&mut self, request: Value) -> Value {
        let shown = request.to_string();
        self.call(request)
            .unwrap_or_else(|e| panic!("node replica refused {shown}: {e}"))
    }

    fn splice(&mut self, path: &str, pos: u32, del: u32, text: &str) {
        self.ok(json!({"cmd": "splice", "path": path, "pos": pos, "del": del, "text": text}));
    }

    fn text(&mut self, path: &str) -> Option<String> {
        self.ok(json!({"cmd": "text", "path": path}))["text"]
            .as_str()
            .map(str::to_owned)
    }

    fn language(&mut self) -> Option<String> {
        self.ok(json!({"cmd": "language"}))["language"]
            .as_str()
            .map(str::to_owned)
    }

    fn save(&mut self) -> Vec<u8> {
        let reply = self.ok(json!({"cmd": "save"}));
        base64_decode(reply["doc"].as_str().expect("doc in save reply"))
    }

    fn load(&mut self, bytes: &[u8]) {
        self.ok(json!({"cmd": "load", "doc": base64_encode(bytes)}));
    }

    fn reset_sync(&mut self) {
        self.ok(json!({"cmd": "reset_sync"}));
    }
}

impl Drop for JsReplica {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A replica the server syncs with: the node one or a Rust [`ReplicaClient`].
trait Peer {
    fn receive(&mut self, message: &[u8]);
    fn generate(&mut self) -> Option<Vec<u8>>;
}

impl Peer for JsReplica {
    fn receive(&mut self, message: &[u8]) {
        self.ok(json!({"cmd": "receive", "msg": base64_encode(message)}));
    }

    fn generate(&mut self) -> Option<Vec<u8>> {
        self.ok(json!({"cmd": "generate"}))["msg"]
            .as_str()
            .map(base64_decode)
    }
}

impl Peer for ReplicaClient {
    fn receive(&mut self, message: &[u8]) {
        ReplicaClient::receive(self, message).expect("rust replica takes the message");
    }

    fn generate(&mut self) -> Option<Vec<u8>> {
        self.poll_message()
    }
}

/// Exchanges messages between the server and each peer (each with its own
/// server-side sync state) until a whole round sends nothing. Returns the
/// versions the server made from the peers' changes, in order.
fn sync_all(server: &mut Document, peers: &mut [(&mut dyn Peer, &mut SyncState)]) -> Vec<Version> {
    let mut versions = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let mut quiet = true;
        for (peer, state) in peers.iter_mut() {
            if let Some(m) = server.generate_sync(state) {
                peer.receive(&m);
                quiet = false;
            }
            if let Some(m) = peer.generate() {
                let (v, _) = server
                    .receive_sync(state, &m, Some(REPLICA), NOW)
                    .expect("server takes the message");
                versions.extend(v);
                quiet = false;
            }
        }
        if quiet {
            return versions;
        }
    }
    panic!("sync did not settle in {MAX_ROUNDS} rounds");
}

fn sync_one(server: &mut Document, state: &mut SyncState, peer: &mut dyn Peer) -> Vec<Version> {
    sync_all(server, &mut [(peer, state)])
}

// ---- helpers -----------------------------------------------------------------------

/// The UTF-16 position of the first `needle` in `text`.
fn u16_pos(text: &str, needle: &str) -> u32 {
    let byte = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {text:?}"));
    text[..byte].encode_utf16().count() as u32
}

fn u16_len(s: &str) -> u32 {
    s.encode_utf16().count() as u32
}

/// What a splice at UTF-16 positions makes of `text`, computed independently
/// of both automerge implementations.
fn spliced(text: &str, pos: u32, del: u32, insert: &str) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    let (pos, end) = (pos as usize, (pos + del) as usize);
    let mut out = units[..pos].to_vec();
    out.extend(insert.encode_utf16());
    out.extend_from_slice(&units[end..]);
    String::from_utf16(&out).expect("splice keeps surrogate pairs whole")
}

/// Replays versions as a thin client does: each must be an edit of `path`,
/// numbered after the last, applied in order with [`TextOperation::apply`].
fn replay(before: &str, path: &str, first_rev: u64, versions: &[Version]) -> String {
    let mut text = before.to_owned();
    for (i, v) in versions.iter().enumerate() {
        assert_eq!(
            v.rev,
            first_rev + i as u64,
            "versions are numbered in order"
        );
        assert_eq!(v.file, path);
        match &v.change {
            Change::Edit { op } => {
                text = op
                    .apply(&text)
                    .unwrap_or_else(|e| panic!("{op:?} does not fit {text:?}: {e}"));
            }
            other => panic!("expected an edit, got {other:?}"),
        }
    }
    text
}

/// A thin client's edit typed against `base`: at `pos`, delete `del` units
/// and insert `insert` (UTF-16 units, as the wire form `[pos, insert, -del]`).
fn thin_op(
    server: &mut Document,
    base: u64,
    (pos, del, insert): (u32, u32, &str),
    oid: &str,
) -> Version {
    let mut op = TextOperation::new();
    op.retain(pos).insert(insert).delete(del);
    match server.apply_operation(THIN, base, "main", op, Some(oid.to_owned()), NOW) {
        Ok(Applied::New(v)) => v,
        other => panic!("thin-client operation not applied: {other:?}"),
    }
}

fn server() -> Document {
    Document::new("python", [("main", TEXT), ("notes.md", "# notes 📝\r\n")]).expect("document")
}

// ---- scenarios -----------------------------------------------------------------------

#[test]
fn a_late_joining_js_replica_gets_the_text() {
    let mut server = server();
    // The session has moved on before the replica joins.
    let emoji_end = u16_pos(TEXT, "😀") + 2;
    thin_op(&mut server, 0, (emoji_end, 0, " 🎈"), "t-1");
    let mut js = JsReplica::spawn();
    let mut state = SyncState::new();
    let versions = sync_one(&mut server, &mut state, &mut js);
    assert!(
        versions.is_empty(),
        "a replica that only reads makes no versions: {versions:?}"
    );

    let main = server.text("main").expect("main");
    assert_eq!(main, spliced(TEXT, emoji_end, 0, " 🎈"));
    assert_eq!(js.text("main").as_deref(), Some(main.as_str()));
    assert_eq!(js.text("notes.md").as_deref(), Some("# notes 📝\r\n"));
    assert_eq!(js.language().as_deref(), Some("python"));
    // JS string lengths are UTF-16 units, as the server counts them.
    let js_len = js.ok(json!({"cmd": "text", "path": "main"}))["text"]
        .as_str()
        .map(|s| s.encode_utf16().count());
    assert_eq!(js_len, server.len_utf16("main").map(|n| n as usize));
}

#[test]
fn js_replica_edits_reach_the_server_as_utf16_operations() {
    let mut server = server();
    let mut js = JsReplica::spawn();
    let mut state = SyncState::new();
    sync_one(&mut server, &mut state, &mut js);
    let before = server.text("main").expect("main");
    let rev = server.rev();

    // Insert right after the emoji (a surrogate pair).
    let after_emoji = u16_pos(&before, "😀") + u16_len("😀");
    js.splice("main", after_emoji, 0, "🎉!");
    let mut expected = spliced(&before, after_emoji, 0, "🎉!");
    // Delete across the precomposed accent: "aïv" of "naïve".
    let at = u16_pos(&expected, "aïv");
    js.splice("main", at, 3, "");
    expected = spliced(&expected, at, 3, "");
    // Delete across the decomposed accent and the CRLF after it: "e\u{301}\r\n".
    let at = u16_pos(&expected, "me\u{301}\r\n") + 1;
    js.splice("main", at, 4, "E");
    expected = spliced(&expected, at, 4, "E");
    // Splitting a surrogate pair is refused, as a browser editor never does it.
    assert!(js
        .call(
            json!({"cmd": "splice", "path": "main", "pos": after_emoji - 1, "del": 0, "text": "x"})
        )
        .is_err());
    assert_eq!(js.text("main").as_deref(), Some(expected.as_str()));
    assert_eq!(expected, "Café 😀🎉! ne\r\nre\u{301}sumEend\r\n");

    let versions = sync_one(&mut server, &mut state, &mut js);
    assert_eq!(server.text("main").as_deref(), Some(expected.as_str()));
    // The first version is the insert, at the UTF-16 position the replica
    // used (7: "Café " is 5 units, the emoji 2), not a char or byte offset.
    let mut first = TextOperation::new();
    first.retain(after_emoji).insert("🎉!");
    assert_eq!(after_emoji, 7);
    assert_eq!(
        versions.first().map(|v| &v.change),
        Some(&Change::Edit { op: first })
    );
    assert_eq!(replay(&before, "main", rev + 1, &versions), expected);
    assert!(versions
        .iter()
        .all(|v| v.author == Some(REPLICA) && v.oid.is_none()));
    assert_eq!(server.rev(), rev + versions.len() as u64);
    // The history a thin client catches up from agrees too.
    let (history, more) = server.versions(rev, 100).unwrap();
    assert!(!more);
    assert_eq!(history, versions.as_slice());
    assert_eq!(
        server.text_at("main", rev).expect("old rev").as_deref(),
        Some(before.as_str())
    );
    // And the other file is untouched.
    assert_eq!(js.text("notes.md"), server.text("notes.md"));
}

#[test]
fn concurrent_thin_client_js_and_rust_replica_edits_converge() {
    let mut server = server();
    let mut js = JsReplica::spawn();
    let mut rust = ReplicaClient::new();
    let (mut js_state, mut rust_state) = (SyncState::new(), SyncState::new());
    sync_all(
        &mut server,
        &mut [(&mut js, &mut js_state), (&mut rust, &mut rust_state)],
    );
    assert_eq!(rust.text("main").as_deref(), Some(TEXT));
    let base = server.rev();
    let after_emoji = u16_pos(TEXT, "😀") + 2;

    // All three edit the same spot at once, without having seen each other.
    let thin = thin_op(&mut server, base, (after_emoji, 0, "X"), "t-1");
    assert_eq!(thin.rev, base + 1);
    js.splice("main", after_emoji, 0, "Y");
    js.splice("main", u16_pos(TEXT, "é"), 1, "e"); // replaces the accent
    rust.splice("main", after_emoji, 0, "Z")
        .expect("rust replica splice");
    rust.splice("main", u16_pos(TEXT, "😀"), 2, "🙂")
        .expect("rust replica splice");

    let from_replicas = sync_all(
        &mut server,
        &mut [(&mut js, &mut js_state), (&mut rust, &mut rust_state)],
    );
    let merged = server.text("main").expect("main");
    assert_eq!(js.text("main").as_deref(), Some(merged.as_str()));
    assert_eq!(rust.text("main").as_deref(), Some(merged.as_str()));
    for piece in ["X", "Y", "Z", "🙂", "Cafe "] {
        assert!(merged.contains(piece), "{piece:?} lost from {merged:?}");
    }
    assert!(
        !merged.contains('😀') && !merged.contains('é'),
        "{merged:?}"
    );
    // A thin client that saw only its own edit follows along from its revision.
    let after_thin = spliced(TEXT, after_emoji, 0, "X");
    assert_eq!(
        replay(&after_thin, "main", base + 2, &from_replicas),
        merged
    );

    // That thin client types again, against the revision it knows (base + 1):
    // at the start of the second line. Rebased over the replicas' edits, it
    // lands there, and the replicas get it.
    let line2 = u16_pos(&after_thin, "\r\n") + 2;
    thin_op(&mut server, base + 1, (line2, 0, "W"), "t-2");
    sync_all(
        &mut server,
        &mut [(&mut js, &mut js_state), (&mut rust, &mut rust_state)],
    );
    let merged = server.text("main").expect("main");
    assert!(
        merged.contains("\r\nWre\u{301}sume\u{301}\r\n"),
        "{merged:?}"
    );
    assert_eq!(js.text("main").as_deref(), Some(merged.as_str()));
    assert_eq!(rust.text("main").as_deref(), Some(merged.as_str()));
    // The whole history replays to the same text.
    let (history, _) = server.versions(0, 1_000).unwrap();
    assert_eq!(replay(TEXT, "main", 1, &history), merged);
}

#[test]
fn offline_js_edits_merge_after_a_reconnect() {
    let mut server = server();
    let mut js = JsReplica::spawn();
    let mut state = SyncState::new();
    sync_one(&mut server, &mut state, &mut js);

    // Disconnected: the replica edits; what it tried to send is lost.
    js.splice("main", 0, 0, "# offline 📴\r\n");
    let naive = u16_pos(&js.text("main").expect("main"), "naïve");
    js.splice("main", naive, 5, "NAIVE");
    let end = u16_len(&js.text("main").expect("main"));
    js.splice("main", end, 0, "tail 🐢");
    let _lost = js.generate();
    // Meanwhile the session goes on without it.
    let after_emoji = u16_pos(TEXT, "😀") + 2;
    let mut text = TEXT.to_owned();
    for (i, piece) in ["[srv1]", "[srv2 ✓]"].into_iter().enumerate() {
        let rev = server.rev();
        let v = thin_op(&mut server, rev, (after_emoji, 0, piece), &format!("t-{i}"));
        text = replay(&text, "main", v.rev, std::slice::from_ref(&v));
    }
    let end_line = u16_pos(&text, "end");
    let rev = server.rev();
    thin_op(&mut server, rev, (end_line, 3, "END"), "t-9");
    let _lost = server.generate_sync(&mut state);
    let before = server.text("main").expect("main");
    let rev = server.rev();

    // Reconnect: a fresh sync state on both sides.
    let mut state = SyncState::new();
    js.reset_sync();
    let versions = sync_one(&mut server, &mut state, &mut js);
    let merged = server.text("main").expect("main");
    assert_eq!(js.text("main").as_deref(), Some(merged.as_str()));
    assert_eq!(replay(&before, "main", rev + 1, &versions), merged);
    assert!(merged.starts_with("# offline 📴\r\nCafé 😀"), "{merged:?}");
    for piece in ["[srv1]", "[srv2 ✓]", "NAIVE", "\r\nEND\r\ntail 🐢"] {
        assert!(merged.contains(piece), "{piece:?} lost from {merged:?}");
    }
    assert!(!merged.contains("naïve"), "{merged:?}");
    assert_eq!(js.text("notes.md"), server.text("notes.md"));
}

#[test]
fn saved_documents_load_on_the_other_side() {
    // Rust save -> JS load.
    let mut server = server();
    let after_emoji = u16_pos(TEXT, "😀") + 2;
    thin_op(&mut server, 0, (after_emoji, 0, " ✨"), "t-1");
    let mut js = JsReplica::spawn();
    js.load(&server.save());
    assert_eq!(js.text("main"), server.text("main"));
    assert_eq!(js.text("notes.md"), server.text("notes.md"));
    assert_eq!(js.language().as_deref(), Some("python"));

    // JS edits, saves -> Rust load.
    let main = js.text("main").expect("main");
    let at = u16_pos(&main, "✨") + 1;
    js.splice("main", at, 0, "🦀");
    let expected = spliced(&main, at, 0, "🦀");
    assert_eq!(js.text("main").as_deref(), Some(expected.as_str()));
    let mut loaded = Document::load(&js.save()).expect("Document::load takes a JS save");
    assert_eq!(loaded.text("main").as_deref(), Some(expected.as_str()));
    assert_eq!(loaded.text("notes.md"), server.text("notes.md"));
    assert_eq!(loaded.language(), "python");
    assert_eq!(loaded.rev(), 0);
    // The loaded document counts UTF-16 units: a thin client's edit after the new emoji lands there.
    let after_crab = u16_pos(&expected, "🦀") + 2;
    thin_op(&mut loaded, 0, (after_crab, 0, "|"), "t-2");
    let expected = spliced(&expected, after_crab, 0, "|");
    assert_eq!(loaded.text("main").as_deref(), Some(expected.as_str()));

    // The two share their history: the JS replica and the loaded document sync
    // on fresh states and meet.
    js.reset_sync();
    js.splice("main", 0, 0, ">");
    let mut state = SyncState::new();
    sync_one(&mut loaded, &mut state, &mut js);
    let merged = format!(">{expected}");
    assert_eq!(loaded.text("main").as_deref(), Some(merged.as_str()));
    assert_eq!(js.text("main").as_deref(), Some(merged.as_str()));

    // A JS replica that joined by sync (not by load) saves a document Rust loads too.
    let mut late = JsReplica::spawn();
    sync_one(&mut server, &mut SyncState::new(), &mut late);
    let reloaded = Document::load(&late.save()).expect("Document::load takes a synced JS save");
    assert_eq!(reloaded.files(), server.files());
    assert_eq!(reloaded.language(), "python");
}

#[test]
fn node_replica_reports_errors_and_goes_on() {
    let mut js = JsReplica::spawn();
    assert!(js
        .call(json!({"cmd": "splice", "path": "main", "pos": 0, "del": 0, "text": "x"}))
        .is_err());
    assert!(js
        .call(json!({"cmd": "receive", "msg": base64_encode(b"not a sync message")}))
        .is_err());
    assert!(js.call(json!({"cmd": "nope"})).is_err());
    let mut server = server();
    sync_one(&mut server, &mut SyncState::new(), &mut js);
    assert!(js
        .call(json!({"cmd": "splice", "path": "main", "pos": 999, "del": 0, "text": "x"}))
        .is_err());
    assert_eq!(js.text("main").as_deref(), Some(TEXT));
}

// ---- base64 (standard alphabet, padded), to keep this test free of new dependencies ----

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64
            .iter()
            .position(|&x| x == c)
            .unwrap_or_else(|| panic!("bad base64 in {s:?}"));
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn base64_round_trips() {
    for n in 0..10u8 {
        let bytes: Vec<u8> = (0..n)
            .map(|i| i.wrapping_mul(97).wrapping_add(250))
            .collect();
        assert_eq!(base64_decode(&base64_encode(&bytes)), bytes);
    }
    assert_eq!(base64_encode(b"hi!?"), "aGkhPw==");
}
