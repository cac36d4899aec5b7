//! The durability contract, end to end: a server process killed with SIGKILL
//! in the middle of editing comes back on the same SQLite file with every
//! edit and chat message it acknowledged, and a client resumes without gaps
//! or duplicates. And the same over Redis: two processes, the session's
//! owner killed, its clients carry on through the other.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use collab_conformance::{Client, Next};
use serde_json::{json, Value};

/// The example server on a free port over the database at `db`; killed
/// with SIGKILL on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(db: &Path) -> Self {
        Self::start_with("COLLAB_DB", db.to_str().expect("a UTF-8 path"))
    }

    /// One of the processes sharing the Redis at `url`.
    fn start_on_redis(url: &str) -> Self {
        Self::start_with("COLLAB_REDIS_URL", url)
    }

    fn start_with(store: &str, at: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_interview-room"))
            .env("COLLAB_ADDR", "127.0.0.1:0")
            .env(store, at)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the server prints its address")
                .expect("readable");
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                break url.to_owned();
            }
        };
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, url }
    }

    /// SIGKILL: no shutdown, no flush, nothing but what was committed.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

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
