//! The accept loop: serves an HTTP service on a TCP listener the way a collab server open to
//! the internet needs: every connection has `TCP_NODELAY` (collab sends many
//! small frames), a client must finish each request's headers within a
//! timeout (slow or silent clients cannot hold sockets), and open
//! connections are capped per client address and in total, so that one
//! client cannot take the file descriptors everybody needs. Connections over
//! a cap are closed as soon as they are accepted.
//!
//! The adapters build on it: `collab_axum::serve` and `collab_warp::serve`
//! are the documented way to serve, and pass each connection's peer address
//! to the hub's per-address limits.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use collab_server::http::{accept::serve, HttpConfig};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let service = |_peer: std::net::SocketAddr| {
//!     hyper::service::service_fn(|_req| async {
//!         Ok::<_, std::convert::Infallible>(hyper::Response::new(String::from("hi")))
//!     })
//! };
//! serve(listener, service, HttpConfig::default(), std::future::pending()).await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::HttpConfig;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// Counts open connections per address and in total.
#[derive(Debug, Default)]
struct Census {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; gives its place back on drop.
struct Admitted {
    census: Arc<Mutex<Census>>,
    address: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut census = self.census.lock().unwrap_or_else(|e| e.into_inner());
        census.total = census.total.saturating_sub(1);
        if let Some(n) = census.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                census.by_address.remove(&self.address);
            }
        }
    }
}

fn admit(census: &Arc<Mutex<Census>>, config: &HttpConfig, address: IpAddr) -> Option<Admitted> {
    let mut c = census.lock().unwrap_or_else(|e| e.into_inner());
    if c.total >= config.max_connections {
        return None;
    }
    let exempt = config.trusted_proxies.contains(&address);
    let from_here = c.by_address.get(&address).copied().unwrap_or(0);
    if !exempt && from_here >= config.max_sockets_per_address {
        return None;
    }
    c.total += 1;
    *c.by_address.entry(address).or_default() += 1;
    Some(Admitted {
        census: Arc::clone(census),
        address,
    })
}

/// A socket that holds its connection's place in the census.
struct Counted<T> {
    io: T,
    _admitted: Admitted,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Serves `service` on `listener` until `shutdown` completes, then stops
/// accepting and gives requests in flight [`HttpConfig::shutdown_grace`].
/// `service` is called once per connection with the client's address and
/// returns the service for that connection's requests.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    service: M,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send,
) where
    M: Fn(SocketAddr) -> S,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let census = Arc::new(Mutex::new(Census::default()));
    // Told to every connection task when shutdown starts; the tasks hold
    // `in_flight` until they finish.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let in_flight = Arc::new(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors or the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(admitted) = admit(&census, &config, peer.ip()) else {
            tracing::debug!(%peer, "connection refused: over the connection cap");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        // HTTP/1.1 only, straight away: telling HTTP/2 apart means waiting
        // for the first bytes with no timeout, which a silent client would.
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout)
            .keep_alive(true);
        let svc = service(peer);
        // The socket carries its place in the census: an upgraded connection
        // (a WebSocket) keeps it after hyper hands the socket over, until
        // the socket closes.
        let io = TokioIo::new(Counted {
            io: tcp,
            _admitted: admitted,
        });
        let mut stopping = stopping.clone();
        let held = Arc::clone(&in_flight);
        tokio::spawn(async move {
            let _held = held;
            let conn = builder.serve_connection(io, svc).with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = async { let _ = stopping.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    while Arc::strong_count(&in_flight) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
