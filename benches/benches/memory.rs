//! What a live session holds per edit, beside what automerge alone holds for
//! the same edits: `cargo bench -p collab-benches --bench memory`.
//!
//! The figures are bytes live on the heap as jemalloc counts them (not RSS,
//! which also counts what the allocator keeps). Each run types `EDITS` inserts of 8 characters (`[t.seq]`-like
//! markers, as peerbench types) at pseudo-random positions of one file,
//! starting from an empty text, as:
//!
//! - automerge alone (the pinned 0.6 and the newest): an `AutoCommit` text,
//!   one `splice_text` per edit, a commit after every edit or every 16. The
//!   session commits on a timer but also whenever the author changes, which
//!   with two typists taking turns is every edit;
//! - `Document`: collab's document, one thin-client operation per edit;
//! - `Session`: a whole session with 10 joined connections and 2 typists,
//!   one `text_op` frame per edit, every outgoing frame drained.

use collab_core::ids::ConnectionId;
use collab_core::{Document, ParticipantId, TextOperation, Timestamp};

// jemalloc counts the bytes the program has allocated and not freed
// (`stats.allocated`), which is what these figures are: the workspace
// forbids the unsafe code a counting allocator of its own would need.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn live() -> usize {
    tikv_jemalloc_ctl::epoch::advance().expect("jemalloc epoch");
    tikv_jemalloc_ctl::stats::allocated::read().expect("jemalloc stats")
}

const EDITS: u32 = 10_000;
const MARKER_LEN: u32 = 8;

/// The position of edit `i` in a text of `len` characters: a fixed LCG, so
/// every run types the same edits.
struct Positions(u64);

impl Positions {
    fn next(&mut self, len: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % (u64::from(len) + 1)) as u32
    }
}

fn marker(i: u32) -> String {
    format!("[{:06x}]", i % 0xff_ffff)
}

/// A function typing the bench's edits into an automerge text alone, with
/// a commit every `commit_every` edits; one per automerge version measured.
macro_rules! automerge_alone {
    ($name:ident, $automerge:ident) => {
        fn $name(commit_every: u32) -> usize {
            use $automerge::transaction::Transactable as _;
            use $automerge::ReadDoc as _;
            let before = live();
            let mut doc =
                $automerge::AutoCommit::new_with_encoding($automerge::TextEncoding::Utf16CodeUnit);
            let text = doc
                .put_object($automerge::ROOT, "text", $automerge::ObjType::Text)
                .expect("text");
            let mut at = Positions(1);
            let mut len = 0;
            for i in 0..EDITS {
                let pos = at.next(len / MARKER_LEN) * MARKER_LEN;
                doc.splice_text(&text, pos as usize, 0, &marker(i))
                    .expect("splice");
                len += MARKER_LEN;
                if i % commit_every == commit_every - 1 {
                    doc.commit();
                }
            }
            doc.commit();
            assert_eq!(doc.length(&text), (EDITS * MARKER_LEN) as usize);
            let held = live() - before;
            drop(doc);
            held
        }
    };
}

automerge_alone!(automerge_06_alone, automerge_06);
automerge_alone!(automerge_12_alone, automerge);

fn document() -> usize {
    let before = live();
    let mut doc = Document::new("text", [("main", "")]).expect("document");
    let mut at = Positions(1);
    let mut len = 0;
    let now = Timestamp::from_millis(1_700_000_000_000);
    for i in 0..EDITS {
        let pos = at.next(len / MARKER_LEN) * MARKER_LEN;
        let op = insert(pos, &marker(i), len);
        doc.apply_operation(
            ParticipantId(1 + i % 2),
            doc.rev(),
            "main",
            op,
            Some(format!("o{i}")),
            now,
        )
        .expect("edit");
        len += MARKER_LEN;
        if i % 16 == 15 {
            doc.commit();
        }
    }
    doc.commit();
    assert_eq!(doc.len_utf16("main"), Some(EDITS * MARKER_LEN));
    let held = live() - before;
    drop(doc);
    held
}

fn session() -> usize {
    let before = live();
    // Ten joined on connections 1..=10; the first two type, taking turns.
    let mut session = collab_benches::session(10);
    let mut now = collab_benches::T0;
    let mut at = Positions(1);
    let mut len = 0;
    for i in 0..EDITS {
        let pos = at.next(len / MARKER_LEN) * MARKER_LEN;
        let op = insert(pos, &marker(i), len);
        let frame = serde_json::json!({
            "type": "text_op", "file": "main", "rev": session.position().1,
            "op": op, "oid": format!("o{i}"),
        });
        session.handle_text(ConnectionId(1 + u64::from(i % 2)), &frame.to_string(), now);
        len += MARKER_LEN;
        // Two typists at 5 edits a second each.
        now = now.plus(std::time::Duration::from_millis(100));
        session.handle_timeout(now);
        collab_benches::drain(&mut session);
    }
    now = now.plus(std::time::Duration::from_secs(5));
    session.handle_timeout(now);
    collab_benches::drain(&mut session);
    assert_eq!(session.code().len(), (EDITS * MARKER_LEN) as usize);
    let held = live() - before;
    drop(session);
    held
}

/// A session with 5 joined whose first member types the trace's first
/// `edits` edits, one `text_op` frame each with an operation id, the store
/// handed its changes after each (as the hub does): bytes held after.
fn trace_session(trace: &collab_benches::Trace, edits: usize) -> usize {
    let before = live();
    let mut session = collab_benches::session(5);
    let mut now = collab_benches::T0;
    for (i, e) in trace.edits[..edits].iter().enumerate() {
        let frame = collab_benches::text_op_frame(e, session.position().1).replacen(
            '{',
            &format!(r#"{{"oid":"o{i}","#),
            1,
        );
        session.handle_text(ConnectionId(1), &frame, now);
        collab_benches::drain(&mut session);
        std::hint::black_box(session.take_changes());
        now = now.plus(std::time::Duration::from_millis(10));
    }
    let held = live() - before;
    drop(session);
    held
}

/// A session with one joined who types `chars` characters at the end, 100
/// at a time, and deletes them from the end, 100 at a time, `rounds` times,
/// the store handed its changes after each edit: bytes held after.
fn churn_session(chars: u32, rounds: u32) -> usize {
    let before = live();
    let mut session = collab_benches::session(1);
    let mut now = collab_benches::T0;
    let chunk = "abcdefghij".repeat(10);
    let mut send = |session: &mut collab_core::Session, op: serde_json::Value| {
        let frame = serde_json::json!({
            "type": "text_op", "file": "main", "rev": session.position().1, "op": op,
        });
        session.handle_text(ConnectionId(1), &frame.to_string(), now);
        collab_benches::drain(session);
        std::hint::black_box(session.take_changes());
        now = now.plus(std::time::Duration::from_millis(10));
    };
    for _ in 0..rounds {
        for len in (0..chars).step_by(100) {
            let op = if len == 0 {
                serde_json::json!([chunk])
            } else {
                serde_json::json!([len, chunk])
            };
            send(&mut session, op);
        }
        for len in (100..=chars).rev().step_by(100) {
            let op = if len == 100 {
                serde_json::json!([-100])
            } else {
                serde_json::json!([len - 100, -100])
            };
            send(&mut session, op);
        }
    }
    assert_eq!(session.code(), "");
    let held = live() - before;
    drop(session);
    held
}

fn insert(pos: u32, text: &str, len: u32) -> TextOperation {
    let mut op = TextOperation::new();
    op.retain(pos).insert(text).retain(len - pos);
    op
}

/// About 10 KB of code.
fn ten_kb() -> String {
    let line = "    let total = values.iter().map(|v| v * 2).sum::<u64>();\n";
    line.repeat(10_000 / line.len())
}

/// Sessions holding a 10 KB document each (created with it, as a pasted
/// exercise), with 2 members joined: the bytes each one holds.
fn sessions_of_10_kb(count: usize) -> usize {
    use collab_core::{Identity, NewSession, Session, SessionConfig, SessionId};
    let code = ten_kb();
    let before = live();
    let mut sessions = Vec::with_capacity(count);
    for n in 0..count {
        let host = Identity::new(format!("h{n}"), "Host");
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(n as u64).to_le_bytes());
        let new = NewSession {
            code: code.clone(),
            ..NewSession::default()
        };
        let mut session = Session::new(
            SessionId::from_bytes(id),
            new,
            &host,
            SessionConfig::default(),
            collab_benches::T0,
        )
        .expect("session");
        let guest = Identity::new(format!("g{n}"), "Guest");
        for (c, who) in [host, guest].into_iter().enumerate() {
            let conn = ConnectionId(c as u64);
            session
                .connect(conn, who, collab_benches::T0)
                .expect("connect");
            session.handle_text(conn, r#"{"type":"join"}"#, collab_benches::T0);
        }
        collab_benches::drain(&mut session);
        sessions.push(session);
    }
    let held = live() - before;
    drop(sessions);
    held / count
}

/// Documents of automerge alone, each holding `text` from one splice: the
/// mean bytes held, over `count` (one small document is below the
/// counter's noise).
macro_rules! automerge_holding {
    ($name:ident, $automerge:ident) => {
        fn $name(text: &str, count: usize) -> usize {
            use $automerge::transaction::Transactable as _;
            let before = live();
            let docs: Vec<_> = (0..count)
                .map(|_| {
                    let mut doc = $automerge::AutoCommit::new_with_encoding(
                        $automerge::TextEncoding::Utf16CodeUnit,
                    );
                    let obj = doc
                        .put_object($automerge::ROOT, "text", $automerge::ObjType::Text)
                        .expect("text");
                    doc.splice_text(&obj, 0, 0, text).expect("splice");
                    doc.commit();
                    doc
                })
                .collect();
            let held = live().saturating_sub(before);
            drop(docs);
            held / count
        }
    };
}

automerge_holding!(automerge_06_holding, automerge_06);
automerge_holding!(automerge_12_holding, automerge);

fn main() {
    let per_session = sessions_of_10_kb(100);
    let text = ten_kb();
    println!(
        "{} bytes of code, created in one piece, bytes live on the heap:",
        text.len()
    );
    println!("  a collab session holding it, 2 joined (mean of 100): {per_session}");
    println!(
        "  automerge 0.6 alone (mean of 100): {}",
        automerge_06_holding(&text, 100)
    );
    println!(
        "  automerge 0.12 alone (mean of 100): {}",
        automerge_12_holding(&text, 100)
    );
    println!();
    let trace = collab_benches::Trace::load();
    let edits = trace.edits.len().min(37_000);
    println!(
        "a session typing the first {edits} edits of {}, 5 joined, store writes after each: \
         {} bytes live on the heap",
        trace.source,
        trace_session(&trace, edits)
    );
    println!(
        "a session typing 600,000 characters and deleting them, twice, 100 a time, \
         store writes after each: {} bytes live on the heap",
        churn_session(600_000, 2)
    );
    println!();
    let document = document();
    let session = session();
    let alone = automerge_06_alone(1);
    let rows = [
        ("automerge 0.6, a commit per edit", alone),
        (
            "automerge 0.6, a commit per 16 edits",
            automerge_06_alone(16),
        ),
        ("automerge 0.12, a commit per edit", automerge_12_alone(1)),
        (
            "automerge 0.12, a commit per 16 edits",
            automerge_12_alone(16),
        ),
        ("Document (thin-client edits)", document),
        ("Session (10 joined, 2 typists)", session),
    ];
    println!("{EDITS} edits of {MARKER_LEN} characters into one text, bytes live on the heap:");
    println!(
        "{:<40} {:>12} {:>10} {:>14}",
        "", "total", "per edit", "vs automerge 0.6, commit per edit"
    );
    for (name, bytes) in rows {
        println!(
            "{name:<40} {bytes:>12} {:>10.0} {:>13.2}x",
            bytes as f64 / f64::from(EDITS),
            bytes as f64 / alone as f64
        );
    }
}
