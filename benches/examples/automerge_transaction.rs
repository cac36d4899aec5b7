//! What one automerge transaction costs in memory as it grows: 600k
//! characters typed into a text in splices of a thousand, in one
//! transaction or committed after each splice; then all of them in one
//! splice, and deleted in one splice. Peak RSS from `/proc/self/status`.
//! Figures in BENCHMARKS.md ("Changes of bounded size").
//!
//! `cargo run --release -p collab-benches --example automerge_transaction -- one|commit|single|delete [CHARS]`
use automerge::{transaction::Transactable, AutoCommit, ObjType, ReadDoc, ROOT};

fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("VmHWM") || l.starts_with("VmRSS"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(600_000);
    let text: String = "abcdefghij".repeat(n / 10);
    println!("start: {}", memory());
    let started = std::time::Instant::now();
    let mut doc = AutoCommit::new_with_encoding(automerge::TextEncoding::Utf16CodeUnit);
    let files = doc.put_object(ROOT, "files", ObjType::Map).unwrap();
    let obj = doc.put_object(&files, "main", ObjType::Text).unwrap();
    for chunk in text.as_bytes().chunks(1000) {
        let at = doc.length(&obj);
        let chunk = std::str::from_utf8(chunk).unwrap();
        doc.splice_text(&obj, at, 0, chunk).unwrap();
        if mode != "one" {
            doc.commit();
        }
    }
    doc.commit();
    println!("typed in {:?}: {}", started.elapsed(), memory());
    if mode == "single" {
        let started = std::time::Instant::now();
        let other = doc.put_object(&files, "other", ObjType::Text).unwrap();
        doc.splice_text(&other, 0, 0, &text).unwrap();
        doc.commit();
        println!("all in one splice in {:?}: {}", started.elapsed(), memory());
    }
    if mode == "delete" {
        let started = std::time::Instant::now();
        doc.splice_text(&obj, 0, n as isize, "").unwrap();
        doc.commit();
        println!(
            "deleted in one splice in {:?}: {}",
            started.elapsed(),
            memory()
        );
    }
}
