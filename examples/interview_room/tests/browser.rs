//! Browser tests of the interview room page, over both adapters.
//!
//! Starts the example server on a free port, then runs the scenarios of
//! `tests/browser/room.test.mjs` (node's test runner, with playwright-core
//! driving the system's headless Chromium in one browser context per person)
//! against it: all of them against the axum app and all of them against the
//! warp app, which shows the two interchangeable. The two runs take turns: two browsers at once on a small machine make timing
//! flaky. Screenshots land in `target/screenshots/axum-<scenario>.png` and
//! `warp-<scenario>.png` at the workspace root.
//!
//! Needs Node.js 20+, npm (only while `node_modules` is missing) and Chromium
//! at `/usr/bin/chromium` (Debian: `apt-get install chromium`), or wherever
//! `CHROMIUM_PATH` says. Playwright never downloads a browser here. Without
//! them this test fails, naming what is missing, rather than skipping: a CI
//! that cannot run the browser must not look green.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The whole browser suite must finish within this; the machine is shared and
/// slow, but a hung browser must not hang CI.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the server may take to print its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Held by a browser run, so the two runs take turns.
static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::new(());

fn example_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_root() -> PathBuf {
    example_dir().join("../..")
}

fn npm() -> &'static str {
    if cfg!(windows) {
        "npm.cmd"
    } else {
        "npm"
    }
}

/// The example server, killed (and its temporary directory removed) on drop,
/// also when an assertion fails.
struct Server {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the example with `adapter` (`axum` or `warp`) and checks, from
/// what it prints, that this adapter serves it.
fn start_server(adapter: &str) -> Server {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "interview-room-browser-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory for the server");
    let mut child = Command::new(env!("CARGO_BIN_EXE_interview-room"))
        .arg(format!("--{adapter}"))
        // Port 0: the OS picks a free port and the server prints it.
        .env("COLLAB_ADDR", "127.0.0.1:0")
        // A fresh database, for when the example stores sessions.
        .env("COLLAB_DB", dir.join("collab.db"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the interview-room binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    // Reads the address and the adapter's line, then keeps draining so the
    // server never blocks on a full pipe.
    thread::spawn(move || {
        let (mut url, mut served_by) = (None, None);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on ").nth(1) {
                url = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(rest) = line.strip_prefix("served by ") {
                served_by = rest.split_whitespace().next().map(str::to_owned);
            }
            if let (Some(u), Some(a)) = (&url, &served_by) {
                let _ = tx.send((u.clone(), a.clone()));
                (url, served_by) = (None, None);
            }
        }
    });
    let (url, served_by) = match rx.recv_timeout(STARTUP_TIMEOUT) {
        Ok(started) => started,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "the interview-room server did not print `listening on http://ADDR` and \
                 `served by ADAPTER` in time"
            );
        }
    };
    assert_eq!(served_by, adapter, "the server runs the adapter asked for");
    Server { child, url, dir }
}

/// Node must run; the pinned playwright-core is installed from the lock file
/// when missing or of another version.
fn ensure_node_setup() {
    let version = Command::new("node").arg("--version").output().unwrap_or_else(|e| {
        panic!("`node` could not be run ({e}): Node.js 20 or later is required for the browser tests")
    });
    assert!(
        version.status.success(),
        "`node --version` failed: {}",
        String::from_utf8_lossy(&version.stderr)
    );
    let dir = example_dir();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("package.json")).expect("read package.json"),
    )
    .expect("package.json is JSON");
    let pinned = manifest["devDependencies"]["playwright-core"]
        .as_str()
        .expect("package.json pins playwright-core")
        .to_owned();
    let installed = std::fs::read_to_string(dir.join("node_modules/playwright-core/package.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned));
    if installed.as_deref() == Some(pinned.as_str()) {
        return;
    }
    let out = Command::new(npm())
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("`npm` could not be run ({e}): npm is required to install playwright-core")
        });
    assert!(
        out.status.success(),
        "`npm ci` in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM_PATH")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "Chromium is required for the browser tests and was not found at {} \
         (install it with `apt-get install chromium`, or set CHROMIUM_PATH)",
        path.display()
    );
    path
}

/// Runs a child to completion within `timeout`, returning its status and
/// everything it printed; kills it on timeout.
fn run_with_timeout(mut command: Command, timeout: Duration) -> (bool, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {command:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let output = format!(
        "{}{}",
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default()
    );
    match status {
        Some(status) => (status.success(), output),
        None => (
            false,
            format!("{output}\n(killed after {}s)", timeout.as_secs()),
        ),
    }
}

/// Runs the scenarios named in `scenarios` (all when `None`) against the
/// example served by `adapter`.
fn browser_scenarios(adapter: &str, scenarios: Option<&str>) {
    let chromium = chromium();
    // A run that failed still lets the other one run.
    let _turn = ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure_node_setup();
    let server = start_server(adapter);
    let screenshots = workspace_root().join("target").join("screenshots");

    let mut node = Command::new("node");
    node.args([
        "--test",
        "--test-reporter=spec",
        "tests/browser/room.test.mjs",
    ])
    .current_dir(example_dir())
    .env("INTERVIEW_ROOM_URL", &server.url)
    .env("CHROMIUM_PATH", &chromium)
    .env("SCREENSHOT_DIR", &screenshots)
    .env("SCREENSHOT_PREFIX", format!("{adapter}-"))
    .env("SCENARIOS", scenarios.unwrap_or_default());
    let (ok, output) = run_with_timeout(node, SUITE_TIMEOUT);
    // Shown with --nocapture, and always when the test fails.
    println!("{output}");
    drop(server);
    assert!(
        ok,
        "the browser scenarios over {adapter} failed (screenshots in {}):\n{output}",
        screenshots.display()
    );
}

#[test]
fn browser_scenarios_over_axum() {
    browser_scenarios("axum", None);
}

#[test]
fn browser_scenarios_over_warp() {
    browser_scenarios("warp", None);
}
