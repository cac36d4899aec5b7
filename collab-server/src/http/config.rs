//! What HTTP and WebSockets are served with: the accept loop's caps and
//! timeouts, the proxies believed, the pages allowed, each WebSocket's
//! buffers and keepalive, the REST API's body timeout and share link. Each
//! setting is here once and acts here; the hub's own settings
//! ([`crate::HubConfig`]) are about sessions.

use std::net::IpAddr;
use std::time::Duration;

/// Settings of the HTTP layer: [`crate::http::accept::serve`], the REST
/// API and the WebSocket upgrade. Every number has a default for a server
/// open to the internet.
///
/// ```
/// use collab_server::http::{HttpConfig, OriginPolicy};
///
/// let mut http = HttpConfig::default();
/// http.origins = OriginPolicy::List(vec!["https://app.example.com".into()]);
/// http.trusted_proxies = vec!["10.0.0.2".parse().unwrap()];
/// http.share_url = Some("https://app.example.com/room/{id}".into());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Open connections in total, WebSockets included (default 768). Keep it
    /// below the process's file descriptor limit (`ulimit -n`, often 1024),
    /// with room for the database and logs.
    pub max_connections: usize,
    /// Open sockets from one address, counted as they are accepted, before
    /// any request is read (default 64). Addresses in
    /// [`HttpConfig::trusted_proxies`] are exempt: every client behind them
    /// shares their address. What one client may hold open in sessions is
    /// the hub's tighter count, by the client a proxy forwards for
    /// ([`crate::HubConfig::max_connections_per_address`]); keep this one
    /// above it, with room for the client's REST requests beside.
    pub max_sockets_per_address: usize,
    /// How long a client has to send a request's headers, counted from
    /// when the server starts waiting for them, idle keep-alive time
    /// included (default 10 s). Closes slow ("slowloris") and silent
    /// connections.
    pub header_timeout: Duration,
    /// How long a client has to send a request body once its headers are
    /// in (default 10 s); past it the request is answered with
    /// `request_timeout` (408).
    pub body_timeout: Duration,
    /// How long shutdown waits for requests in flight before it drops them
    /// (default 10 s).
    pub shutdown_grace: Duration,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers are
    /// believed (default none). Behind a proxy every request comes from the
    /// proxy's address: list it here, and the per-address limits count the
    /// client it forwards for instead, while the proxy's own sockets are
    /// not capped per address. Headers from anyone else are ignored, so a
    /// client cannot pick its own address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Which pages may open WebSockets and call the REST API from a browser
    /// (default: the server's own origin only).
    pub origins: OriginPolicy,
    /// How often every WebSocket is pinged (default 15 s). A peer that
    /// answers nothing, pongs included, is dropped after the session's
    /// stale timeout (45 s).
    pub keepalive: Duration,
    /// Bytes a WebSocket reads from its socket at a time, which is also the
    /// read buffer each connection keeps (default 1 KiB). A larger frame
    /// grows it while it arrives. Adapters pass it to the WebSocket library,
    /// whose own default (128 KiB) is zero-filled before every read: at
    /// thousands of connections that was a third of the server's CPU and
    /// 128 KiB of memory per connection. Clients' frames are mostly a few
    /// hundred bytes; at 3,000 connections 1 KiB instead of 4 KiB saved
    /// 8 MiB of the server's 82, and a large replica message costs a read
    /// call per KiB.
    pub read_buffer_bytes: usize,
    /// Bytes of frames a WebSocket gathers before writing them to its socket
    /// (default 16 KiB); every burst of frames is flushed when it ends, so
    /// this only bounds how much one write carries.
    pub write_buffer_bytes: usize,
    /// The link people open to join a session, with `{id}` where its id
    /// goes (`https://app.example.com/room/{id}`, or a path such as
    /// `/?session={id}` relative to the server), given back as `share_url`
    /// when a session is created over REST. Default none.
    pub share_url: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 768,
            max_sockets_per_address: 64,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
            origins: OriginPolicy::SameOrigin,
            keepalive: Duration::from_secs(15),
            read_buffer_bytes: 1024,
            write_buffer_bytes: 16 * 1024,
            share_url: None,
        }
    }
}

impl HttpConfig {
    /// The link to share for session `id` ([`HttpConfig::share_url`]).
    pub fn share_url(&self, id: &collab_core::SessionId) -> Option<String> {
        let template = self.share_url.as_ref()?;
        Some(template.replace("{id}", id.as_str()))
    }

    /// The address of the client behind a request that came from `peer`:
    /// `peer` itself, unless it is one of [`HttpConfig::trusted_proxies`],
    /// whose `Forwarded` (RFC 7239) or else `X-Forwarded-For` header names
    /// the client. The last address a trusted proxy appended is taken,
    /// skipping further trusted proxies in a chain, so a client cannot
    /// choose its own address by sending the header itself.
    pub fn client_address(
        &self,
        peer: Option<IpAddr>,
        forwarded: Option<&str>,
        x_forwarded_for: Option<&str>,
    ) -> Option<IpAddr> {
        super::address::client_address(&self.trusted_proxies, peer, forwarded, x_forwarded_for)
    }
}

/// Which web pages may open a WebSocket to the server. Browsers send the page's
/// origin with every upgrade and let any page connect anywhere, so without this
/// check a hostile page could talk to the session with its visitor's cookies
/// (cross-site WebSocket hijacking). Clients that are not browsers send no
/// origin and are always let through; they authenticate like everyone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Only pages served from the host the upgrade request was sent to.
    SameOrigin,
    /// Only these origins (`https://app.example.com`), compared without case.
    List(Vec<String>),
    /// Any page. For development only.
    Any,
}

impl OriginPolicy {
    /// Whether an upgrade with this `Origin` header, sent to this `Host`, may
    /// go ahead. Origins are compared as scheme, host and port (a default
    /// port written or not is the same port); only `http` and `https` pages
    /// count as the server's own.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => {
                let Some(origin) = WebOrigin::parse(origin) else {
                    return false;
                };
                list.iter()
                    .filter_map(|o| WebOrigin::parse(o))
                    .any(|o| o == origin)
            }
            OriginPolicy::SameOrigin => {
                let (Some(origin), Some(host)) = (WebOrigin::parse(origin), host) else {
                    return false;
                };
                let (host_name, host_port) = split_host_port(host);
                origin.host.eq_ignore_ascii_case(host_name)
                    && origin.port == host_port.unwrap_or(default_port(&origin.scheme))
            }
        }
    }
}

/// A web origin: `scheme://host[:port]`, lower case, with its port filled in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WebOrigin {
    pub(crate) scheme: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl WebOrigin {
    fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        let (host, port) = split_host_port(rest);
        Some(Self {
            port: port.unwrap_or(default_port(&scheme)),
            host: host.to_ascii_lowercase(),
            scheme,
        })
    }
}

pub(crate) fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// `host:port`, `[v6]:port`, `host` or `[v6]`; a port that is not a number
/// leaves the text whole as the host (and so matches nothing).
pub(crate) fn split_host_port(text: &str) -> (&str, Option<u16>) {
    let bracket_end = text.rfind(']').unwrap_or(0);
    match text.rfind(':') {
        Some(colon) if colon > bracket_end && (bracket_end > 0 || !text.starts_with('[')) => {
            match text[colon + 1..].parse() {
                Ok(port) => (&text[..colon], Some(port)),
                Err(_) => (text, None),
            }
        }
        _ => (text, None),
    }
}
