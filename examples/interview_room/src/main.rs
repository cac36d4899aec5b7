//! Run with: `cargo run -p interview-room` (then open the printed address).
//!
//! The collab example server: an interview room where people join a shared
//! session by link, chat, comment on lines of code and see each other's
//! presence. The same page is served over axum (collab-axum, the default) or
//! warp (collab-warp): `cargo run -p interview-room -- --warp`, or
//! `COLLAB_ADAPTER=warp`.
//!
//! Set `COLLAB_ADDR` to listen elsewhere than 127.0.0.1:8080 (port 0 picks a
//! free one), and `COLLAB_DB` to keep sessions in another SQLite file than
//! `interview-room.db` (in the current directory). Sessions survive restarts:
//! whatever the server acknowledged is in that file.
//!
//! Set `COLLAB_REDIS_URL=redis://host:port` to run several processes (each
//! with its own `COLLAB_ADDR`) as one server: sessions are kept in that
//! Redis, each is run by one process at a time and reached from any, and a
//! session whose process died is taken over by another (see collab-redis
//! for the Redis settings that keep acknowledged edits).
//!
//! The Run button runs JavaScript in an embedded interpreter with time and
//! memory limits. Nothing runs on the machine itself unless the server is
//! started with `--allow-host-commands` (or `COLLAB_RUN_ON_HOST=1`); then
//! Python runs too, as a process.
//!
//! Logs go to standard error, filtered by `RUST_LOG` (default `info`; try
//! `RUST_LOG=collab_server=debug`). Prometheus reads the server's counters
//! at `/metrics`.
//!
//! Anyone holding a session's link may join: the app uses
//! [`GuestAuthenticator`]. The page asks the server for a guest identity
//! (`POST /api/v1/guests`) and keeps its token in the browser's
//! localStorage; tokens are signed with a key kept beside the database
//! (`interview-room.db.guest-key`), so everyone is still who they were after
//! a restart.

use std::net::SocketAddr;
use std::sync::Arc;

use collab_redis::{RedisBackplane, RedisStore};
use collab_server::{GuestAuthenticator, Hub, HubConfig, NodeId};
use collab_sqlite::SqliteStore;
use tokio::net::{TcpListener, TcpSocket};

mod allocator;
mod page;
mod run;
mod with_axum;
mod with_warp;

const DEFAULT_ADDR: &str = "127.0.0.1:8080";
const DEFAULT_DB: &str = "interview-room.db";
/// Where the example keeps its keys in Redis.
const REDIS_PREFIX: &str = "interview-room";

const USAGE: &str = "\
usage: interview-room [--axum | --warp] [--allow-host-commands]

  --axum                 serve with axum and collab-axum (the default)
  --warp                 serve with warp and collab-warp (or COLLAB_ADAPTER=warp)
  --allow-host-commands  let the Run button start Python on this machine
                         (or COLLAB_RUN_ON_HOST=1); anyone who can open a
                         session can then run programs as this user

environment: COLLAB_ADDR (default 127.0.0.1:8080), COLLAB_DB (default interview-room.db),
             COLLAB_REDIS_URL (redis://host:port: join the processes sharing that Redis
             instead of keeping sessions in COLLAB_DB), COLLAB_LEASE_MS (with Redis: how
             long a process that died keeps its sessions, default 15000),
             COLLAB_MAX_CONNECTIONS_PER_ADDRESS (open connections one client address may
             hold, default 20), COLLAB_TRUSTED_PROXIES (comma-separated addresses of
             reverse proxies whose X-Forwarded-For is believed, default none),
             COLLAB_UNLOAD_AFTER_SECS (how long a session nobody is connected to stays
             in memory, default 300), COLLAB_FRAMES_PER_SECOND (frames one connection
             may send a second, sustained, default 60; bursts of twice that)";

/// Which web framework serves the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapter {
    Axum,
    Warp,
}

impl Adapter {
    fn name(self) -> &'static str {
        match self {
            Adapter::Axum => "axum",
            Adapter::Warp => "warp",
        }
    }
}

/// How the server was asked to run: flags first, then the environment.
struct Config {
    adapter: Adapter,
    addr: SocketAddr,
    db: String,
    /// With `COLLAB_REDIS_URL`: one of several processes sharing Redis.
    redis: Option<String>,
    /// `COLLAB_LEASE_MS`: how long a dead process keeps its sessions.
    lease_ttl: Option<std::time::Duration>,
    /// `COLLAB_MAX_CONNECTIONS_PER_ADDRESS`: open connections one client
    /// address may hold.
    per_address: Option<usize>,
    /// `COLLAB_TRUSTED_PROXIES`: reverse proxies in front of the server.
    trusted_proxies: Vec<std::net::IpAddr>,
    /// `COLLAB_UNLOAD_AFTER_SECS`: how long an idle session stays in memory.
    unload_after: Option<std::time::Duration>,
    /// `COLLAB_FRAMES_PER_SECOND`: one connection's sustained frame rate.
    frames_per_second: Option<u32>,
    host_commands: bool,
}

impl Config {
    fn read() -> Result<Self, String> {
        let mut adapter = match std::env::var("COLLAB_ADAPTER").as_deref() {
            Err(_) | Ok("" | "axum") => Adapter::Axum,
            Ok("warp") => Adapter::Warp,
            Ok(other) => return Err(format!("COLLAB_ADAPTER={other}: use axum or warp")),
        };
        let mut host_commands = std::env::var("COLLAB_RUN_ON_HOST")
            .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--axum" => adapter = Adapter::Axum,
                "--warp" => adapter = Adapter::Warp,
                "--allow-host-commands" => host_commands = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        let addr = std::env::var("COLLAB_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.into());
        let addr = addr
            .parse()
            .map_err(|e| format!("COLLAB_ADDR={addr}: {e}"))?;
        let db = std::env::var("COLLAB_DB").unwrap_or_else(|_| DEFAULT_DB.into());
        let redis = std::env::var("COLLAB_REDIS_URL")
            .ok()
            .filter(|url| !url.is_empty());
        let lease_ttl = number_at_least::<u64>("COLLAB_LEASE_MS", 300, "a number of milliseconds")?
            .map(std::time::Duration::from_millis);
        let per_address =
            number_at_least::<usize>("COLLAB_MAX_CONNECTIONS_PER_ADDRESS", 1, "a whole number")?;
        let trusted_proxies = match std::env::var("COLLAB_TRUSTED_PROXIES") {
            Err(_) => Vec::new(),
            Ok(list) => list
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.parse()
                        .map_err(|e| format!("COLLAB_TRUSTED_PROXIES: {a}: {e}"))
                })
                .collect::<Result<_, _>>()?,
        };
        let unload_after =
            number_at_least::<u64>("COLLAB_UNLOAD_AFTER_SECS", 1, "a whole number of seconds")?
                .map(std::time::Duration::from_secs);
        let frames_per_second =
            number_at_least::<u32>("COLLAB_FRAMES_PER_SECOND", 1, "a whole number")?;
        Ok(Self {
            adapter,
            addr,
            db,
            redis,
            lease_ttl,
            per_address,
            trusted_proxies,
            unload_after,
            frames_per_second,
            host_commands,
        })
    }
}

/// The number in environment variable `name`, if it is set: `what`,
/// `least` or more.
fn number_at_least<T>(name: &str, least: T, what: &str) -> Result<Option<T>, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let Ok(value) = std::env::var(name) else {
        return Ok(None);
    };
    match value.trim().parse::<T>() {
        Ok(n) if n >= least => Ok(Some(n)),
        _ => Err(format!("{name}={value}: {what}, {least} or more")),
    }
}

/// jemalloc returns freed memory to the system (see `Cargo.toml` and
/// `allocator.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // The Run button's sandbox is this binary too, started as a child.
    if std::env::args().nth(1).as_deref() == Some(run::javascript::CHILD_ARG) {
        return run::javascript::child_main();
    }
    if let Err(e) = allocator::tune() {
        eprintln!("jemalloc keeps its default settings: {e}");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(allocator::thread_parked)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "interview-room stopped");
            eprintln!("interview-room: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Ctrl-C, or SIGTERM where there is one.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGTERM"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let config = Config::read().unwrap_or_else(|problem| {
        eprintln!("{problem}\n\n{USAGE}");
        std::process::exit(2);
    });
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    {
        // Histograms are folded into their summaries here, off the request path.
        let metrics = metrics.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                metrics.run_upkeep();
            }
        });
        // What the heap holds beside what the process holds: the gap
        // between RSS and live bytes is the allocator's, not the sessions'.
        tokio::spawn(async move {
            loop {
                allocator::report_heap();
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
    // Bound first: with Redis, the process is named by the address it got.
    let listener = listen(config.addr).map_err(|e| listen_error(config.addr, &e))?;
    let mut hub_config = HubConfig::default();
    if let Some(n) = config.per_address {
        hub_config.max_connections_per_address = n;
    }
    if let Some(n) = config.frames_per_second {
        hub_config.session.frames_per_second = n;
        hub_config.session.frame_burst = n.saturating_mul(2);
    }
    if let Some(after) = config.unload_after {
        hub_config.unload_after = after;
    }
    let hub = match &config.redis {
        None => {
            let store = SqliteStore::open(&config.db)?;
            // Kept beside the database: guests stay who they were after a restart.
            let guests = GuestAuthenticator::from_key_file(format!("{}.guest-key", config.db))?;
            Hub::builder(Arc::new(guests))
                .config(hub_config)
                .store(Arc::new(store))
                .build()
        }
        Some(url) => {
            // One of several processes: sessions in Redis, the guest key
            // shared through it, and this process named by its address.
            let store = RedisStore::connect(url, REDIS_PREFIX).await?;
            let key = store.shared_guest_key().await?;
            let node = NodeId::unique(listener.local_addr()?)?;
            let backplane = RedisBackplane::connect(url, REDIS_PREFIX, node).await?;
            if let Some(ttl) = config.lease_ttl {
                hub_config.lease_ttl = ttl;
            }
            Hub::builder(Arc::new(GuestAuthenticator::new(key)))
                .config(hub_config)
                .cluster(Arc::new(store), Arc::new(backplane))
                .build()
        }
    };
    let runner = run::Runner::new(config.host_commands);
    if runner.host_commands() {
        eprintln!(
            "WARNING: host commands are on. The Run button starts python3 on this machine as \
             this user, for anyone who can open a session here. Use it only on a machine and \
             network you trust with that."
        );
    }

    let kept_in = config.redis.clone().unwrap_or_else(|| config.db.clone());
    println!(
        "interview room listening on http://{} (sessions kept in {kept_in})",
        listener.local_addr()?,
    );
    let runs = if runner.host_commands() {
        "JavaScript in the embedded sandbox, Python on this machine"
    } else {
        "JavaScript in the embedded sandbox"
    };
    println!(
        "served by {0} (collab-{0}); the Run button runs {runs}",
        config.adapter.name()
    );
    tracing::info!(
        address = %listener.local_addr()?,
        store = %kept_in,
        adapter = config.adapter.name(),
        host_commands = runner.host_commands(),
        "interview room started"
    );
    // Ctrl-C or SIGTERM (what service managers and orchestrators send):
    // stop accepting, and let the hub save what is pending and close every
    // session's connections; with Redis, it hands its sessions over first.
    let shutdown = {
        let hub = hub.clone();
        async move {
            stop_signal().await;
            tracing::info!("shutting down: closing sessions and saving what is pending");
            hub.shutdown().await;
        }
    };
    let mut http = collab_server::HttpConfig::default();
    // The page opens a session from its query string.
    http.share_url = Some("/?session={id}".into());
    http.trusted_proxies.clone_from(&config.trusted_proxies);
    if let Some(n) = config.per_address {
        // The sockets one address may open: its connections, plus room for
        // its REST requests beside them.
        http.max_sockets_per_address = http.max_sockets_per_address.max(n + n / 4);
    }
    match config.adapter {
        Adapter::Axum => {
            with_axum::serve(listener, hub, runner, metrics, http, shutdown).await?;
        }
        Adapter::Warp => with_warp::serve(listener, hub, runner, metrics, http, shutdown).await,
    }
    tracing::info!("interview room stopped");
    Ok(())
}

/// A listening socket with TCP_NODELAY set before `listen`: keystrokes are
/// small frames, each sent at once. Accepted sockets inherit the option on
/// Linux, which is all warp offers to hook into.
/// Why the address cannot be listened on, in words that say what to do.
fn listen_error(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "{addr} is already in use (another interview-room, or another server); \
             stop it or set COLLAB_ADDR to another address, e.g. COLLAB_ADDR=127.0.0.1:8081"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("{addr} is not an address of this machine; set COLLAB_ADDR to one that is")
        }
        std::io::ErrorKind::PermissionDenied => format!(
            "not allowed to listen on {addr} (ports below 1024 need privileges); \
             set COLLAB_ADDR to another port"
        ),
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restart may reuse the port at once.
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
