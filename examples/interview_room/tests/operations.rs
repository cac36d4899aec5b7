//! Eyes on a running server: the example logs its start (address, store,
//! adapter), its shutdown and its errors to standard error under
//! `RUST_LOG`, and serves the library's metrics as Prometheus text at
//! `/metrics`, over both adapters.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use collab_conformance::Client;
use serde_json::json;

/// The example server on a free port, its standard error read line by line.
struct Server {
    child: Child,
    url: String,
    log: mpsc::Receiver<String>,
}

impl Server {
    fn start(adapter: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("collab-ops-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_interview-room"))
            .env("COLLAB_ADDR", "127.0.0.1:0")
            .env("COLLAB_DB", dir.join("room.db"))
            .env("COLLAB_ADAPTER", adapter)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example server starts");
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines.next().expect("an address").expect("readable");
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                break url.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, url, log }
    }

    /// The first log line containing every one of `words`, within 10 s.
    fn log_line(&self, words: &[&str]) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .log
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {words:?}"));
            if words.iter().all(|w| line.contains(w)) {
                return line;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn metrics_text(url: &str) -> (String, String) {
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest_get(&format!("{url}/metrics")),
    )
    .await
    .expect("metrics in time");
    resp
}

async fn reqwest_get(url: &str) -> (String, String) {
    let resp = reqwest::get(url).await.expect("reachable");
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (kind, resp.text().await.expect("a body"))
}

/// The value of the first sample of `metric` whose labels contain `label`.
fn sample(text: &str, metric: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(metric) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn logs_and_metrics(adapter: &str) {
    let server = Server::start(adapter);
    let started = server.log_line(&["interview room started"]);
    assert!(started.contains("address=127.0.0.1:"), "{started}");
    assert!(started.contains("room.db"), "{started}");
    assert!(
        started.contains(&format!("adapter=\"{adapter}\"")),
        "{started}"
    );

    let c = Client::new(server.url.clone());
    let token = c.guest().await;
    let id = c.create(&token, json!({"title": "Ops"})).await;
    let (mut ws, _) = c.joined(&id, &token, "Ops").await;
    ws.send(json!({"type": "chat_send", "text": "hello", "rid": 1}))
        .await;
    ws.until("ack").await;
    ws.send_raw("{not json".into()).await;
    ws.until("error").await;
    let refused = c
        .rest(
            "GET",
            &format!("/api/v1/sessions/{id}"),
            Some("forged"),
            None,
        )
        .await;
    assert_eq!(refused.status, 401);

    let (kind, text) = metrics_text(&server.url).await;
    assert!(kind.starts_with("text/plain"), "{kind}");
    assert_eq!(sample(&text, "collab_connections", ""), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "collab_sessions_loaded", ""),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "collab_frames_in_total", "type=\"join\""),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "collab_frames_in_total", "type=\"chat_send\""),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "collab_frames_out_total", "type=\"welcome\"").is_some(),
        "{text}"
    );
    assert_eq!(
        sample(&text, "collab_errors_total", "code=\"malformed_frame\""),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "collab_errors_total", "code=\"unauthorized\""),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains("collab_store_save_seconds"), "{text}");
    assert!(text.contains("collab_session_step_seconds"), "{text}");
    assert_eq!(
        sample(&text, "collab_slow_consumer_drops_total", "").unwrap_or(0.0),
        0.0,
        "nobody was slow: {text}"
    );

    // Ctrl-C: the shutdown is logged, and so is the end.
    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    server.log_line(&["shutting down"]);
    server.log_line(&["interview room stopped"]);
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_metrics_over_axum() {
    logs_and_metrics("axum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_metrics_over_warp() {
    logs_and_metrics("warp").await;
}

#[test]
fn an_address_in_use_is_said_plainly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("bound").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_interview-room"))
        .env("COLLAB_ADDR", &addr)
        .env("COLLAB_DB", dir.path().join("x.db"))
        .env_remove("COLLAB_REDIS_URL")
        .output()
        .expect("runs");
    assert!(!out.status.success(), "a failure exit code");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("{addr} is already in use")) && said.contains("COLLAB_ADDR"),
        "{said}"
    );
    assert!(!said.contains("Os {"), "no raw error: {said}");
}
