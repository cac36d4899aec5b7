//! Durability benchmarks: edits a second when every acknowledged edit is
//! stored first, and what loading a long session costs.
//!
//! Run with: `cargo bench -p collab-benches --bench store`

use std::sync::Arc;
use std::time::{Duration, Instant};

use collab_core::{ClientFrame, Identity, NewSession, SessionId};
use collab_server::{
    Connection, Hub, HubConfig, MemoryStore, Outbound, Store, TokenAuthenticator, TokioClock,
};
use collab_sqlite::SqliteStore;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn config() -> HubConfig {
    let mut config = HubConfig::default();
    // Writers here read others' edits only while waiting for their own
    // ack, in bursts no person produces: a deeper queue keeps them on.
    config.outbound_queue = 1 << 16;
    // A bench types faster than anyone: lift the per-connection rate limit.
    config.session.frames_per_second = u32::MAX;
    config.session.frame_burst = u32::MAX;
    config.session.capacity = 100;
    config
}

fn hub(store: Option<Arc<dyn Store>>) -> Hub {
    let auth = Arc::new(TokenAuthenticator::new());
    let clock = Arc::new(TokioClock::new());
    match store {
        Some(store) => Hub::builder(auth)
            .clock(clock)
            .config(config())
            .store(store)
            .build(),
        None => Hub::builder(auth).clock(clock).config(config()).build(),
    }
}

async fn until(conn: &mut Connection, ty: &str) -> serde_json::Value {
    let tag = format!(r#""type":"{ty}""#);
    loop {
        match conn.recv().await {
            Some(Outbound::Text(t)) if t.contains(&tag) => {
                return serde_json::from_str(&t).expect("JSON");
            }
            Some(Outbound::Close(r)) => panic!("closed: {r:?}"),
            None => panic!("closed"),
            _ => {}
        }
    }
}

/// A new session of the bench host's.
async fn new_session(hub: &Hub, host: &Identity) -> SessionId {
    hub.create_session(host, NewSession::default())
        .await
        .expect("created")
        .id
}

/// `who` connected to session `id` and joined.
async fn joined(hub: &Hub, id: &SessionId, who: Identity) -> Connection {
    let mut conn = hub.connect(id, who).await.expect("connected");
    conn.send(ClientFrame::join()).await.expect("sent");
    until(&mut conn, "welcome").await;
    conn
}

/// `writers` thin clients, each appending to its own file, one edit at a
/// time (the next waits for the previous one's `text_ack`, which waits for
/// the store). Returns how long `edits` edits took in all.
async fn durable_edits(hub: &Hub, writers: usize, edits: u64) -> Duration {
    let host = Identity::new("bench-host", "Host");
    let id = new_session(hub, &host).await;
    let mut clients = Vec::new();
    for w in 0..writers {
        let who = if w == 0 {
            host.clone()
        } else {
            Identity::new(format!("bench-w{w}"), format!("W{w}"))
        };
        let mut conn = joined(hub, &id, who).await;
        conn.send_text(format!(r#"{{"type":"file_create","file":"w{w}","rid":1}}"#))
            .await
            .expect("sent");
        until(&mut conn, "ack").await;
        clients.push(conn);
    }
    let view = hub.session(&id).await.expect("view");
    let per_writer = edits.div_ceil(writers as u64);
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(w, mut conn)| {
            let mut rev = view.rev;
            tokio::spawn(async move {
                for i in 0..per_writer {
                    let op = if i == 0 {
                        r#"["x"]"#.to_owned()
                    } else {
                        format!(r#"[{i},"x"]"#)
                    };
                    conn.send_text(format!(
                        r#"{{"type":"text_op","file":"w{w}","rev":{rev},"op":{op}}}"#
                    ))
                    .await
                    .expect("sent");
                    rev = until(&mut conn, "text_ack").await["rev"]
                        .as_u64()
                        .expect("rev");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    start.elapsed()
}

fn edits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("collab-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut group = c.benchmark_group("durable_edits");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    for writers in [1usize, 10, 50] {
        for kind in ["none", "memory", "sqlite"] {
            let name = format!("{writers} writers, store: {kind}");
            group.bench_function(&name, |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let store: Option<Arc<dyn Store>> = match kind {
                            "memory" => Some(Arc::new(MemoryStore::new())),
                            "sqlite" => {
                                let path = dir.join(format!("edits-{writers}-{iters}.db"));
                                let _ = std::fs::remove_file(&path);
                                Some(Arc::new(SqliteStore::open(&path).expect("opened")))
                            }
                            _ => None,
                        };
                        let hub = hub(store);
                        durable_edits(&hub, writers, iters.max(writers as u64)).await
                    })
                });
            });
        }
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// How a benched session is edited before it is stored.
#[derive(Clone, Copy)]
enum Editing {
    /// `n` single-character edits, one per frame, and a chat message every 50.
    Typing(u64),
    /// `n` edits that each replace the whole text with `chars` new
    /// characters; the last one leaves it empty (a paste-heavy session).
    Replacing { n: u64, chars: usize },
}

impl Editing {
    fn name(self) -> String {
        match self {
            Editing::Typing(n) => format!("{n} edits"),
            Editing::Replacing { n, chars } => format!("{n} replaces of {chars} chars"),
        }
    }

    fn edits(self) -> u64 {
        match self {
            Editing::Typing(n) | Editing::Replacing { n, .. } => n,
        }
    }
}

/// Creates a session edited as `editing` in the SQLite file at `path`.
async fn stored_session(path: &std::path::Path, editing: Editing) -> SessionId {
    let store = Arc::new(SqliteStore::open(path).expect("opened"));
    let hub = hub(Some(store));
    let host = Identity::new("bench-host", "Host");
    let id = new_session(&hub, &host).await;
    let mut conn = joined(&hub, &id, host).await;
    let mut rev = 0;
    let mut len = 0usize;
    for i in 0..editing.edits() {
        let op = match editing {
            Editing::Typing(_) if i == 0 => r#"["x"]"#.to_owned(),
            Editing::Typing(_) => format!(r#"[{i},"x"]"#),
            Editing::Replacing { n, chars } => {
                let text = if i + 1 == n {
                    String::new()
                } else {
                    char::from(b'a' + (i % 26) as u8).to_string().repeat(chars)
                };
                let op = match (len, text.is_empty()) {
                    (0, _) => format!(r#"["{text}"]"#),
                    (_, true) => format!("[-{len}]"),
                    (_, false) => format!(r#"["{text}",-{len}]"#),
                };
                len = text.len();
                op
            }
        };
        conn.send_text(format!(
            r#"{{"type":"text_op","file":"main","rev":{rev},"op":{op}}}"#
        ))
        .await
        .expect("sent");
        rev = until(&mut conn, "text_ack").await["rev"]
            .as_u64()
            .expect("rev");
        if matches!(editing, Editing::Typing(_)) && i % 50 == 0 {
            conn.send_text(format!(r#"{{"type":"chat_send","text":"note {i}"}}"#))
                .await
                .expect("sent");
        }
    }
    drop(conn);
    hub.shutdown().await;
    id
}

/// Loading a stored session into a fresh hub (what the first visitor after
/// a restart waits for), beside automerge's own load of the session's
/// document saved whole.
fn load(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("collab-bench-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut group = c.benchmark_group("load_session");
    group.sample_size(10);
    for editing in [
        Editing::Typing(1_000),
        Editing::Typing(10_000),
        Editing::Typing(50_000),
        Editing::Replacing {
            n: 40,
            chars: 30_000,
        },
    ] {
        let path = dir.join(format!("load-{}.db", editing.edits()));
        let _ = std::fs::remove_file(&path);
        let id = rt.block_on(stored_session(&path, editing));
        let stored = rt.block_on(async {
            let store = SqliteStore::open(&path).expect("opened");
            store.load(&id).await.expect("read").expect("stored")
        });
        let rev = stored.versions.len() as u64;
        // The session's whole document as automerge saves it (what
        // automerge's own load is measured on), and as the store holds it.
        let whole = collab_core::Document::restore(
            &stored.document,
            stored.document_rev,
            &stored.record.initial_files,
            stored.versions.clone(),
        )
        .expect("restores")
        .save();
        for (what, bytes) in [
            ("automerge::load", &whole),
            ("automerge::load of the stored chunks", &stored.document),
        ] {
            group.bench_function(format!("{}: {what}", editing.name()), |b| {
                b.iter(|| {
                    automerge::AutoCommit::load_with_options(
                        bytes,
                        automerge::LoadOptions::new()
                            .text_encoding(automerge::TextEncoding::Utf16CodeUnit),
                    )
                    .expect("loads")
                });
            });
        }
        // Its parts: reading the rows, and making a session of them.
        let reader = SqliteStore::open(&path).expect("opened");
        group.bench_function(format!("{}: Store::load", editing.name()), |b| {
            b.iter(|| {
                rt.block_on(reader.load(&id))
                    .expect("read")
                    .expect("stored")
            });
        });
        group.bench_function(format!("{}: Session::restore", editing.name()), |b| {
            b.iter_batched(
                || stored.clone(),
                |stored| {
                    collab_core::Session::restore(
                        stored,
                        collab_core::SessionConfig::default(),
                        collab_core::Timestamp::from_millis(1),
                    )
                    .expect("restores")
                },
                criterion::BatchSize::LargeInput,
            );
        });
        group.bench_function(format!("{}: session from SQLite", editing.name()), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let store = Arc::new(SqliteStore::open(&path).expect("opened"));
                        let hub = hub(Some(store));
                        let start = Instant::now();
                        let view = hub.session(&id).await.expect("loaded");
                        total += start.elapsed();
                        assert_eq!(view.rev, rev);
                        // Unloaded before the next load starts, so that
                        // freeing this one does not slow the next.
                        hub.shutdown().await;
                    }
                    total
                })
            });
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, edits, load);
criterion_main!(benches);
