//! The figures of BENCHMARKS.md's "Several processes on Redis" section,
//! measured from outside: example processes on a real `redis-server`,
//! clients over WebSockets, one clock (this process's) for every timing.
//!
//! A benchmark, not a test: ignored by `cargo test`. Run it with
//!
//! ```text
//! cargo test --release -p interview-room --test cluster_bench -- --ignored --nocapture --test-threads 1
//! ```

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collab_conformance::{Client, Next, Ws};
use common::Server;
use serde_json::{json, Value};

/// Edits per latency run, one every `PACE`.
const EDITS: u64 = 500;
const PACE: Duration = Duration::from_millis(20);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN),
        ms.len()
    )
}

/// An insert of one character at the end of a text `len` long.
fn append(rev: u64, len: u64, oid: &str) -> Value {
    let op = if len == 0 {
        json!(["x"])
    } else {
        json!([len, "x"])
    };
    json!({"type": "text_op", "file": "main", "rev": rev, "op": op, "oid": oid})
}

/// Reads `ws` until closed, noting when each revision's `text_op` arrived.
fn receiver(
    mut ws: Ws,
) -> (
    Arc<Mutex<HashMap<u64, Instant>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let noted = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        while let Some(next) = ws.next_within(Duration::from_secs(5)).await {
            match next {
                Next::Frame(f) if f["type"] == "text_op" => {
                    let rev = f["rev"].as_u64().expect("rev");
                    noted.lock().unwrap().insert(rev, Instant::now());
                }
                Next::Closed(..) => break,
                _ => {}
            }
        }
    });
    (seen, task)
}

/// One sender edits `EDITS` times; two receivers note arrivals. Returns
/// the sender's ack latencies and each receiver's delivery latencies.
async fn latency_run(
    sender_at: &Client,
    receivers_at: [&Client; 2],
    id: &str,
    tokens: [&str; 3],
) -> (Vec<f64>, [Vec<f64>; 2]) {
    let (mut sender, welcome) = sender_at.joined(id, tokens[0], "Sender").await;
    let mut rev = welcome["document"]["rev"].as_u64().expect("rev");
    let mut len = welcome["document"]["files"]["main"]
        .as_str()
        .expect("text")
        .len() as u64;
    let (first, _) = receivers_at[0].joined(id, tokens[1], "Near").await;
    let (second, _) = receivers_at[1].joined(id, tokens[2], "Far").await;
    let (near, near_task) = receiver(first);
    let (far, far_task) = receiver(second);
    let mut sent = HashMap::new();
    let mut acks = Vec::new();
    for n in 0..EDITS {
        let started = Instant::now();
        sender.send(append(rev, len, &format!("l{rev}-{n}"))).await;
        let ack = sender.until("text_ack").await;
        acks.push(started.elapsed().as_secs_f64() * 1e3);
        rev = ack["rev"].as_u64().expect("rev");
        len += 1;
        sent.insert(rev, started);
        tokio::time::sleep(PACE).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    near_task.abort();
    far_task.abort();
    let delivered = |seen: &Arc<Mutex<HashMap<u64, Instant>>>| -> Vec<f64> {
        let seen = seen.lock().unwrap();
        sent.iter()
            .filter_map(|(rev, at)| {
                seen.get(rev)
                    .map(|got| got.duration_since(*at).as_secs_f64() * 1e3)
            })
            .collect()
    };
    (acks, [delivered(&near), delivered(&far)])
}

/// `sessions` sessions made on the given servers in turn, `each` writers in
/// every one (connected to the servers in turn, so that with two
/// processes half the writers are forwarded), each inserting as fast as
/// its acknowledgements come (at most one a 25 ms, inside the
/// per-connection rate limit) for `span`: acknowledged edits a second.
async fn throughput_run(servers: &[&Client], sessions: usize, each: usize, span: Duration) -> f64 {
    let mut writers = Vec::new();
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting_from = Instant::now() + Duration::from_secs(3);
    let until = counting_from + span;
    for s in 0..sessions {
        let at = servers[s % servers.len()];
        let token = at.guest().await;
        let id = create_patiently(at, &token).await;
        for w in 0..each {
            let via = servers[(s + w) % servers.len()].clone();
            let (id, token, acked) = (id.clone(), token.clone(), Arc::clone(&acked));
            writers.push(tokio::spawn(async move {
                let (mut ws, welcome) = via.joined(&id, &token, "Writer").await;
                let mut rev = welcome["document"]["rev"].as_u64().expect("rev");
                let mut len = welcome["document"]["files"]["main"]
                    .as_str()
                    .expect("text")
                    .len() as u64;
                let mut n = 0u64;
                while Instant::now() < until {
                    let started = Instant::now();
                    n += 1;
                    let oid = format!("w{w}.{n}");
                    // Inserted at the start, over whatever the others typed.
                    let op = if len == 0 { json!(["x"]) } else { json!(["x", len]) };
                    ws.send(json!({"type": "text_op", "file": "main", "rev": rev, "op": op, "oid": oid}))
                        .await;
                    loop {
                        let Next::Frame(f) = ws.next().await else {
                            continue;
                        };
                        match f["type"].as_str() {
                            Some("text_op") => {
                                rev = f["rev"].as_u64().expect("rev");
                                len += 1;
                            }
                            Some("text_ack") if f["oid"] == oid.as_str() => {
                                rev = rev.max(f["rev"].as_u64().expect("rev"));
                                len += 1;
                                break;
                            }
                            Some("error") => panic!("{f}"),
                            _ => {}
                        }
                    }
                    let now = Instant::now();
                    if now >= counting_from && now < until {
                        acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let took = started.elapsed();
                    if took < Duration::from_millis(25) {
                        tokio::time::sleep(Duration::from_millis(25) - took).await;
                    }
                }
            }));
        }
    }
    for w in writers {
        w.await.expect("a writer");
    }
    acked.load(std::sync::atomic::Ordering::Relaxed) as f64 / span.as_secs_f64()
}

/// A session made by `token`, waiting out the per-address creation limit.
async fn create_patiently(at: &Client, token: &str) -> String {
    loop {
        let made = at
            .rest(
                "POST",
                "/api/v1/sessions",
                Some(token),
                Some(json!({"title": "Load", "code": ""})),
            )
            .await;
        match made.status {
            201 => return made.body["id"].as_str().expect("id").to_owned(),
            429 => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("create: {other} {:?}", made.body),
        }
    }
}

/// A writer on `survivor` edits every 20 ms a session `owner` serves; the
/// owner is stopped by `stop`; returns the time from the stop to the first
/// acknowledgement of an edit sent after it.
async fn failover_run(
    redis_url: &str,
    lease_ms: Option<u64>,
    stop: impl FnOnce(&mut Server),
) -> Duration {
    let start = |url: &str| match lease_ms {
        Some(ms) => Server::start_on_redis_with_lease(url, ms),
        None => Server::start_on_redis(url),
    };
    let mut owner = start(redis_url);
    let survivor = start(redis_url);
    let on_owner = Client::new(owner.url.clone());
    let on_survivor = Client::new(survivor.url.clone());
    let token = on_owner.guest().await;
    let id = on_owner
        .create(&token, json!({"title": "Failover", "code": ""}))
        .await;
    let (mut ws, _) = on_survivor.joined(&id, &token, "Writer").await;
    let mut rev = 0u64;
    for n in 0..10 {
        ws.send(append(rev, rev, &format!("w{n}"))).await;
        rev = ws.until("text_ack").await["rev"].as_u64().expect("rev");
    }
    let stopped = Instant::now();
    stop(&mut owner);
    let mut n = 0u64;
    'connection: loop {
        assert!(stopped.elapsed() < Duration::from_secs(60), "no failover");
        loop {
            n += 1;
            let sent = Instant::now();
            if !ws.try_send(append(rev, rev, &format!("f{n}"))).await {
                break;
            }
            let answered = loop {
                match ws.next_within(Duration::from_secs(2)).await {
                    Some(Next::Frame(f)) if f["type"] == "text_ack" => break Some(f),
                    Some(Next::Frame(f)) if f["type"] == "error" => panic!("{f}"),
                    Some(Next::Frame(_) | Next::Binary(_)) => {}
                    Some(Next::Closed(..)) | None => break None,
                }
            };
            match answered {
                Some(_) if sent >= stopped => return stopped.elapsed(),
                Some(ack) => rev = ack["rev"].as_u64().expect("rev"),
                None => break,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Reconnect to the survivor until it serves the session again.
        loop {
            assert!(stopped.elapsed() < Duration::from_secs(60), "no failover");
            if let Ok(mut again) = on_survivor.try_ws(&id, &token).await {
                if again.try_send(json!({"type": "join"})).await {
                    if let Some(Next::Frame(w)) = again.next_within(Duration::from_secs(2)).await {
                        if w["type"] == "welcome" {
                            rev = w["document"]["rev"].as_u64().expect("rev");
                            ws = again;
                            continue 'connection;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn sigterm(server: &mut Server) {
    let status = server.terminate();
    assert!(status.success());
}

/// Every client comes from one address here: the per-address cap goes up.
const MANY: [(&str, &str); 1] = [("COLLAB_MAX_CONNECTIONS_PER_ADDRESS", "1000")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark"]
async fn latency() {
    let redis = collab_store_tests::redis_server::RedisServer::start();
    let dir = tempfile::tempdir().expect("a temp dir");

    // One process on SQLite: the reference.
    let alone = Server::start(&dir.path().join("bench.db"));
    let c = Client::new(alone.url.clone());
    let tokens = [c.guest().await, c.guest().await, c.guest().await];
    let id = c
        .create(&tokens[0], json!({"title": "Latency", "code": ""}))
        .await;
    let t = [tokens[0].as_str(), tokens[1].as_str(), tokens[2].as_str()];
    let (acks, [near, _]) = latency_run(&c, [&c, &c], &id, t).await;
    println!("alone (SQLite): ack {}", summary(acks));
    println!("alone (SQLite): delivery {}", summary(near));
    drop(alone);

    // Two processes on Redis; the session is the first one's.
    let owner = Server::start_on_redis(&redis.url());
    let other = Server::start_on_redis(&redis.url());
    let (a, b) = (
        Client::new(owner.url.clone()),
        Client::new(other.url.clone()),
    );
    let tokens = [a.guest().await, a.guest().await, a.guest().await];
    let t = [tokens[0].as_str(), tokens[1].as_str(), tokens[2].as_str()];
    let id = a
        .create(&tokens[0], json!({"title": "Latency", "code": ""}))
        .await;
    let (acks, [on_owner, on_other]) = latency_run(&a, [&a, &b], &id, t).await;
    println!("redis, sender on the owner: ack {}", summary(acks));
    println!(
        "redis, sender on the owner: delivery to the owner {}",
        summary(on_owner)
    );
    println!(
        "redis, sender on the owner: delivery to the other node {}",
        summary(on_other)
    );
    let (acks, [on_owner, on_other]) = latency_run(&b, [&a, &b], &id, t).await;
    println!("redis, sender on the other node: ack {}", summary(acks));
    println!(
        "redis, sender on the other node: delivery to the owner {}",
        summary(on_owner)
    );
    println!(
        "redis, sender on the other node: delivery to the other node {}",
        summary(on_other)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark"]
async fn durable_edits() {
    let redis = collab_store_tests::redis_server::RedisServer::start();
    let dir = tempfile::tempdir().expect("a temp dir");
    let span = Duration::from_secs(10);
    for (sessions, each) in [(20, 5), (30, 12)] {
        let owner = Server::start_with_more("COLLAB_REDIS_URL", &redis.url(), &MANY);
        let other = Server::start_with_more("COLLAB_REDIS_URL", &redis.url(), &MANY);
        let (a, b) = (
            Client::new(owner.url.clone()),
            Client::new(other.url.clone()),
        );
        let through_redis = throughput_run(&[&a, &b], sessions, each, span).await;
        drop((owner, other));
        let db = dir.path().join(format!("load-{sessions}.db"));
        let alone = Server::start_with_more("COLLAB_DB", db.to_str().expect("UTF-8"), &MANY);
        let c = Client::new(alone.url.clone());
        let through_sqlite = throughput_run(&[&c], sessions, each, span).await;
        drop(alone);
        println!(
            "durable edits/s, {sessions} sessions x {each} writers (at most 40/s each, {} offered): \
             two processes on Redis {through_redis:.0}, one on SQLite {through_sqlite:.0}",
            sessions * each * 40
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark"]
async fn failover() {
    let redis = collab_store_tests::redis_server::RedisServer::start();
    // SIGKILL with a 3 s lease (three runs) and the default 15 s (one),
    // and a hand-over by SIGTERM (three runs).
    for _ in 0..3 {
        let took = failover_run(&redis.url(), Some(3_000), Server::kill).await;
        println!("failover, SIGKILL, 3 s lease: first ack {took:?} after the kill");
    }
    let took = failover_run(&redis.url(), None, Server::kill).await;
    println!("failover, SIGKILL, 15 s lease: first ack {took:?} after the kill");
    for _ in 0..3 {
        let took = failover_run(&redis.url(), None, sigterm).await;
        println!("hand-over, SIGTERM: first ack {took:?} after the signal");
    }
}
