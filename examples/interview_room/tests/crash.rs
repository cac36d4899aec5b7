//! The durability contract, end to end: a server process killed with SIGKILL
//! in the middle of editing comes back on the same SQLite file with every
//! edit and chat message it acknowledged, and a client resumes without gaps
//! or duplicates. And the same over Redis: two processes, the session's
//! owner killed, its clients carry on through the other.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use collab_conformance::{Client, Next};
use common::Server;
use serde_json::{json, Value};

fn temp_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("collab-crash-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// An insert of `text` at `at` as a text operation.
fn append(at: usize, text: &str) -> Value {
    if at == 0 {
        json!([text])
    } else {
        json!([at, text])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_edits_and_messages_survive_sigkill() {
    let dir = temp_dir();
    let db = dir.join("room.db");
    let mut server = Server::start(&db);
    let c = Client::new(server.url.clone());
    // A guest identity from the server; it must still be good after the
    // restart (the key is kept beside the database).
    let token = &c.guest().await;
    let id = c.create(token, json!({"title": "Crash", "code": ""})).await;
    let (mut ws, _) = c.joined(&id, token, "Hana").await;

    // Edit after edit (each waits for its ack, as a thin client's edits do),
    // with chat messages sent in between without waiting; then kill the
    // server with more of both in flight.
    let mut code = String::new();
    let mut rev = 0u64;
    let mut acked_edits: Vec<String> = Vec::new();
    let mut acked_messages: Vec<String> = Vec::new();
    let mut sent_messages: std::collections::HashMap<u64, String> = Default::default();
    let mut killed = false;
    'editing: for n in 0..100_000u64 {
        let piece = format!("e{n};");
        let edit = json!({"type": "text_op", "file": "main", "rev": rev, "op": append(code.len(), &piece), "oid": format!("o{n}")});
        if !ws.try_send(edit).await {
            break;
        }
        let rid = n + 1;
        let text = format!("m{rid}");
        if !ws
            .try_send(json!({"type": "chat_send", "text": text, "rid": rid}))
            .await
        {
            break;
        }
        sent_messages.insert(rid, text);
        // Two frames a step, under the default 60 frames a second.
        tokio::time::sleep(Duration::from_millis(40)).await;
        if acked_edits.len() >= 150 && !killed {
            server.kill();
            killed = true;
        }
        // Read until this edit's ack, collecting chat acks on the way.
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("an answer or a closed socket");
            match next {
                Next::Frame(f) if f["type"] == "text_ack" => {
                    rev = f["rev"].as_u64().expect("rev");
                    code.push_str(&piece);
                    acked_edits.push(piece.clone());
                    break;
                }
                Next::Frame(f) if f["type"] == "ack" => {
                    let rid = f["rid"].as_u64().expect("rid");
                    acked_messages.push(sent_messages[&rid].clone());
                }
                Next::Frame(f) if f["type"] == "error" => panic!("refused: {f}"),
                Next::Frame(_) | Next::Binary(_) => {}
                Next::Closed(..) => break 'editing,
            }
        }
    }
    assert!(killed, "the server was killed while editing");
    assert!(acked_edits.len() >= 150);

    // The same file, a new process.
    let server = Server::start(&db);
    let c = Client::new(server.url.clone());
    let view = c
        .rest("GET", &format!("/api/v1/sessions/{id}"), Some(token), None)
        .await;
    assert_eq!(view.status, 200, "{:?}", view.body);
    let stored = view.body["code"].as_str().expect("code").to_owned();
    assert!(
        stored.starts_with(&code),
        "every acknowledged edit, in order: {} acked, stored {:?}...",
        acked_edits.len(),
        &stored[..stored.len().min(80)]
    );
    // Nothing else: at most the edit in flight when the server died.
    let extra = &stored[code.len()..];
    assert!(
        extra.is_empty() || extra == format!("e{};", acked_edits.len()),
        "{extra:?}"
    );

    // Every acknowledged message is there, once, in the order acknowledged;
    // a reconnecting client catches up on them from its last sequence number.
    let (mut back, welcome) = c.joined(&id, token, "Hana").await;
    assert_eq!(welcome["you"], 1, "the same participant");
    assert_eq!(
        welcome["document"]["files"]["main"].as_str(),
        Some(stored.as_str())
    );
    let mut posted = Vec::new();
    let mut since = 0u64;
    loop {
        back.send(json!({"type": "events_since", "since": since, "rid": 1}))
            .await;
        let page = back.until("events").await;
        for e in page["events"].as_array().expect("events") {
            since = e["seq"].as_u64().expect("seq");
            if e["kind"] == "message_posted" {
                posted.push(e["message"]["text"].as_str().expect("text").to_owned());
            }
        }
        if page["has_more"] != true {
            break;
        }
    }
    let mut seen = std::collections::HashSet::new();
    assert!(
        posted.iter().all(|m| seen.insert(m.clone())),
        "no duplicates"
    );
    let in_store: Vec<&String> = posted
        .iter()
        .filter(|m| acked_messages.contains(m))
        .collect();
    assert_eq!(
        in_store.len(),
        acked_messages.len(),
        "every acknowledged message survived"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Joins `id` through the server at `c`, retrying while the session has no
/// live owner (the dead one's lease has not lapsed yet).
async fn join_when_served(c: &Client, id: &str, token: &str) -> (collab_conformance::Ws, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no owner took over");
        if let Ok(mut ws) = c.ws(id, token).await {
            ws.send(json!({"type": "join", "name": "Hana"})).await;
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Next::Frame(f)) if f["type"] == "welcome" => return (ws, f),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_its_owner_being_killed_on_redis() {
    let redis = collab_store_tests::redis_server::RedisServer::start();
    let mut owner = Server::start_on_redis(&redis.url());
    let other = Server::start_on_redis(&redis.url());
    let on_owner = Client::new(owner.url.clone());
    let on_other = Client::new(other.url.clone());
    // The guest key is shared: a token from one process is good on the other.
    let token = &on_owner.guest().await;
    let id = on_owner
        .create(token, json!({"title": "Failover", "code": ""}))
        .await;
    // The client is on the other process: its frames are forwarded to the owner.
    let (mut ws, welcome) = join_when_served(&on_other, &id, token).await;
    assert_eq!(welcome["you"], 1);

    let mut code = String::new();
    let mut rev = 0u64;
    for n in 0..20u64 {
        let piece = format!("e{n};");
        ws.send(json!({"type": "text_op", "file": "main", "rev": rev, "op": append(code.len(), &piece), "oid": format!("o{n}")}))
            .await;
        let ack = ws.until("text_ack").await;
        rev = ack["rev"].as_u64().expect("rev");
        code.push_str(&piece);
    }
    // One more in flight when the owner dies.
    let last = "last;";
    let in_flight = json!({"type": "text_op", "file": "main", "rev": rev, "op": append(code.len(), last), "oid": "o-last"});
    owner.kill();
    let _ = ws.try_send(in_flight.clone()).await;
    drop(ws);

    // The surviving process takes the session over once the lease lapses,
    // from what the owner acknowledged; the client resends its edit.
    let (mut ws, welcome) = join_when_served(&on_other, &id, token).await;
    assert_eq!(welcome["you"], 1, "the same participant");
    let text = welcome["document"]["files"]["main"].as_str().expect("text");
    assert!(text.starts_with(&code), "every acknowledged edit: {text:?}");
    let rev_now = welcome["document"]["rev"].as_u64().expect("rev");
    assert!(
        rev_now == rev || rev_now == rev + 1,
        "the same revisions go on"
    );
    if rev_now == rev {
        ws.send(in_flight).await;
        ws.until("text_ack").await;
    } else {
        assert_eq!(&text[code.len()..], last);
    }
    let view = on_other
        .rest("GET", &format!("/api/v1/sessions/{id}"), Some(token), None)
        .await;
    assert_eq!(view.status, 200, "{:?}", view.body);
    assert_eq!(
        view.body["code"],
        format!("{code}{last}"),
        "nothing lost, nothing twice"
    );
}

/// A small deterministic generator, seeded per run (the seed is printed).
struct Dice(u64);

impl Dice {
    fn new() -> Self {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("random");
        let seed = u64::from_le_bytes(seed) | 1;
        eprintln!("dice seed {seed}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What one writer had acknowledged, and what it sent without an answer.
#[derive(Default)]
struct Tally {
    edits: Vec<String>,
    messages: Vec<String>,
    unanswered: Vec<String>,
    reconnects: u64,
}

/// A thin client that, until told to stop, inserts a token at the start of
/// the file and then posts a chat message, each with an id for resending.
/// When its connection breaks it reconnects to any live process and
/// resends what was not acknowledged, with the same id.
async fn writer(
    name: String,
    id: String,
    token: String,
    urls: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<std::sync::atomic::AtomicU64>,
) -> Tally {
    use std::sync::atomic::Ordering;
    let mut tally = Tally::default();
    let mut n = 0u64;
    // The frame waiting for its acknowledgement, and what it carries.
    let mut pending: Option<(Value, String, bool)> = None;
    let mut attempt = 0usize;
    'connection: while !stop.load(Ordering::SeqCst) {
        attempt += 1;
        let url = {
            let urls = urls.lock().unwrap();
            urls[attempt % urls.len()].clone()
        };
        let Ok(mut ws) = Client::new(url).try_ws(&id, &token).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if !ws.try_send(json!({"type": "join", "name": name})).await {
            continue;
        }
        let (mut rev, mut len) = loop {
            match ws.next_within(Duration::from_secs(5)).await {
                Some(Next::Frame(f)) if f["type"] == "welcome" => {
                    let doc = &f["document"];
                    break (
                        doc["rev"].as_u64().expect("rev"),
                        doc["files"]["main"].as_str().expect("text").len(),
                    );
                }
                Some(Next::Frame(_)) | Some(Next::Binary(_)) => {}
                _ => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'connection;
                }
            }
        };
        tally.reconnects += 1;
        loop {
            let (frame, what, is_edit) = match pending.take() {
                // Resent as it was: same id, same base revision.
                Some(p) => p,
                None if stop.load(Ordering::SeqCst) => break 'connection,
                None if n.is_multiple_of(2) => {
                    let mark = format!("[{name}.{n}]");
                    n += 1;
                    let op = if len == 0 {
                        json!([mark])
                    } else {
                        json!([mark, len])
                    };
                    let frame = json!({"type": "text_op", "file": "main", "rev": rev, "op": op, "oid": format!("{name}.{n}")});
                    (frame, mark, true)
                }
                None => {
                    let text = format!("{name} says {n}");
                    n += 1;
                    let frame = json!({"type": "chat_send", "text": text, "cid": format!("{name}.{n}"), "rid": n});
                    (frame, text, false)
                }
            };
            pending = Some((frame.clone(), what.clone(), is_edit));
            // A person's pace, well inside the session's rate limit.
            tokio::time::sleep(Duration::from_millis(25)).await;
            if !ws.try_send(frame.clone()).await {
                continue 'connection;
            }
            let answered = loop {
                match ws.next_within(Duration::from_secs(8)).await {
                    Some(Next::Frame(f)) => match f["type"].as_str() {
                        Some("text_op") => {
                            rev = f["rev"].as_u64().expect("rev");
                            len += f["op"]
                                .as_array()
                                .expect("op")
                                .iter()
                                .filter_map(Value::as_str)
                                .map(str::len)
                                .sum::<usize>();
                        }
                        Some("text_ack") if is_edit && f["oid"] == frame["oid"] => {
                            // A resend of what was applied before is answered
                            // with its old revision: nothing moves then.
                            let at = f["rev"].as_u64().expect("rev");
                            if at > rev {
                                rev = at;
                                len += what.len();
                            }
                            break true;
                        }
                        Some("ack") if !is_edit && f["rid"] == frame["rid"] => break true,
                        Some("error") if f["code"] == "rate_limited" => {
                            // Too quick after a reconnect's burst: again, later.
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            if !ws.try_send(frame.clone()).await {
                                break false;
                            }
                        }
                        Some("error") => panic!("{name}: refused {frame}: {f}"),
                        _ => {}
                    },
                    Some(Next::Binary(_)) => {}
                    Some(Next::Closed(..)) | None => break false,
                }
            };
            if !answered {
                continue 'connection;
            }
            pending = None;
            if is_edit {
                tally.edits.push(what);
            } else {
                tally.messages.push(what);
            }
            acked.fetch_add(1, Ordering::SeqCst);
        }
    }
    if let Some((_, what, _)) = pending {
        tally.unanswered.push(what);
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_owner_kills_lose_nothing() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const LEASE_MS: u64 = 1_500;
    const KILLS: usize = 20;
    let redis = collab_store_tests::redis_server::RedisServer::start();
    let mut servers: Vec<Server> = (0..3)
        .map(|_| Server::start_on_redis_with_lease(&redis.url(), LEASE_MS))
        .collect();
    let urls = Arc::new(Mutex::new(
        servers.iter().map(|s| s.url.clone()).collect::<Vec<_>>(),
    ));
    let first = Client::new(servers[0].url.clone());
    let host = first.guest().await;
    let id = first
        .create(&host, json!({"title": "Kills", "code": ""}))
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    let mut member = String::new();
    for name in ["ann", "bob", "cy"] {
        let token = first.guest().await;
        member.clone_from(&token);
        writers.push(tokio::spawn(writer(
            name.into(),
            id.clone(),
            token,
            Arc::clone(&urls),
            Arc::clone(&stop),
            Arc::clone(&acked),
        )));
    }

    let mut dice = Dice::new();
    let lease_key = format!("interview-room:{{{id}}}:lease");
    let mut kills = 0;
    while kills < KILLS {
        // A random moment, with the writers busy.
        tokio::time::sleep(Duration::from_millis(100 + dice.below(1_200))).await;
        let Some(lease) = redis.get(&lease_key) else {
            continue;
        };
        let owner = lease.split_once(' ').expect("EPOCH OWNER").1;
        let port = owner.rsplit_once('-').expect("ADDR-TAG").0;
        let Some(at) = servers.iter().position(|s| s.url.ends_with(port)) else {
            continue;
        };
        let before = acked.load(Ordering::SeqCst);
        servers[at].kill();
        kills += 1;
        // A fresh process takes the dead one's place for the clients.
        let fresh = Server::start_on_redis_with_lease(&redis.url(), LEASE_MS);
        urls.lock().unwrap()[at] = fresh.url.clone();
        servers[at] = fresh;
        // The next kill only once the session is served again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::SeqCst) < before + 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "kill {kills}: no progress after the owner died"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut tallies = Vec::new();
    for w in writers {
        tallies.push(w.await.expect("a writer"));
    }

    // What the session holds, read from a survivor.
    let reader = Client::new(servers[1].url.clone());
    let view = reader
        .rest("GET", &format!("/api/v1/sessions/{id}"), Some(&host), None)
        .await;
    assert_eq!(view.status, 200, "{:?}", view.body);
    let code = view.body["code"].as_str().expect("code").to_owned();
    let mut posted: Vec<String> = Vec::new();
    let mut since = 0;
    loop {
        let page = reader
            .rest(
                "GET",
                &format!("/api/v1/sessions/{id}/events?since={since}"),
                Some(&member),
                None,
            )
            .await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for event in page.body["events"].as_array().expect("events") {
            if event["kind"] == "message_posted" {
                posted.push(event["message"]["text"].as_str().expect("text").into());
            }
        }
        since = page.body["last_seq"].as_u64().expect("last_seq");
        if page.body["has_more"] != true {
            break;
        }
    }
    let (mut edits, mut messages, mut reconnects) = (0, 0, 0);
    for tally in &tallies {
        for mark in &tally.edits {
            assert_eq!(
                code.matches(mark.as_str()).count(),
                1,
                "{mark}: acknowledged, so there once"
            );
        }
        for text in &tally.messages {
            assert_eq!(
                posted.iter().filter(|p| *p == text).count(),
                1,
                "{text}: acknowledged, so there once"
            );
        }
        for what in &tally.unanswered {
            assert!(
                code.matches(what.as_str()).count() + posted.iter().filter(|p| *p == what).count()
                    <= 1,
                "{what}: never twice"
            );
        }
        edits += tally.edits.len();
        messages += tally.messages.len();
        reconnects += tally.reconnects;
    }
    eprintln!(
        "{kills} owner kills: {edits} acknowledged edits and {messages} messages, \
         each there once; {reconnects} connections"
    );
    assert_eq!(kills, KILLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_leaves_hands_its_sessions_over() {
    let redis = collab_store_tests::redis_server::RedisServer::start();
    // The default lease: 15 s, which a hand-over must not wait for.
    let mut leaving = Server::start_on_redis(&redis.url());
    let staying = Server::start_on_redis(&redis.url());
    let on_leaving = Client::new(leaving.url.clone());
    let on_staying = Client::new(staying.url.clone());
    let token = &on_leaving.guest().await;
    let id = on_leaving
        .create(token, json!({"title": "Hand-over", "code": ""}))
        .await;
    // One client on each process; the session is the leaving one's.
    let (mut direct, _) = on_leaving.joined(&id, token, "Ann").await;
    let other_token = &on_staying.guest().await;
    let (mut forwarded, _) = on_staying.joined(&id, other_token, "Bob").await;
    direct
        .send(json!({"type": "text_op", "file": "main", "rev": 0, "op": ["kept;"], "oid": "a1"}))
        .await;
    direct.until("text_ack").await;

    let started = std::time::Instant::now();
    let status = leaving.terminate();
    assert!(status.success(), "a clean exit: {status:?}");
    // Both clients are told to go, as in any restart...
    for ws in [&mut direct, &mut forwarded] {
        let goodbye = ws.until("goodbye").await;
        assert_eq!(goodbye["reason"], "server_shutdown");
    }
    // ...and come back through the process that stays, which serves the
    // session at once: the lease was handed over, not left to lapse.
    let (mut back, welcome) = on_staying.joined(&id, token, "Ann").await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "served again after {waited:?}, before the 15 s lease could lapse"
    );
    assert_eq!(welcome["document"]["files"]["main"], "kept;");
    back.send(
        json!({"type": "text_op", "file": "main", "rev": 1, "op": [5, "more;"], "oid": "a2"}),
    )
    .await;
    let ack = back.until("text_ack").await;
    assert_eq!(ack["rev"], 2, "the same revisions go on");
    let lease = redis
        .get(&format!("interview-room:{{{id}}}:lease"))
        .expect("a lease");
    let port = staying.url.rsplit(':').next().unwrap().to_owned();
    assert!(lease.contains(&format!(":{port}-")), "{lease}");
    eprintln!("handed over: served again {waited:?} after SIGTERM");
}
