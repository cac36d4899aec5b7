//! What fanning one edit out to a room allocates, measured on the real path:
//! a participant's `text_op` goes into a hub's session, which serialises the
//! frame once and queues it for every other connection; each connection's
//! `Outbound` is then turned into its WebSocket message by the adapter's own
//! mapping (`collab_axum::message`, `collab_warp::message`). Beside it, the
//! same path with a per-recipient copy of the text at the last step, as the
//! adapters did before `SharedText`.
//!
//! ```sh
//! cargo run --release -p collab-benches --example fanout_bytes
//! ```
//!
//! Allocations are jemalloc's own count, all arenas merged, with this
//! thread's cache of small objects turned off so that every allocation
//! reaches an arena's counters; bytes are jemalloc's count of what this
//! thread allocated. The runtime has one thread, so everything counted is
//! this fan-out's. The counter is checked first against a known number of
//! allocations.

use std::time::Duration;

use collab_core::NewSession;
use collab_server::outbound::Outbound;
use collab_server::{Connection, Hub, HubConfig, Identity, TokenAuthenticator};
use tikv_jemalloc_ctl::{Access as _, AsName as _};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Allocations made so far, and bytes this thread allocated.
fn counted() -> (u64, u64) {
    tikv_jemalloc_ctl::epoch::advance().expect("jemalloc's epoch");
    // 4096 is jemalloc's index for all arenas merged.
    let small: u64 = b"stats.arenas.4096.small.nmalloc\0"
        .name()
        .read()
        .expect("jemalloc's small allocations");
    let large: u64 = b"stats.arenas.4096.large.nmalloc\0"
        .name()
        .read()
        .expect("jemalloc's large allocations");
    let bytes = tikv_jemalloc_ctl::thread::allocatedp::read()
        .expect("jemalloc's thread counter")
        .get();
    (small + large, bytes)
}

/// Turns off this thread's cache, then checks the counter against a known
/// number of allocations.
fn count_every_allocation() {
    b"thread.tcache.enabled\0"
        .name()
        .write(false)
        .expect("jemalloc's thread cache switch");
    let mut boxes = Vec::with_capacity(1001);
    // The first reading sets up what later ones reuse.
    counted();
    let before = counted();
    for i in 0..1000u64 {
        boxes.push(Box::new(i));
    }
    boxes.push(Box::new(u64::MAX));
    let after = counted();
    assert_eq!(after.0 - before.0, 1001, "the allocation counter is exact");
    assert_eq!(after.1 - before.1, 1001 * 8, "the byte counter is exact");
}

/// How each recipient's `Outbound` becomes its WebSocket message.
#[derive(Clone, Copy)]
enum Mapping {
    Axum,
    Warp,
    /// axum's message with the text copied, as before `SharedText`.
    AxumCopied,
}

/// The messages a fan-out made, held as a socket's write buffer holds
/// them until written; allocated beforehand.
#[derive(Default)]
struct Held {
    axum: Vec<axum::extract::ws::Message>,
    warp: Vec<tokio_tungstenite::tungstenite::Message>,
}

impl Held {
    fn with_capacity(n: usize) -> Self {
        Held {
            axum: Vec::with_capacity(n),
            warp: Vec::with_capacity(n),
        }
    }

    fn clear(&mut self) {
        self.axum.clear();
        self.warp.clear();
    }

    /// Turns `out` into the message a socket would be written.
    fn map(&mut self, mapping: Mapping, out: Outbound) {
        match mapping {
            Mapping::Axum => self.axum.push(collab_axum::message(out)),
            Mapping::Warp => self.warp.push(collab_warp::message(out)),
            Mapping::AxumCopied => {
                if let Outbound::Text(text) = out {
                    self.axum
                        .push(axum::extract::ws::Message::Text(text.as_str().into()));
                }
            }
        }
    }
}

/// Everything `conn` has queued, until it is quiet for a moment.
async fn drain(conn: &mut Connection) {
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), conn.recv()).await {}
}

/// The `text_op` that starts with `wanted` as `conn` is sent it, skipping
/// what comes before it (the author's presence: typing).
async fn edit_of(conn: &mut Connection, wanted: &str) -> Outbound {
    loop {
        match conn.recv().await {
            Some(Outbound::Text(text)) if text.starts_with(wanted) => return Outbound::Text(text),
            Some(Outbound::Close(reason)) => panic!("closed: {reason:?}"),
            Some(_) => {}
            None => panic!("closed"),
        }
    }
}

/// Allocations and bytes per fan-out of one edit to `recipients` others,
/// averaged over `rounds` edits.
async fn fan_out(recipients: usize, mapping: Mapping, rounds: u64) -> (f64, f64) {
    let mut config = HubConfig::default();
    config.session.capacity = recipients + 1;
    config.session.max_connections = recipients + 1;
    config.session.frames_per_second = 10_000;
    config.session.frame_burst = 10_000;
    // Room for every join and presence frame of a large room's arrival,
    // which is drained only once everyone is in.
    config.outbound_queue = 8 * (recipients + 1) + 64;
    let hub = Hub::builder(std::sync::Arc::new(TokenAuthenticator::new()))
        .config(config)
        .build();
    let host = Identity::new("host", "Host");
    let info = hub
        .create_session(&host, NewSession::default())
        .await
        .expect("a session");
    let mut author = hub.connect(&info.id, host).await.expect("connect");
    author.send_text(r#"{"type":"join"}"#).await.expect("join");
    let mut others = Vec::with_capacity(recipients);
    for i in 0..recipients {
        let who = Identity::new(format!("u{i}"), format!("User {i}"));
        let conn = hub.connect(&info.id, who).await.expect("connect");
        conn.send_text(r#"{"type":"join"}"#).await.expect("join");
        others.push(conn);
    }
    drain(&mut author).await;
    for conn in &mut others {
        drain(conn).await;
    }
    let mut held = Held::with_capacity(recipients);
    let (mut calls, mut bytes) = (0, 0);
    for round in 0..rounds {
        let edit = format!(
            r#"{{"type":"text_op","rid":{round},"rev":{round},"file":"main","op":["let total = items.iter().map(|i| i.price).sum::<u64>();\n"]}}"#
        );
        let rev = round + 1;
        let wanted = format!(r#"{{"type":"text_op","rev":{rev},"#);
        held.clear();
        let before = counted();
        author.send_text(edit).await.expect("sent");
        for conn in &mut others {
            let out = edit_of(conn, &wanted).await;
            held.map(mapping, out);
        }
        let after = counted();
        calls += after.0 - before.0;
        bytes += after.1 - before.1;
        drain(&mut author).await;
    }
    (calls as f64 / rounds as f64, bytes as f64 / rounds as f64)
}

fn main() {
    count_every_allocation();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    const ROUNDS: u64 = 40;
    let mappings = [
        ("axum", Mapping::Axum),
        ("warp", Mapping::Warp),
        ("axum, text copied per message", Mapping::AxumCopied),
    ];
    println!("one 56-character insert fanned out, {ROUNDS} rounds averaged");
    println!("| recipients | mapping | allocations per fan-out | bytes per fan-out |");
    println!("|---|---|---|---|");
    let mut slopes = Vec::new();
    for (name, mapping) in mappings {
        let mut first = None;
        for n in [1usize, 10, 50, 300] {
            let (calls, bytes) = runtime.block_on(fan_out(n, mapping, ROUNDS));
            println!("| {n} | {name} | {calls:.1} | {bytes:.0} |");
            match first {
                None => first = Some((n, calls)),
                Some((n0, c0)) if n == 300 => {
                    slopes.push((name, (calls - c0) / (n - n0) as f64));
                }
                Some(_) => {}
            }
        }
    }
    println!();
    for (name, slope) in slopes {
        println!("{name}: {slope:.2} allocations per recipient (1 to 300)");
    }
}
