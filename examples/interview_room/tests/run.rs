//! `POST /api/v1/run`, end to end against the example binary, over both
//! adapters: JavaScript runs in the embedded sandbox and is stopped by its
//! limits without hurting the server; nothing runs on the host unless the
//! server was started with host commands on.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use collab_conformance::{Client, Reply};
use serde_json::{json, Value};

/// A guest of the server who joined a session: who runs the programs.
#[derive(Clone)]
struct Member {
    token: String,
    session: String,
}

/// A fresh guest who creates a session and joins it (over REST).
async fn member(c: &Client) -> Member {
    let token = c.guest().await;
    let session = c.create(&token, json!({"language": "javascript"})).await;
    join(c, &token, &session).await;
    Member { token, session }
}

async fn join(c: &Client, token: &str, session: &str) {
    let r = c
        .rest(
            "POST",
            &format!("/api/v1/sessions/{session}/users"),
            Some(token),
            Some(json!({"name": "Runner"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// The example server on a free port with a fresh database; killed (and its
/// directory removed) on drop.
struct Server {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Server {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("interview-room-run-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_interview-room"))
            .args(args)
            .env("COLLAB_ADDR", "127.0.0.1:0")
            .env("COLLAB_DB", dir.join("room.db"))
            .env_remove("COLLAB_ADAPTER")
            .env_remove("COLLAB_RUN_ON_HOST")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example server starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the server prints its address")
                .expect("readable");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .expect("an address")
                    .to_owned();
            }
        };
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, url, dir }
    }

    fn client(&self) -> Client {
        Client::new(self.url.clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn run(c: &Client, m: &Member, language: &str, code: &str) -> Reply {
    c.rest(
        "POST",
        "/api/v1/run",
        Some(&m.token),
        Some(json!({"session": m.session, "language": language, "code": code})),
    )
    .await
}

fn text(body: &Value, field: &str) -> String {
    body[field].as_str().unwrap_or_default().to_owned()
}

/// Everything the default (sandboxed) runner promises, on one server.
async fn sandboxed_runs(c: &Client) {
    let m = &member(c).await;
    // Output is captured, values printed as node prints them.
    let r = run(
        c,
        m,
        "javascript",
        "function solve(nums) { return [...nums].sort((a, b) => a - b); }\n\
         console.log(solve([3, 1, 2]));\nconsole.error('done');",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"stdout": "[ 1, 2, 3 ]\n", "stderr": "done\n", "exit_code": 0})
    );

    // An uncaught exception: its message on stderr, exit code 1.
    let r = run(
        c,
        m,
        "javascript",
        "console.log('a');\nthrow new Error('boom');",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(text(&r.body, "stdout"), "a\n");
    assert!(
        text(&r.body, "stderr").starts_with("Uncaught Error: boom"),
        "{}",
        r.body
    );
    assert_eq!(r.body["exit_code"], 1);

    // An endless loop is stopped at the time limit, with no exit code...
    let started = Instant::now();
    let r = run(
        c,
        m,
        "javascript",
        "console.log('looping'); while (true) {}",
    )
    .await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"stdout": "looping\n", "stderr": "time limit exceeded (2 s)\n", "exit_code": null})
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "{took:?}"
    );
    // ... and the server answers as before.
    let health = c.rest("GET", "/api/v1/health", None, None).await;
    assert_eq!(health.status, 200);
    let r = run(c, m, "javascript", "console.log(6 * 7)").await;
    assert_eq!(text(&r.body, "stdout"), "42\n", "{}", r.body);

    // A memory bomb is stopped at the memory limit.
    let r = run(
        c,
        m,
        "javascript",
        "const keep = []; for (;;) keep.push({n: keep.length, pad: 'x'.repeat(100) + keep.length});",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"stdout": "", "stderr": "memory limit exceeded (32 MiB)\n", "exit_code": null})
    );

    // Python would need the host: 501, saying how to turn it on.
    let r = run(c, m, "python", "print(1)").await;
    assert_eq!(r.status, 501, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "unsupported_language");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("JavaScript") && message.contains("--allow-host-commands"),
        "{message}"
    );

    // No credential, or a bad one: 401, and nothing runs.
    let body = json!({"language": "javascript", "code": "console.log(1)"});
    let r = c
        .rest("POST", "/api/v1/run", None, Some(body.clone()))
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "unauthorized");
    let r = c.rest("POST", "/api/v1/run", Some("no"), Some(body)).await;
    assert_eq!(r.status, 401, "{}", r.body);

    // A body that is not a run request: 400 in the collab error shape.
    let r = c
        .rest(
            "POST",
            "/api/v1/run",
            Some(&m.token),
            Some(json!({"session": m.session, "code": 1})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "invalid_input");

    // Past 256 KiB: 413.
    let r = run(c, m, "javascript", &"1;".repeat(140 * 1024)).await;
    assert_eq!(r.status, 413, "{}", r.body);

    // A native call the interpreter cannot interrupt is stopped by the
    // child's CPU-time limit, and the server goes on.
    let started = Instant::now();
    let r = run(
        c,
        m,
        "javascript",
        "Array.prototype.indexOf.call({length: 4e9}, 1)",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["exit_code"], Value::Null, "{}", r.body);
    assert!(
        text(&r.body, "stderr").contains("time limit exceeded"),
        "{}",
        r.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let r = run(c, m, "javascript", "console.log('after')").await;
    assert_eq!(text(&r.body, "stdout"), "after\n", "{}", r.body);

    // Only a member who may edit runs code, and only for their session.
    let stranger = c.guest().await;
    let r = c
        .rest(
            "POST",
            "/api/v1/run",
            Some(&stranger),
            Some(json!({"session": m.session, "language": "javascript", "code": "1"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{}",
        r.body
    );
    let body = json!({"language": "javascript", "code": "1"});
    let r = c
        .rest("POST", "/api/v1/run", Some(&m.token), Some(body))
        .await;
    assert_eq!(r.status, 400, "a run names its session: {}", r.body);

    // The session's own rule decides, as for its frames: while a host has
    // the session paused, only hosts change its code, and so only they run.
    let editor = Member {
        token: c.guest().await,
        session: m.session.clone(),
    };
    join(c, &editor.token, &editor.session).await;
    let r = run(c, &editor, "javascript", "console.log('e')").await;
    assert_eq!(text(&r.body, "stdout"), "e\n", "an editor runs: {}", r.body);
    let path = format!("/api/v1/sessions/{}", m.session);
    let pause = |status: &'static str| {
        c.rest(
            "PATCH",
            &path,
            Some(&m.token),
            Some(json!({ "status": status })),
        )
    };
    assert_eq!(pause("paused").await.status, 200);
    let r = run(c, &editor, "javascript", "console.log('e')").await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("paused")),
        "{}",
        r.body
    );
    let r = run(c, m, "javascript", "console.log('h')").await;
    assert_eq!(text(&r.body, "stdout"), "h\n", "the host runs: {}", r.body);
    assert_eq!(pause("active").await.status, 200);
    let r = run(c, &editor, "javascript", "console.log('e')").await;
    assert_eq!(text(&r.body, "stdout"), "e\n", "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_runs_sandboxed_over_axum() {
    let server = Server::start(&[], &[]);
    sandboxed_runs(&server.client()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_runs_sandboxed_over_warp() {
    let server = Server::start(&["--warp"], &[]);
    sandboxed_runs(&server.client()).await;
}

/// Two programs run at a time; more wait briefly, then get 429. The server
/// keeps answering everything else meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_are_limited() {
    let server = Server::start(&[], &[("COLLAB_ADAPTER", "warp")]);
    let c = server.client();
    let host = member(&c).await;
    // Six people in one session, one run each.
    let mut people = vec![host.clone()];
    for _ in 0..5 {
        let token = c.guest().await;
        join(&c, &token, &host.session).await;
        people.push(Member {
            token,
            session: host.session.clone(),
        });
    }
    let runs: Vec<_> = people
        .into_iter()
        .map(|m| {
            let c = c.clone();
            tokio::spawn(async move { run(&c, &m, "javascript", "for (;;) {}").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let health = c.rest("GET", "/api/v1/health", None, None).await;
    assert_eq!(health.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let mut statuses = Vec::new();
    for r in runs {
        let r = r.await.expect("the request task");
        if r.status == 429 {
            assert_eq!(r.body["error"]["code"], "rate_limited", "{}", r.body);
        } else {
            assert_eq!(
                r.body["stderr"], "time limit exceeded (2 s)\n",
                "{}",
                r.body
            );
        }
        statuses.push(r.status);
    }
    // Two run at once and two more get the slots within the 3 s they may
    // wait; the last two should not. Counted loosely: the machine is shared.
    let ran = statuses.iter().filter(|&&s| s == 200).count();
    let refused = statuses.iter().filter(|&&s| s == 429).count();
    assert!(
        ran >= 2 && refused >= 1 && ran + refused == 6,
        "{statuses:?}"
    );
}

fn python3() -> Result<(), String> {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`python3 --version` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("`python3` could not be started: {e}")),
    }
}

/// With host commands on, Python runs as a process: in an empty directory of
/// its own, without the server's environment, its output captured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_runs_on_the_host_only_when_allowed() {
    if let Err(why) = python3() {
        println!("skipped: python3 is needed for this test and is not usable here: {why}");
        return;
    }
    let server = Server::start(
        &["--allow-host-commands"],
        &[("INTERVIEW_ROOM_TEST_SECRET", "do-not-leak")],
    );
    let c = server.client();
    let m = &member(&c).await;
    let r = run(
        &c,
        m,
        "python",
        "import os, sys\n\
         print(sorted(os.listdir('.')), os.environ.get('INTERVIEW_ROOM_TEST_SECRET'))\n\
         print('to stderr', file=sys.stderr)\n\
         sys.exit(3)\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"stdout": "['main.py'] None\n", "stderr": "to stderr\n", "exit_code": 3})
    );
    let r = run(&c, m, "python", "raise ValueError('bad')").await;
    assert_eq!(r.body["exit_code"], 1, "{}", r.body);
    assert!(
        text(&r.body, "stderr").contains("ValueError: bad"),
        "{}",
        r.body
    );
    // Past the wall-clock limit the program is killed, with what it started.
    let started = Instant::now();
    let r = run(
        &c,
        m,
        "python",
        "import subprocess, time\n\
         subprocess.Popen(['sleep', '60'])\n\
         print('waiting', flush=True)\n\
         time.sleep(60)\n",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        r.body,
        json!({"stdout": "waiting\n", "stderr": "time limit exceeded (5 s)\n", "exit_code": null})
    );
    // JavaScript still runs in the sandbox; other languages still do not run.
    let r = run(&c, m, "javascript", "console.log('js')").await;
    assert_eq!(text(&r.body, "stdout"), "js\n", "{}", r.body);
    let r = run(&c, m, "ruby", "puts 1").await;
    assert_eq!(r.status, 501, "{}", r.body);
}
