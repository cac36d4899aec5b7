//! The conformance suite: scenarios every adapter must pass, run against a real
//! server on 127.0.0.1 over real sockets. An adapter's tests call
//! [`conformance_tests!`] with an async function that mounts a given
//! [`Hub`] on a fresh listener and returns its base URL; each scenario builds
//! its hub with [`hub_for`], so that the adapter under test is only glue.
//!
//! Most scenarios use [`NamedTokens`] (any token of 8+ URL-safe characters is
//! a distinct user, so scenarios can name their people); the guest scenario
//! uses the real [`collab_server::GuestAuthenticator`], whose tokens only the
//! server issues, and the credential scenario HS256 JWTs signed with
//! [`JWT_SECRET`].

use std::sync::Arc;
use std::time::Duration;

use collab_core::{AuthError, Identity};
use collab_server::{Authenticator, GuestAuthenticator, HttpConfig, Hub, HubConfig, OriginPolicy};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a scenario waits for any one frame or response.
const PATIENCE: Duration = Duration::from_secs(10);

mod client;
mod rooms;
mod safety;
mod transports;

pub use client::*;
pub use rooms::*;
pub use safety::*;
pub use transports::*;

/// A test authenticator: any token of 8 to 128 URL-safe characters is a
/// user of its own, so scenarios can name their people with strings. The
/// user id is a digest of the token, never the token. Never use it outside
/// tests: whoever guesses a string is that user.
#[derive(Debug, Clone, Copy, Default)]
pub struct NamedTokens;

#[async_trait::async_trait]
impl Authenticator for NamedTokens {
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        use std::hash::{Hash, Hasher};
        let token = token.ok_or(AuthError::Missing)?;
        let valid = (8..=128).contains(&token.len())
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(AuthError::Invalid);
        }
        let mut digest = std::collections::hash_map::DefaultHasher::new();
        token.hash(&mut digest);
        Ok(Identity::new(
            format!("user-{:016x}", digest.finish()),
            "Guest",
        ))
    }
}

/// The HS256 secret of the JWT scenario's authenticator.
pub const JWT_SECRET: &[u8] = b"conformance-secret-of-at-least-32-bytes";

/// The hub a scenario runs against: default settings, except where the
/// scenario needs small limits or short timers to happen within a test.
pub fn hub_for(scenario: &str) -> Hub {
    let mut config = HubConfig::default();
    let mut auth: Arc<dyn Authenticator> = Arc::new(NamedTokens);
    match scenario {
        "slow_reader_is_dropped_and_catches_up" => {
            // A small queue, and no rate limit, so that one writer can
            // outrun a reader in a test's time.
            config.outbound_queue = 32;
            config.session.frames_per_second = 1_000_000;
            config.session.frame_burst = 1_000_000;
        }
        "dead_peers_are_dropped" => {
            config.session.presence.stale_after = Duration::from_millis(1_500);
        }
        "tokens_refresh_or_expire" | "session_scoped_tokens" => {
            auth = Arc::new(collab_jwt::JwtAuthenticator::hs256(JWT_SECRET));
        }
        "polls_count_against_the_address" => {
            config.max_connections_per_address = 3;
        }
        "sync_messages_travel_in_parts" => {
            config.session.max_sync_bytes = 2 << 20;
            config.max_bytes_in_flight = 4 << 20;
        }
        "trusted_proxies_name_the_client" => {
            config.max_connections_per_address = 2;
        }
        "session_creation_is_rate_limited" => {
            config.session_creation = collab_server::Rate::new(3, Duration::from_secs(3600));
        }
        "guests_are_issued_and_kicks_hold" => {
            auth = Arc::new(GuestAuthenticator::random().expect("random key"));
        }
        _ => {}
    }
    Hub::builder(auth).config(config).build()
}

/// The HTTP settings a scenario serves with: the defaults, except where
/// the scenario needs small limits, short timers, a proxy or an origin.
pub fn http_for(scenario: &str) -> HttpConfig {
    let mut http = HttpConfig::default();
    match scenario {
        "dead_peers_are_dropped" => {
            http.keepalive = Duration::from_millis(200);
        }
        "slow_and_idle_connections_are_closed" => {
            http.header_timeout = Duration::from_millis(800);
            http.body_timeout = Duration::from_millis(800);
        }
        "connections_are_capped_per_address" => {
            http.max_sockets_per_address = 4;
        }
        "trusted_proxies_name_the_client" => {
            http.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
        }
        "cross_origin_calls_follow_the_origin_policy" => {
            http.origins = OriginPolicy::List(vec!["https://app.example.com".into()]);
        }
        _ => {}
    }
    http
}

/// Generates one `#[tokio::test]` per scenario. `$serve` is an async function
/// taking the scenario's [`Hub`] and [`HttpConfig`] and returning the base
/// URL of a server that mounts the hub and serves with those settings.
#[macro_export]
macro_rules! conformance_tests {
    ($serve:expr) => {
        $crate::conformance_tests!(@each $serve;
            rest_lifecycle, rest_create_answer_and_code_patches, bad_token_and_unknown_session, join_and_chat,
            bad_frames_keep_the_connection, roles_and_capacity,
            kick_and_end_close_with_codes, reconnect_and_catch_up,
            thin_client_and_replica_edit_together, cross_site_upgrades_are_refused,
            token_in_the_subprotocol, flooding_is_refused_then_closed,
            presence_reaches_the_others, rest_join_poll_and_leave,
            event_stream_follows_the_session, slow_reader_is_dropped_and_catches_up,
            dead_peers_are_dropped, tokens_refresh_or_expire, shutdown_says_goodbye,
            guests_are_issued_and_kicks_hold, session_scoped_tokens,
            strangers_and_the_banned_read_nothing, lenient_input_is_refused,
            slow_and_idle_connections_are_closed, connections_are_capped_per_address,
            oversized_messages_are_refused_unread, polls_count_against_the_address,
            session_creation_is_rate_limited, chat_sends_are_idempotent,
            trusted_proxies_name_the_client, a_megabyte_paste_reaches_everyone,
            cross_origin_calls_follow_the_origin_policy, sync_messages_travel_in_parts,
            the_export_tells_the_whole_story);
    };
    (@each $serve:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let hub = $crate::hub_for(stringify!($name));
                let http = $crate::http_for(stringify!($name));
                let client = $crate::Client::new($serve(hub.clone(), http).await).with_hub(hub);
                $crate::$name(&client).await;
            }
        )*
    };
}

/// Every string in a JSON value, keys included, for checks on what a client saw.
fn strings_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                strings_in(v, out);
            }
        }
        _ => {}
    }
}
