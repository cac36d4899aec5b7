//! The example server as a process for the tests: started on a free port,
//! its address read from what it prints, killed when dropped.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The example server on a free port over the database at `db`; killed
/// with SIGKILL on drop.
pub struct Server {
    child: Child,
    pub url: String,
}

impl Server {
    pub fn start(db: &Path) -> Self {
        Self::start_with("COLLAB_DB", db.to_str().expect("a UTF-8 path"))
    }

    /// One of the processes sharing the Redis at `url`.
    pub fn start_on_redis(url: &str) -> Self {
        Self::start_with("COLLAB_REDIS_URL", url)
    }

    /// One of the processes sharing the Redis at `url`, whose sessions
    /// pass to another `lease_ms` after it dies.
    pub fn start_on_redis_with_lease(url: &str, lease_ms: u64) -> Self {
        Self::start_with_env(&[
            ("COLLAB_REDIS_URL", url),
            ("COLLAB_LEASE_MS", &lease_ms.to_string()),
        ])
    }

    /// As [`Server::start`] and [`Server::start_on_redis`] with more
    /// settings; `store` is `COLLAB_DB` or `COLLAB_REDIS_URL`.
    pub fn start_with_more(store: &str, at: &str, more: &[(&str, &str)]) -> Self {
        let mut env = vec![(store, at)];
        env.extend_from_slice(more);
        Self::start_with_env(&env)
    }

    fn start_with(store: &str, at: &str) -> Self {
        Self::start_with_env(&[(store, at)])
    }

    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        // The memory bench measures an older build beside this one when
        // `COLLAB_SERVER_BIN` names its binary.
        let program = std::env::var_os("COLLAB_SERVER_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_interview-room").into());
        let mut child = Command::new(program)
            .env("COLLAB_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied())
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

    /// SIGTERM: what a service manager sends a process it stops; waits
    /// for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.child.wait().expect("the server exits")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flush, nothing but what was committed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `node` with `args` in the example's directory (and `env`), prints
/// what it said, and fails the test, with that output, unless it succeeded
/// and its test summary counts some passed tests and no failed one. `what`
/// names the suite in the message.
pub fn node_tests(what: &str, args: &[&str], env: &[(&str, &str)]) {
    let out = Command::new("node")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("`node` could not be run ({e}): Node.js 20+ is required"));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{output}");
    assert!(out.status.success(), "{what} failed:\n{output}");
    let count = |word: &str| {
        output
            .lines()
            .find_map(|l| l.trim_start_matches(['ℹ', '#', ' ']).strip_prefix(word))
            .and_then(|n| n.trim().parse::<u32>().ok())
    };
    assert_eq!(count("fail "), Some(0), "{what}: failures\n{output}");
    assert!(
        count("pass ").unwrap_or(0) > 0,
        "{what}: nothing ran\n{output}"
    );
}
