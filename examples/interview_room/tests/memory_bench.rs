//! The memory figures of BENCHMARKS.md's "Memory" section, measured from
//! outside: the release example app with SQLite, driven over REST and
//! WebSockets, its resident set read from `/proc/<pid>/status`. Four
//! scenarios: 1,000 sessions loaded and unloaded, one session replaying an
//! editing trace, 600k characters typed and deleted twice (with the load
//! after a restart), and whole-file replaces by three editors.
//!
//! A benchmark, not a test: ignored by `cargo test`. Run it with
//!
//! ```text
//! cargo test --release -p interview-room --test memory_bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! `COLLAB_TRACE` names the editing trace (default
//! `../shared/traces/automerge-paper.json.gz`, by Martin Kleppmann and
//! Joseph Gentle, CC BY 4.0).

mod common;

use std::io::Read as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use collab_conformance::{Client, Next};
use common::Server;
use serde_json::{json, Value};

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "collab-memory-bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A number from the environment, for a bench run at another size.
fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The server's heap as jemalloc counts it, from `/metrics` (updated every
/// second), in MB: live, in the pages it holds, in pages that hold live
/// objects, and its own bookkeeping.
async fn heap_mb(server: &Server) -> (f64, f64, f64, f64) {
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1e6
    };
    (
        gauge("interview_room_heap_allocated_bytes"),
        gauge("interview_room_heap_resident_bytes"),
        gauge("interview_room_heap_active_bytes"),
        gauge("interview_room_heap_metadata_bytes"),
    )
}

/// The server's RSS and heap, in words.
async fn memory(server: &Server) -> String {
    let (live, resident, active, metadata) = heap_mb(server).await;
    let (anon, file) = rss_parts_mb(server);
    format!(
        "RSS {:.1} MB ({anon:.1} MB anonymous, {file:.1} MB of mapped files such as the \
         program's code; heap: {live:.1} MB live, {resident:.1} MB resident, of which \
         {active:.1} MB in pages with live objects and {metadata:.1} MB jemalloc's own)",
        rss_mb(server)
    )
}

/// The server's resident set in two parts, in MB: anonymous memory (the
/// heaps, stacks) and pages of mapped files (the program's code, which the
/// kernel loads as it is first run and may drop again at will).
fn rss_parts_mb(server: &Server) -> (f64, f64) {
    let status = status(server);
    (
        status_mb(&status, "RssAnon:"),
        status_mb(&status, "RssFile:") + status_mb(&status, "RssShmem:"),
    )
}

/// The server's resident set, in MB.
fn rss_mb(server: &Server) -> f64 {
    status_mb(&status(server), "VmRSS:")
}

/// The server's peak resident set so far (`VmHWM`), in MB.
fn peak_rss_mb(server: &Server) -> f64 {
    status_mb(&status(server), "VmHWM:")
}

/// The server's `/proc/PID/status`.
fn status(server: &Server) -> String {
    std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap()
}

/// A field of `/proc/PID/status` given in kB, in MB.
fn status_mb(status: &str, field: &str) -> f64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap()
        / 1024.0
}

/// About 10 KB of code, different per session.
fn code(i: usize) -> String {
    let mut code = String::new();
    let mut line = 0;
    while code.len() < 10_000 {
        code.push_str(&format!(
            "def step_{i}_{line}(state, value):\n    return state * {line} + value  # {i}\n"
        ));
        line += 1;
    }
    code
}

/// One session's life: created with 10 KB by one guest, joined by a
/// second, left by both; it stays loaded until it has been idle for the
/// unload time. Each session's clients have an address of their own
/// (through a trusted proxy's header), as real users would.
async fn session_life(base: String, i: usize) {
    let c = Client::new(base).forwarded_for(format!("198.18.{}.{}", i / 250, 1 + i % 250));
    let guest = || async {
        let r = c.rest("POST", "/api/v1/guests", None, None).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        (
            r.body["token"].as_str().unwrap().to_owned(),
            r.body["user_id"].as_str().unwrap().to_owned(),
        )
    };
    let (host, host_id) = guest().await;
    let (other, other_id) = guest().await;
    let id = c
        .create(
            &host,
            json!({"title": format!("Session {i}"), "language": "python", "code": code(i)}),
        )
        .await;
    let r = c
        .rest(
            "POST",
            &format!("/api/v1/sessions/{id}/users"),
            Some(&other),
            Some(json!({"name": "Candidate"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    for (token, user) in [(&other, &other_id), (&host, &host_id)] {
        let r = c
            .rest(
                "DELETE",
                &format!("/api/v1/sessions/{id}/users/{user}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn a_thousand_sessions() {
    let dir = temp_dir();
    let db = dir.join("bench.db");
    let unload = 30u64;
    let server = Server::start_with_more(
        "COLLAB_DB",
        db.to_str().unwrap(),
        &[
            ("COLLAB_TRUSTED_PROXIES", "127.0.0.1"),
            ("COLLAB_UNLOAD_AFTER_SECS", &unload.to_string()),
            ("RUST_LOG", "warn"),
        ],
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mb(&server);
    println!("idle: {}", memory(&server).await);
    let started = Instant::now();
    let sessions: usize = setting("COLLAB_BENCH_SESSIONS", 1_000);
    let mut next = 0;
    while next < sessions {
        let batch: Vec<_> = (next..(next + 8).min(sessions))
            .map(|i| tokio::spawn(session_life(server.url.clone(), i)))
            .collect();
        for task in batch {
            task.await.unwrap();
        }
        next += 8;
    }
    let made_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = rss_mb(&server);
    let stats = Client::new(server.url.clone())
        .rest("GET", "/api/v1/stats", None, None)
        .await
        .body;
    println!(
        "1,000 sessions (10 KB, 2 members, created, joined, left) in {made_in:.1?}: \
         idle {idle:.1} MB, loaded {loaded:.1} MB ({:.1} KB a session); {}; stats {stats}",
        (loaded - idle) * 1024.0 / sessions as f64,
        memory(&server).await
    );
    tokio::time::sleep(Duration::from_secs(unload + 15)).await;
    let unloaded = rss_mb(&server);
    let stats = Client::new(server.url.clone())
        .rest("GET", "/api/v1/stats", None, None)
        .await
        .body;
    println!(
        "after they unloaded: {unloaded:.1} MB ({:.2}x idle); {}; stats {stats}",
        unloaded / idle,
        memory(&server).await
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The trace's edits as `(position, deleted, inserted)`, positions in the
/// text as it is before each (the trace is ASCII: code points are UTF-16
/// units).
fn trace_edits() -> Vec<(u64, u64, String)> {
    let path = std::env::var("COLLAB_TRACE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/traces/automerge-paper.json.gz"
        )
        .into()
    });
    let mut json = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("the trace"))
        .read_to_string(&mut json)
        .unwrap();
    let trace: Value = serde_json::from_str(&json).unwrap();
    trace["txns"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["patches"].as_array().unwrap().clone())
        .map(|p| {
            (
                p[0].as_u64().unwrap(),
                p[1].as_u64().unwrap(),
                p[2].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A text operation for one trace edit on a text `len` long.
fn operation(len: u64, (pos, del, ins): &(u64, u64, String)) -> Value {
    let mut op = Vec::new();
    if *pos > 0 {
        op.push(json!(pos));
    }
    if *del > 0 {
        op.push(json!(-(*del as i64)));
    }
    if !ins.is_empty() {
        op.push(json!(ins));
    }
    let rest = len - pos - del;
    if rest > 0 {
        op.push(json!(rest));
    }
    json!(op)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn one_session_replays_a_trace() {
    let edits: usize = setting("COLLAB_TRACE_EDITS", 37_000);
    let trace = trace_edits();
    let trace = &trace[..edits.min(trace.len())];
    let dir = temp_dir();
    let db = dir.join("bench.db");
    let server = Server::start_with_more(
        "COLLAB_DB",
        db.to_str().unwrap(),
        &[("RUST_LOG", "warn"), ("COLLAB_FRAMES_PER_SECOND", "100000")],
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mb(&server);
    let c = Client::new(server.url.clone());
    let tokens = [
        c.guest().await,
        c.guest().await,
        c.guest().await,
        c.guest().await,
        c.guest().await,
    ];
    let id = c
        .create(&tokens[0], json!({"title": "Trace", "code": ""}))
        .await;
    let (mut typist, _) = c.joined(&id, &tokens[0], "Typist").await;
    let mut listeners = Vec::new();
    for t in &tokens[1..] {
        let (ws, _) = c.joined(&id, t, "Listener").await;
        listeners.push(ws);
    }
    // Listeners drain what they are sent, as browsers would.
    let drains: Vec<_> = listeners
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move { while !matches!(ws.next().await, Next::Closed(..)) {} })
        })
        .collect();
    let started = Instant::now();
    let (mut len, mut rev) = (0u64, 0u64);
    for (i, edit) in trace.iter().enumerate() {
        typist
            .send(json!({"type": "text_op", "file": "main", "rev": rev,
                         "op": operation(len, edit), "oid": format!("o{i}")}))
            .await;
        let ack = typist.until("text_ack").await;
        rev = ack["rev"].as_u64().unwrap();
        len = len + edit.2.len() as u64 - edit.1;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_mb(&server);
    println!(
        "{} trace edits to {len} characters in {took:.1?} ({:.0} edits/s), 4 listeners: \
         idle {idle:.1} MB, after {after:.1} MB (+{:.1} MB); {}",
        trace.len(),
        trace.len() as f64 / took.as_secs_f64(),
        after - idle,
        memory(&server).await
    );
    drop(typist);
    drop(server);
    for d in drains {
        d.abort();
    }
    // The same session loaded after a restart.
    let server =
        Server::start_with_more("COLLAB_DB", db.to_str().unwrap(), &[("RUST_LOG", "warn")]);
    let c = Client::new(server.url.clone());
    let before = rss_mb(&server);
    let started = Instant::now();
    let read = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some(&tokens[0]),
            None,
        )
        .await;
    let load = started.elapsed();
    assert_eq!(read.status, 200);
    assert_eq!(read.body["code"].as_str().unwrap().len() as u64, len);
    println!(
        "loaded after a restart in {load:.1?} (first read); RSS {before:.1} → {:.1} MB, peak {:.1} MB",
        rss_mb(&server),
        peak_rss_mb(&server)
    );
    history_on_demand(&server, &c, &id, &tokens[0]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// After a load: what the process settles at, then the first read of the
/// whole history (which a load leaves in the store) and what it costs.
async fn history_on_demand(server: &Server, c: &Client, id: &str, token: &str) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("3 s later: {}", memory(server).await);
    let started = Instant::now();
    let page = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}/events?since=0&rev=0"),
            Some(token),
            None,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(page.body["ops"][0]["rev"].as_u64(), Some(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "the history from revision 0 read on demand in {took:.1?}; 3 s later RSS {:.1} MB, peak {:.1} MB",
        rss_mb(server),
        peak_rss_mb(server)
    );
}

/// Sends `op` against `rev` and waits for its ack; returns the new revision.
async fn acked(ws: &mut collab_conformance::Ws, rev: u64, op: Value, oid: String) -> u64 {
    ws.send(json!({"type": "text_op", "file": "main", "rev": rev, "op": op, "oid": oid}))
        .await;
    let ack = ws.until("text_ack").await;
    ack["rev"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn typing_and_deleting_a_long_text() {
    let chars: u64 = setting("COLLAB_CHURN_CHARS", 600_000);
    let per_op = 100u64;
    let dir = temp_dir();
    let db = dir.join("bench.db");
    let env = [("RUST_LOG", "warn"), ("COLLAB_FRAMES_PER_SECOND", "100000")];
    let server = Server::start_with_more("COLLAB_DB", db.to_str().unwrap(), &env);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mb(&server);
    let c = Client::new(server.url.clone());
    let token = c.guest().await;
    let id = c
        .create(&token, json!({"title": "Churn", "code": ""}))
        .await;
    let (mut ws, _) = c.joined(&id, &token, "Typist").await;
    let (mut rev, mut len, mut n) = (0u64, 0u64, 0u64);
    let chunk: String = "abcdefghij".repeat(per_op as usize / 10);
    for round in 1..=2 {
        let started = Instant::now();
        while len < chars {
            let op = if len == 0 {
                json!([chunk])
            } else {
                json!([len, chunk])
            };
            rev = acked(&mut ws, rev, op, format!("o{n}")).await;
            len += per_op;
            n += 1;
        }
        while len > 0 {
            let op = if len == per_op {
                json!([-(per_op as i64)])
            } else {
                json!([len - per_op, -(per_op as i64)])
            };
            rev = acked(&mut ws, rev, op, format!("o{n}")).await;
            len -= per_op;
            n += 1;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "round {round}: typed {chars} characters and deleted them ({} operations of {per_op}) \
             in {:.1?}: RSS {idle:.1} → {:.1} MB; {}",
            2 * chars / per_op,
            started.elapsed(),
            rss_mb(&server),
            memory(&server).await
        );
    }
    drop(ws);
    drop(server);
    let server = Server::start_with_more("COLLAB_DB", db.to_str().unwrap(), &env);
    let c = Client::new(server.url.clone());
    let before = rss_mb(&server);
    let started = Instant::now();
    let read = c
        .rest("GET", &format!("/api/v1/sessions/{id}"), Some(&token), None)
        .await;
    let load = started.elapsed();
    assert_eq!(read.status, 200);
    assert_eq!(read.body["rev"].as_u64(), Some(rev));
    println!(
        "the {}-character churn session loaded after a restart in {load:.1?} (first read); \
         RSS {before:.1} → {:.1} MB, peak {:.1} MB",
        2 * chars,
        rss_mb(&server),
        peak_rss_mb(&server)
    );
    history_on_demand(&server, &c, &id, &token).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn whole_file_replaces() {
    let replaces = 210usize;
    let dir = temp_dir();
    let db = dir.join("bench.db");
    let server =
        Server::start_with_more("COLLAB_DB", db.to_str().unwrap(), &[("RUST_LOG", "warn")]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_mb(&server);
    let c = Client::new(server.url.clone());
    let tokens = [c.guest().await, c.guest().await, c.guest().await];
    let first = code(0)[..8_000].to_owned();
    let id = c
        .create(&tokens[0], json!({"title": "Replaces", "code": first}))
        .await;
    let mut editors = Vec::new();
    for t in &tokens {
        editors.push(c.joined(&id, t, "Editor").await.0);
    }
    let (mut rev, mut len) = (0u64, 8_000u64);
    let mut latencies = Vec::new();
    let started = Instant::now();
    for i in 0..replaces {
        // Each editor replaces the file every 30 ms; they take turns.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let text = code(i + 1)[..8_000].to_owned();
        let op = json!([-(len as i64), text]);
        let sent = Instant::now();
        rev = acked(&mut editors[i % 3], rev, op, format!("r{i}")).await;
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        len = 8_000;
    }
    let took = started.elapsed();
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "{replaces} replaces of an 8 KB file by 3 editors in {took:.1?}: ack p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms; RSS {idle:.1} → {:.1} MB",
        at(0.5),
        at(0.99),
        latencies.last().unwrap(),
        rss_mb(&server)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a WebSocket connection costs: 70 sessions with 10 joined each (the
/// example takes 768 connections at most), the heap and RSS before and
/// after, and after each has sent a presence update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn seven_hundred_connections() {
    let dir = temp_dir();
    let db = dir.join("bench.db");
    let server = Server::start_with_more(
        "COLLAB_DB",
        db.to_str().unwrap(),
        &[
            ("RUST_LOG", "warn"),
            ("COLLAB_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = heap_mb(&server).await;
    let rss_before = rss_mb(&server);
    let mut sockets = Vec::new();
    for s in 0..70usize {
        let c = Client::new(server.url.clone()).forwarded_for(format!("198.19.0.{}", 1 + s));
        let host = c.guest().await;
        let id = c
            .create(&host, json!({"title": format!("S{s}"), "code": ""}))
            .await;
        for n in 0..10 {
            // Everyone from an address of their own, as real users are.
            let c = Client::new(server.url.clone()).forwarded_for(format!("198.19.{s}.{}", 1 + n));
            let token = if n == 0 {
                host.clone()
            } else {
                c.guest().await
            };
            let (ws, _) = c.joined(&id, &token, "Member").await;
            sockets.push(ws);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let joined = heap_mb(&server).await;
    let rss_joined = rss_mb(&server);
    let per = |after: f64, before: f64| (after - before) * 1e6 / sockets.len() as f64 / 1024.0;
    println!(
        "700 connections joined to 70 sessions: heap {:.1} → {:.1} MB live \
         ({:.1} KiB a connection), RSS {rss_before:.1} → {rss_joined:.1} MB ({:.1} KiB a connection)",
        before.0,
        joined.0,
        per(joined.0, before.0),
        per(rss_joined, rss_before) * 1.048576,
    );
    for ws in &mut sockets {
        ws.send(json!({"type": "presence", "status": "active"}))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (live, resident, ..) = heap_mb(&server).await;
    println!(
        "after a presence update each: heap {live:.1} MB live, {resident:.1} MB resident, RSS {:.1} MB",
        rss_mb(&server)
    );
    drop(sockets);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ten clients each send one huge message at once: what the server holds
/// meanwhile is its peak RSS over what it held before. Three rounds, each
/// on a fresh server: binary messages of 60 MiB in 4 frames, text messages
/// of 15 MiB, and replicas' 15 MiB sync messages in parts (the junk inside
/// is refused once whole, after it was held). Run it against an older build
/// with `COLLAB_SERVER_BIN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn ten_huge_messages_at_once() {
    for round in [
        "60 MiB binary in 4 frames",
        "15 MiB text",
        "15 MiB sync in parts",
    ] {
        let dir = temp_dir();
        let db = dir.join("bench.db");
        let server = Server::start_with_more(
            "COLLAB_DB",
            db.to_str().unwrap(),
            &[
                ("RUST_LOG", "warn"),
                ("COLLAB_TRUSTED_PROXIES", "127.0.0.1"),
            ],
        );
        let c = Client::new(server.url.clone()).forwarded_for("198.18.0.1".to_owned());
        let host = c.guest().await;
        let id = c.create(&host, json!({"code": "x"})).await;
        let mut sockets = Vec::new();
        for n in 0..10 {
            let c = Client::new(server.url.clone()).forwarded_for(format!("198.18.1.{}", 1 + n));
            let token = c.guest().await;
            let mut ws = c.ws(&id, &token).await.expect("upgrade");
            ws.send(json!({"type": "join", "mode": "replica"})).await;
            ws.until("welcome").await;
            sockets.push(ws);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = rss_mb(&server);
        let peak_before = peak_rss_mb(&server);
        let sends = sockets.into_iter().map(|mut ws| {
            let round = round.to_owned();
            tokio::spawn(async move {
                match round.as_str() {
                    "60 MiB binary in 4 frames" => {
                        ws.try_send_fragmented(&vec![0x42; 60 << 20], 4, false)
                            .await;
                    }
                    "15 MiB text" => {
                        ws.try_send_fragmented(&vec![b'x'; 15 << 20], 1, true).await;
                    }
                    _ => {
                        let mut message = vec![0x42u8; 15 << 20];
                        message[1..]
                            .iter_mut()
                            .enumerate()
                            .for_each(|(i, b)| *b = i as u8);
                        for frame in collab_core::parts::split(&message, 64 * 1024) {
                            if !ws.try_send_binary(frame).await {
                                break;
                            }
                        }
                    }
                }
                // Hold the connection while the server deals with it.
                let _ = ws.next_within(Duration::from_secs(3)).await;
                ws
            })
        });
        let sockets = futures::future::join_all(sends).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "{round}, ten at once: RSS {before:.1} MB before, peak {:.1} MB (+{:.1} MB; peak before {peak_before:.1}), {:.1} MB after",
            peak_rss_mb(&server),
            peak_rss_mb(&server) - before,
            rss_mb(&server),
        );
        drop(sockets);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
