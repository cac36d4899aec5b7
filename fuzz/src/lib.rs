//! # collab-fuzz
//!
//! What the fuzz targets do with the fuzzer's bytes, as plain functions: the
//! libFuzzer binaries in `fuzz_targets/` call them (`fuzz/run.sh TARGET`
//! builds and runs one on the stable toolchain), and `tests/replay.rs` feeds
//! them every committed corpus seed and crasher in an ordinary `cargo test`,
//! so a crash found once stays fixed.
//!
//! Each function panics only when collab breaks a promise: a panic on input
//! from the network, or a stated property that does not hold.

use arbitrary::{Arbitrary, Unstructured};
use collab_core::ids::ConnectionId;
use collab_core::protocol::decode_client_frame;
use collab_core::{
    Document, Identity, NewSession, Session, SessionConfig, SessionId, SyncState, TextOperation,
    Timestamp, Transmit,
};
use serde_json::{json, Value};

/// The frame limit the targets decode with (the default session's).
const MAX_FRAME: usize = 64 * 1024;

/// Decodes arbitrary bytes as a client's text frame. Never panics; a frame
/// that decodes re-encodes to one that decodes the same.
pub fn frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = decode_client_frame(text, MAX_FRAME) {
        let again = serde_json::to_string(&message.frame).expect("a decoded frame encodes");
        let mut value: Value = serde_json::from_str(&again).expect("valid JSON");
        if let (Some(rid), Some(object)) = (message.rid, value.as_object_mut()) {
            object.insert("rid".into(), json!(rid));
        }
        let round = decode_client_frame(&value.to_string(), usize::MAX)
            .expect("a re-encoded frame decodes");
        assert_eq!(round.frame, message.frame, "round trip of {text}");
    }
}

/// A text operation built from the fuzzer's choices.
#[derive(Debug, Arbitrary)]
enum Piece {
    Retain(u8),
    Insert(String),
    Delete(u8),
}

fn operation(pieces: &[Piece]) -> TextOperation {
    let mut op = TextOperation::new();
    for piece in pieces {
        match piece {
            Piece::Retain(n) => op.retain(u32::from(*n)),
            Piece::Insert(s) => op.insert(s),
            Piece::Delete(n) => op.delete(u32::from(*n)),
        };
    }
    op
}

/// Two concurrent operations on one text, as the server sees them.
#[derive(Debug, Arbitrary)]
struct Concurrent {
    text: String,
    a: Vec<Piece>,
    b: Vec<Piece>,
    /// Also read operations from the wire format.
    wire: Option<String>,
}

/// Applies, transforms and composes operations. Never panics; where both
/// operations apply to the text, transforming them converges (both orders
/// give one text) and composing equals applying in turn.
pub fn text_operation(data: &[u8]) {
    let Ok(input) = Concurrent::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    if let Some(wire) = &input.wire {
        if let Ok(op) = serde_json::from_str::<TextOperation>(wire) {
            let _ = op.apply(&input.text);
            let again: TextOperation =
                serde_json::from_value(serde_json::to_value(&op).expect("encodes"))
                    .expect("an encoded operation decodes");
            assert_eq!(again, op);
        }
    }
    let (a, b) = (operation(&input.a), operation(&input.b));
    let (Ok(after_a), Ok(after_b)) = (a.apply(&input.text), b.apply(&input.text)) else {
        return;
    };
    let (a2, b2) = TextOperation::transform(&a, &b);
    let left = b2.apply(&after_a).expect("b' applies after a");
    let right = a2.apply(&after_b).expect("a' applies after b");
    assert_eq!(left, right, "transform converges");
    if let Ok(ab) = TextOperation::compose(&a, &b2) {
        assert_eq!(ab.apply(&input.text).expect("a;b' applies"), left);
    }
}

/// One step of a session's life.
#[derive(Debug, Arbitrary)]
enum Step {
    Connect {
        user: u8,
    },
    Join {
        conn: u8,
        replica: bool,
        rev: Option<u8>,
        since: Option<u8>,
    },
    Frame {
        conn: u8,
        frame: FrameChoice,
    },
    Text {
        conn: u8,
        text: String,
    },
    Binary {
        conn: u8,
        bytes: Vec<u8>,
    },
    Disconnect {
        conn: u8,
    },
    Wait {
        millis: u32,
    },
}

/// A client frame of a known type with fuzzed fields.
#[derive(Debug, Arbitrary)]
enum FrameChoice {
    TextOp {
        rev: u8,
        file: bool,
        op: Vec<Piece>,
        oid: Option<String>,
    },
    Chat {
        text: String,
        line: Option<u8>,
        reply_to: Option<u8>,
        cid: Option<String>,
    },
    Edit {
        message: u8,
        text: String,
    },
    Delete {
        message: u8,
    },
    React {
        message: u8,
        emoji: String,
    },
    Presence {
        line: u16,
        ch: u16,
        typing: bool,
    },
    SetRole {
        participant: u8,
        role: u8,
    },
    Kick {
        participant: u8,
        ban_address: bool,
    },
    Update {
        title: String,
        language: String,
    },
    FileCreate {
        file: String,
        text: String,
    },
    FileRemove {
        file: String,
    },
    History {
        after: u8,
    },
    TextAt {
        rev: u8,
    },
    Run {
        stdout: String,
    },
    Leave,
    End,
}

impl FrameChoice {
    fn to_json(&self, rid: u64) -> Value {
        let role = |r: &u8| ["host", "editor", "viewer"][usize::from(*r % 3)];
        let frame = match self {
            FrameChoice::TextOp { rev, file, op, oid } => json!({
                "type": "text_op", "rev": rev, "file": if *file { "main" } else { "extra.js" },
                "op": operation(op), "oid": oid,
            }),
            FrameChoice::Chat {
                text,
                line,
                reply_to,
                cid,
            } => json!({
                "type": "chat_send", "text": text, "reply_to": reply_to, "cid": cid,
                "anchor": line.map(|l| json!({"file": "main", "line": l})),
            }),
            FrameChoice::Edit { message, text } => {
                json!({"type": "chat_edit", "message": message, "text": text})
            }
            FrameChoice::Delete { message } => json!({"type": "chat_delete", "message": message}),
            FrameChoice::React { message, emoji } => {
                json!({"type": "react", "message": message, "emoji": emoji})
            }
            FrameChoice::Presence { line, ch, typing } => json!({
                "type": "presence", "typing": typing,
                "cursor": {"file": "main", "anchor": {"line": line, "ch": ch}, "head": {"line": line, "ch": ch}},
            }),
            FrameChoice::SetRole {
                participant,
                role: r,
            } => {
                json!({"type": "set_role", "participant": participant, "role": role(r)})
            }
            FrameChoice::Kick {
                participant,
                ban_address,
            } => {
                json!({"type": "kick", "participant": participant, "ban_address": ban_address})
            }
            FrameChoice::Update { title, language } => {
                json!({"type": "update_session", "title": title, "language": language})
            }
            FrameChoice::FileCreate { file, text } => {
                json!({"type": "file_create", "file": file, "text": text})
            }
            FrameChoice::FileRemove { file } => json!({"type": "file_remove", "file": file}),
            FrameChoice::History { after } => json!({"type": "history", "after": after}),
            FrameChoice::TextAt { rev } => json!({"type": "text_at", "file": "main", "rev": rev}),
            FrameChoice::Run { stdout } => json!({"type": "run_output", "stdout": stdout}),
            FrameChoice::Leave => json!({"type": "leave"}),
            FrameChoice::End => json!({"type": "end_session"}),
        };
        let mut frame = frame;
        if let Some(object) = frame.as_object_mut() {
            object.retain(|_, v| !v.is_null());
            object.insert("rid".into(), json!(rid));
        }
        frame
    }
}

/// Drives one session with arbitrary connects, frames (well-formed and not),
/// sync bytes, disconnects and time steps. Never panics; after every step
/// the session's deadline is not in the past, nothing is sent to a closed
/// connection, and the REST view of the code matches the document.
pub fn session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(steps) = Vec::<Step>::arbitrary(&mut u) else {
        return;
    };
    let host = Identity::new("host", "Host");
    let config = {
        let mut c = SessionConfig::default();
        c.frames_per_second = 1_000_000;
        c.frame_burst = 1_000_000;
        c
    };
    let new = NewSession {
        code: "fn main() {}\n".into(),
        ..NewSession::default()
    };
    let mut now = Timestamp::from_millis(1_700_000_000_000);
    let Ok(mut session) = Session::new(SessionId::from_bytes([7; 16]), new, &host, config, now)
    else {
        panic!("the session starts");
    };
    let mut open: Vec<ConnectionId> = Vec::new();
    let mut closed: std::collections::HashSet<ConnectionId> = std::collections::HashSet::new();
    let mut next = 1u64;
    let pick = |open: &[ConnectionId], n: u8| -> Option<ConnectionId> {
        (!open.is_empty()).then(|| open[usize::from(n) % open.len()])
    };
    for (rid, step) in steps.into_iter().take(400).enumerate() {
        match step {
            Step::Connect { user } => {
                let conn = ConnectionId(next);
                next += 1;
                let who = if user % 4 == 0 {
                    host.clone()
                } else {
                    Identity::new(format!("user-{user}"), format!("User {user}"))
                };
                let address = Some(std::net::IpAddr::from([127, 0, 0, user % 3]));
                if session.connect_from(conn, who, address, now).is_ok() {
                    open.push(conn);
                }
            }
            Step::Join {
                conn,
                replica,
                rev,
                since,
            } => {
                if let Some(conn) = pick(&open, conn) {
                    let frame = json!({
                        "type": "join", "mode": if replica { "replica" } else { "thin" },
                        "rev": rev, "since": since,
                    });
                    session.handle_text(conn, &frame.to_string(), now);
                }
            }
            Step::Frame { conn, frame } => {
                if let Some(conn) = pick(&open, conn) {
                    let text = frame.to_json(rid as u64).to_string();
                    session.handle_text(conn, &text, now);
                }
            }
            Step::Text { conn, text } => {
                if let Some(conn) = pick(&open, conn) {
                    session.handle_text(conn, &text, now);
                }
            }
            Step::Binary { conn, bytes } => {
                if let Some(conn) = pick(&open, conn) {
                    session.handle_binary(conn, &bytes, now);
                }
            }
            Step::Disconnect { conn } => {
                if let Some(conn) = pick(&open, conn) {
                    open.retain(|c| *c != conn);
                    session.disconnect(conn, now);
                }
            }
            Step::Wait { millis } => {
                now = now.plus(std::time::Duration::from_millis(u64::from(
                    millis % 120_000,
                )));
                if session.poll_timeout().is_some_and(|t| t <= now) {
                    session.handle_timeout(now);
                    assert!(
                        session.poll_timeout().is_none_or(|t| t > now),
                        "handle_timeout left a deadline in the past"
                    );
                }
            }
        }
        while let Some(transmit) = session.poll_transmit() {
            match transmit {
                Transmit::Send { to, frame } => {
                    for conn in &to {
                        assert!(!closed.contains(conn), "a frame after close: {frame:?}");
                    }
                    let _ = frame.to_json();
                }
                Transmit::Close { conn, .. } => {
                    closed.insert(conn);
                    open.retain(|c| *c != conn);
                    session.disconnect(conn, now);
                }
                Transmit::SendBinary { to, .. } => {
                    assert!(!closed.contains(&to), "sync bytes after close");
                }
                Transmit::Authenticate { .. } => {}
                Transmit::LoadHistory { .. } => {
                    panic!("a session made here holds its whole history")
                }
            }
        }
        assert_eq!(
            session.code(),
            session.document().text("main").unwrap_or_default(),
            "the REST view follows the document"
        );
    }
}

/// A document of a few files and one edit, for the sync target to start from.
fn sync_document() -> Document {
    Document::new(
        "javascript",
        [("main", "let x = 1;\n"), ("notes.md", "é😀\n")],
    )
    .expect("a valid document")
}

/// Feeds arbitrary bytes to a document as a replica's sync messages (and as
/// a saved document). Never panics; a refused message changes nothing.
pub fn document_sync(data: &[u8]) {
    let _ = Document::load(data);
    let mut doc = sync_document();
    let mut state = SyncState::new();
    let now = Timestamp::from_millis(1_700_000_000_000);
    // The bytes as one message, then split in two at a fuzzed point.
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    for message in [data, &data[..split], &data[split..]] {
        let before = doc.files();
        let rev = doc.rev();
        match doc.receive_sync(&mut state, message, None, now) {
            Ok(_) => {
                let _ = doc.generate_sync(&mut state);
            }
            Err(_) => {
                assert_eq!(doc.files(), before, "a refused message changed the files");
                assert_eq!(doc.rev(), rev, "a refused message moved the revision");
            }
        }
    }
}
