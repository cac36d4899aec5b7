//! Run with: `cargo run --release -p collab-benches --bin collab-bench-server -- [--sqlite FILE] [--commit-window-ms N] [--capacity N] PORT`
//!
//! The collab server `../shared/peerbench` measures: the library served the
//! way the README shows (collab-axum's `serve`, TCP_NODELAY), on 127.0.0.1:PORT,
//! with the limits a load generator would trip lifted: no per-connection
//! frame rate limit, no per-address connection or session-creation limits,
//! room for every connection. Any token of 8 to 128 URL-safe characters is a
//! user of its own (the load generator makes them up), which no real server
//! should allow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use collab_axum::HttpConfig;
use collab_core::{AuthError, Identity};
use collab_server::{Authenticator, Hub, HubConfig, Rate, TokioClock};
use collab_sqlite::{SqliteOptions, SqliteStore};

// The example app's allocator and its settings: see that file.
#[path = "../../../examples/interview_room/src/allocator.rs"]
mod allocator;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str =
    "usage: collab-bench-server [--sqlite FILE] [--commit-window-ms N] [--capacity N] PORT";

/// Bench-only: the token names the user.
struct AnyToken;

#[async_trait]
impl Authenticator for AnyToken {
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let token = token.ok_or(AuthError::Missing)?;
        let valid = (8..=128).contains(&token.len())
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(AuthError::Invalid);
        }
        Ok(Identity::new(format!("bench:{token}"), "Bench"))
    }
}

struct Args {
    port: u16,
    sqlite: Option<String>,
    capacity: usize,
    commit_window: Option<Duration>,
}

fn args() -> Result<Args, String> {
    let (mut port, mut sqlite, mut capacity, mut commit_window) = (None, None, 1000, None);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sqlite" => sqlite = Some(it.next().ok_or("--sqlite needs a file")?),
            "--capacity" => {
                let n = it.next().ok_or("--capacity needs a number")?;
                capacity = n.parse().map_err(|e| format!("--capacity {n}: {e}"))?;
            }
            "--commit-window-ms" => {
                let n = it.next().ok_or("--commit-window-ms needs a number")?;
                let ms: u64 = n
                    .parse()
                    .map_err(|e| format!("--commit-window-ms {n}: {e}"))?;
                commit_window = Some(Duration::from_millis(ms));
            }
            p => port = Some(p.parse().map_err(|e| format!("port {p}: {e}"))?),
        }
    }
    Ok(Args {
        port: port.ok_or("no port")?,
        sqlite,
        capacity,
        commit_window,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Err(e) = allocator::tune() {
        eprintln!("jemalloc keeps its default settings: {e}");
    }
    let args = args().unwrap_or_else(|problem| {
        eprintln!("{problem}\n{USAGE}");
        std::process::exit(2);
    });
    let unlimited = Rate::new(u32::MAX, Duration::from_millis(1));
    let mut config = HubConfig::default();
    config.session.capacity = args.capacity;
    config.session.max_connections = args.capacity + 50;
    config.session.frames_per_second = 1_000_000;
    config.session.frame_burst = 1_000_000;
    config.max_connections_per_address = usize::MAX;
    config.session_creation = unlimited;
    config.guest_issue = unlimited;
    let (auth, clock) = (Arc::new(AnyToken), Arc::new(TokioClock::new()));
    let hub = match &args.sqlite {
        Some(path) => {
            let mut options = SqliteOptions::default();
            if let Some(window) = args.commit_window {
                options.commit_window = window;
            }
            let store = SqliteStore::open_with(path, options)?;
            Hub::builder(auth)
                .clock(clock)
                .config(config)
                .store(Arc::new(store))
                .build()
        }
        None => Hub::builder(auth).clock(clock).config(config).build(),
    };
    let mut http = HttpConfig::default();
    http.max_connections = 1_000_000;
    http.max_sockets_per_address = 1_000_000;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let store = args
        .sqlite
        .as_deref()
        .map_or("none".into(), |p| format!("sqlite {p}"));
    println!(
        "collab listening on ws://{addr}/ws/session/{{id}} (store: {store}, capacity {})",
        args.capacity
    );
    // What the heap holds, beside the RSS peerbench reads from outside.
    tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if let Some((live, resident)) = allocator::heap() {
                println!(
                    "heap: {:.1} MB live, {:.1} MB resident",
                    live as f64 / 1e6,
                    resident as f64 / 1e6
                );
            }
        }
    });
    let app = axum::Router::new().merge(collab_axum::router(hub.clone(), http.clone()));
    let shutdown = async move {
        let _ = tokio::signal::ctrl_c().await;
        hub.shutdown().await;
    };
    collab_axum::serve(listener, app, http, shutdown).await;
    Ok(())
}
