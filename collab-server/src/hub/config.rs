//! What a hub is configured with, and which web pages may open WebSockets.

use super::*;

/// Settings of a [`Hub`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubConfig {
    /// Settings every new session starts from.
    pub session: SessionConfig,
    /// Frames queued for one connection before it counts as a slow consumer
    /// (default 512).
    pub outbound_queue: usize,
    /// Requests queued for one session before senders wait (default 1024).
    pub inbound_queue: usize,
    /// Open connections from one client address, across all sessions (default 20).
    pub max_connections_per_address: usize,
    /// Which pages may open WebSockets (default: the server's own origin only).
    pub origins: OriginPolicy,
    /// How often adapters ping every WebSocket (default 15 s). A peer that
    /// answers nothing, pongs included, is dropped after the session's stale
    /// timeout (45 s).
    pub keepalive: std::time::Duration,
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
    /// With a store: how long a session with nobody connected stays in
    /// memory before it is unloaded (default 5 min). It loads again on demand.
    pub unload_after: std::time::Duration,
    /// With a store: how long an ended session stays readable before it is
    /// deleted (default 7 days).
    pub keep_ended: std::time::Duration,
    /// With a store: how often to look for sessions to expire or delete
    /// (default 1 min).
    pub sweep_every: std::time::Duration,
    /// Sessions one user, and one client address, may create: 20 at once,
    /// then one every 10 s. Past it: `rate_limited` (429).
    pub session_creation: Rate,
    /// How long a client has to send a request body once its headers are
    /// in (default 10 s); past it the request is answered with
    /// `request_timeout` (408).
    pub body_timeout: std::time::Duration,
    /// With a backplane: how long a session's ownership lasts unless its
    /// owner renews it (default 15 s; renewed at half of it). A process
    /// that stalls longer loses its sessions to the next process asked.
    pub lease_ttl: std::time::Duration,
    /// Guest identities one client address may be issued: 60 at once, then
    /// one a second (a class or an office behind one address joins at once;
    /// a flood of identities is what this stops).
    pub guest_issue: Rate,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers are
    /// believed (default none). Behind a proxy every request comes from the
    /// proxy's address: list it here, and the per-address limits count the
    /// client it forwards for instead. Headers from anyone else are ignored,
    /// so a client cannot pick its own address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The link people open to join a session, with `{id}` where its id
    /// goes (`https://app.example.com/room/{id}`, or a path such as
    /// `/?session={id}` relative to the server), given back as `share_url`
    /// when a session is created over REST. Default none.
    pub share_url: Option<String>,
    /// Bytes of messages the process holds at once, across every connection
    /// (default 32 MiB): client messages read and not yet applied, and
    /// frames queued for clients and not yet written. A client message waits
    /// for room before it is read further; a sync message sent in parts is
    /// refused with `server_busy` at its first part unless its whole size
    /// fits while a quarter of the budget stays free; past the budget, a
    /// connection with more than a sixteenth of it still to write is dropped
    /// as a slow consumer when another frame comes for it. Keep it at least twice the largest
    /// sync message ([`SessionConfig::max_sync_bytes`]), or such messages
    /// are always refused.
    pub max_bytes_in_flight: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            outbound_queue: 512,
            inbound_queue: 1024,
            max_connections_per_address: 20,
            origins: OriginPolicy::SameOrigin,
            keepalive: std::time::Duration::from_secs(15),
            read_buffer_bytes: 1024,
            write_buffer_bytes: 16 * 1024,
            unload_after: std::time::Duration::from_secs(5 * 60),
            keep_ended: std::time::Duration::from_secs(7 * 24 * 3600),
            sweep_every: std::time::Duration::from_secs(60),
            session_creation: Rate::new(20, std::time::Duration::from_secs(10)),
            guest_issue: Rate::new(60, std::time::Duration::from_secs(1)),
            body_timeout: std::time::Duration::from_secs(10),
            lease_ttl: std::time::Duration::from_secs(15),
            trusted_proxies: Vec::new(),
            share_url: None,
            max_bytes_in_flight: 32 * 1024 * 1024,
        }
    }
}

/// Which web pages may open a WebSocket to the hub. Browsers send the page's
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
pub(super) struct WebOrigin {
    pub(super) scheme: String,
    pub(super) host: String,
    pub(super) port: u16,
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

pub(super) fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// `host:port`, `[v6]:port`, `host` or `[v6]`; a port that is not a number
/// leaves the text whole as the host (and so matches nothing).
pub(super) fn split_host_port(text: &str) -> (&str, Option<u16>) {
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
