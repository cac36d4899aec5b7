//! What fanning one text frame out to a room allocates, from serialising it
//! to each recipient's WebSocket message: the text shared as it is now
//! (`SharedText`, handed to axum as `Utf8Bytes` without a copy) against the
//! `Arc<str>` it was before, which each recipient's message copied.
//!
//! ```sh
//! cargo run --release -p collab-benches --example fanout_bytes
//! ```
//!
//! Bytes come from jemalloc's count of what this thread allocated.

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use collab_server::outbound::SharedText;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bytes this thread allocated while `f` ran.
fn allocated(f: impl FnOnce()) -> u64 {
    let counter = tikv_jemalloc_ctl::thread::allocatedp::mib()
        .and_then(|m| m.read())
        .expect("jemalloc's thread counter");
    let before = counter.get();
    f();
    counter.get() - before
}

fn main() {
    let frame = serde_json::json!({
        "type": "text_op", "rev": 4812, "file": "main",
        "op": [1203, "    let total = items.iter().map(|i| i.price).sum::<u64>();\n"],
        "author": 3, "oid": "c3-4812",
    })
    .to_string();
    println!(
        "a {}-byte frame to each recipient's WebSocket message",
        frame.len()
    );
    println!("| recipients | Arc<str>, copied per message | SharedText, shared | ");
    println!("|---|---|---|");
    for n in [1usize, 10, 50, 300] {
        let mut messages = Vec::with_capacity(n);
        let copied = allocated(|| {
            let text: Arc<str> = frame.clone().into();
            for _ in 0..n {
                messages.push(Message::Text(text.as_ref().into()));
            }
        });
        messages.clear();
        let shared = allocated(|| {
            let text = SharedText::from(frame.clone());
            for _ in 0..n {
                let bytes = Utf8Bytes::try_from(text.bytes()).expect("UTF-8");
                messages.push(Message::Text(bytes));
            }
        });
        println!("| {n} | {copied} bytes | {shared} bytes |");
    }
}
