//! What a hub is configured with: sessions, their queues and their keeping.
//! What HTTP and WebSockets are served with is the HTTP layer's
//! [`crate::http::HttpConfig`].

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
    /// Connections one client may hold open across all sessions, counted
    /// by [`Caller::peer`]: WebSockets, REST seats, long-polls and event
    /// streams (default 20). Behind a trusted proxy that is the client it
    /// forwards for ([`crate::http::HttpConfig::trusted_proxies`]). The
    /// accept loop's cap on sockets is another, looser count
    /// ([`crate::http::HttpConfig::max_sockets_per_address`]).
    pub max_connections_per_address: usize,
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
    /// With a backplane: how long a session's ownership lasts unless its
    /// owner renews it (default 15 s; renewed at half of it). A process
    /// that stalls longer loses its sessions to the next process asked.
    pub lease_ttl: std::time::Duration,
    /// Guest identities one client address may be issued: 60 at once, then
    /// one a second (a class or an office behind one address joins at once;
    /// a flood of identities is what this stops).
    pub guest_issue: Rate,
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
            unload_after: std::time::Duration::from_secs(5 * 60),
            keep_ended: std::time::Duration::from_secs(7 * 24 * 3600),
            sweep_every: std::time::Duration::from_secs(60),
            session_creation: Rate::new(20, std::time::Duration::from_secs(10)),
            guest_issue: Rate::new(60, std::time::Duration::from_secs(1)),
            lease_ttl: std::time::Duration::from_secs(15),
            max_bytes_in_flight: 32 * 1024 * 1024,
        }
    }
}
