//! Shared fixtures for collab's benchmarks: the editing trace and the ways to
//! feed it through a session. See `benches/` and BENCHMARKS.md.
//!
//! The trace is the `automerge-paper` editing trace (259,778 single edits of a
//! LaTeX paper, by Martin Kleppmann and Joseph Gentle, CC BY 4.0). It is read
//! from `COLLAB_TRACE` if set, else from `../shared/traces/automerge-paper.json.gz`
//! beside the repository; without either, a synthetic trace of the same shape
//! stands in, so the benchmarks always run.

use std::io::Read;
use std::path::PathBuf;

/// One edit: at UTF-16 position `pos`, delete `del` units, insert `ins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Position in UTF-16 units, in the text just before this edit.
    pub pos: u32,
    /// UTF-16 units deleted.
    pub del: u32,
    /// Text inserted.
    pub ins: String,
}

/// An editing trace and the text it must end with.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Where it came from, for the report.
    pub source: String,
    /// The edits in order.
    pub edits: Vec<Edit>,
    /// The text after every edit.
    pub end: String,
}

impl Trace {
    /// The real trace if it can be found, else the synthetic one.
    pub fn load() -> Self {
        let path = std::env::var_os("COLLAB_TRACE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../../shared/traces/automerge-paper.json.gz")
            });
        match read_trace(&path) {
            Some(trace) => trace,
            None => Self::synthetic(259_778, 7),
        }
    }

    /// A trace of the same shape as the paper's: mostly typing forward, about
    /// 30% single-character deletes (backspace), and occasional jumps.
    pub fn synthetic(n: usize, seed: u64) -> Self {
        let mut rng = seed.max(1);
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let words = [
            "the ",
            "merge ",
            "of ",
            "concurrent ",
            "edits ",
            "\\cite{x} ",
            "document ",
            "\n",
        ];
        let mut text_len: u32 = 0;
        let mut cursor: u32 = 0;
        let mut edits = Vec::with_capacity(n);
        let mut pending: Vec<char> = Vec::new();
        while edits.len() < n {
            let r = next();
            if r % 200 == 0 && text_len > 0 {
                cursor = (next() % u64::from(text_len + 1)) as u32;
            }
            if r % 10 < 3 && cursor > 0 {
                cursor -= 1;
                text_len -= 1;
                edits.push(Edit {
                    pos: cursor,
                    del: 1,
                    ins: String::new(),
                });
            } else {
                if pending.is_empty() {
                    pending = words[(next() % words.len() as u64) as usize]
                        .chars()
                        .rev()
                        .collect();
                }
                let c = pending.pop().unwrap_or(' ');
                edits.push(Edit {
                    pos: cursor,
                    del: 0,
                    ins: c.to_string(),
                });
                cursor += 1;
                text_len += 1;
            }
        }
        let end = apply_all("", &edits);
        Self {
            source: format!("synthetic ({n} edits)"),
            edits,
            end,
        }
    }

    /// The first `n` edits as a trace of their own.
    pub fn prefix(&self, n: usize) -> Self {
        let edits = self.edits[..n.min(self.edits.len())].to_vec();
        let end = apply_all("", &edits);
        Self {
            source: format!("{} (first {n})", self.source),
            edits,
            end,
        }
    }
}

/// Applies edits to a text, for checks (slow: not for measured loops).
pub fn apply_all(start: &str, edits: &[Edit]) -> String {
    let mut text: Vec<u16> = start.encode_utf16().collect();
    for e in edits {
        let at = e.pos as usize;
        text.splice(at..at + e.del as usize, e.ins.encode_utf16());
    }
    String::from_utf16(&text).expect("edits keep the text valid")
}

fn read_trace(path: &std::path::Path) -> Option<Trace> {
    let file = std::fs::File::open(path).ok()?;
    let mut json = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut json)
        .ok()?;
    let value: serde_json::Value = serde_json::from_str(&json).ok()?;
    let start = value["startContent"].as_str()?;
    let end = value["endContent"].as_str()?.to_owned();
    let mut edits = Vec::new();
    for txn in value["txns"].as_array()? {
        for patch in txn["patches"].as_array()? {
            let pos = u32::try_from(patch[0].as_u64()?).ok()?;
            let del = u32::try_from(patch[1].as_u64()?).ok()?;
            let ins = patch[2].as_str()?.to_owned();
            edits.push(Edit { pos, del, ins });
        }
    }
    // Trace positions count code points; collab counts UTF-16 units. They
    // agree on text with no characters outside the Basic Multilingual Plane,
    // which is what this reader accepts.
    let bmp = |s: &str| s.chars().all(|c| c.len_utf16() == 1);
    if !bmp(start) || !edits.iter().all(|e| bmp(&e.ins)) || apply_all(start, &edits) != end {
        return None;
    }
    Some(Trace {
        source: "automerge-paper (Kleppmann and Gentle, CC BY 4.0)".into(),
        edits,
        end,
    })
}

/// The `text_op` frame a thin client sends for an edit typed at `rev`.
pub fn text_op_frame(edit: &Edit, rev: u64) -> String {
    let mut op = String::with_capacity(32 + edit.ins.len());
    op.push('[');
    if edit.pos > 0 {
        op.push_str(&edit.pos.to_string());
    }
    if !edit.ins.is_empty() {
        if op.len() > 1 {
            op.push(',');
        }
        op.push_str(&serde_json::to_string(&edit.ins).expect("a string serialises"));
    }
    if edit.del > 0 {
        if op.len() > 1 {
            op.push(',');
        }
        op.push('-');
        op.push_str(&edit.del.to_string());
    }
    op.push(']');
    format!(r#"{{"type":"text_op","rev":{rev},"file":"main","op":{op}}}"#)
}

/// The time the benches' sessions start at.
pub const T0: collab_core::Timestamp = collab_core::Timestamp::from_millis(1_700_000_000_000);

/// A session with `writers` joined participants on connections 1..=writers
/// (the first is the host). A bench replays faster than anyone types, so the
/// per-connection frame rate limit and the document size limit are lifted.
pub fn session(writers: usize) -> collab_core::Session {
    use collab_core::ids::ConnectionId;
    use collab_core::{Identity, NewSession, Session, SessionConfig, SessionId};
    let host = Identity::new("w0", "Writer 0");
    let config = {
        let mut c = SessionConfig::default();
        c.capacity = writers.max(1);
        c.frames_per_second = u32::MAX;
        c.frame_burst = u32::MAX;
        c.max_document_units = u64::MAX;
        c
    };
    let mut s = Session::new(
        SessionId::from_bytes([5; 16]),
        NewSession::default(),
        &host,
        config,
        T0,
    )
    .expect("valid settings");
    for i in 0..writers {
        let who = if i == 0 {
            host.clone()
        } else {
            Identity::new(format!("w{i}"), format!("Writer {i}"))
        };
        let conn = ConnectionId(i as u64 + 1);
        s.connect(conn, who, T0).expect("room for every writer");
        s.handle_text(conn, r#"{"type":"join"}"#, T0);
    }
    while s.poll_transmit().is_some() {}
    s
}

/// Drains the session's output, serialising each frame once as the hub does;
/// returns the bytes serialised.
pub fn drain(s: &mut collab_core::Session) -> usize {
    let mut bytes = 0;
    while let Some(t) = s.poll_transmit() {
        if let collab_core::Transmit::Send { frame, .. } = t {
            bytes += std::hint::black_box(frame.to_json()).len();
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_trace_replays_to_its_end() {
        let t = Trace::synthetic(5_000, 3);
        assert_eq!(apply_all("", &t.edits), t.end);
        assert!(t.edits.iter().filter(|e| e.del > 0).count() > 1_000);
    }

    #[test]
    fn frames_are_valid_operations() {
        let f = text_op_frame(
            &Edit {
                pos: 3,
                del: 1,
                ins: "\"x".into(),
            },
            9,
        );
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["op"], serde_json::json!([3, "\"x", -1]));
        let insert = Edit {
            pos: 0,
            del: 0,
            ins: "a".into(),
        };
        assert!(text_op_frame(&insert, 0).contains(r#""op":["a"]"#));
    }
}
