//! The one driver loop every transport shares: client messages in, server
//! messages out, over any `Stream` and `Sink`. An adapter maps its framework's
//! WebSocket message to [`WireIn`] and [`Outbound`] to its message, once
//! each, and calls [`pump`]; tests can call it with channels.

use futures::stream::FuturesUnordered;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tracing::Instrument;

use crate::hub::{Caller, Connection, HubError, Outbound, ReadRequest, StreamItem};
use collab_core::ids::SessionId;
use collab_core::protocol::CloseReason;
use collab_core::session::SessionStatus;

/// What a client sent, in transport-neutral form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireIn {
    /// A text frame: one JSON client frame.
    Text(String),
    /// A binary frame: document sync.
    Binary(Vec<u8>),
    /// The client answered a ping: it is alive.
    Pong,
    /// The client closed the connection.
    Close,
    /// The client sent a message larger than [`Hub::max_message_bytes`](crate::Hub::max_message_bytes), which
    /// the WebSocket layer refused before buffering it: the connection is
    /// closed with [`CloseReason::MessageTooBig`] (1009).
    TooLarge,
}

/// Runs a connection until either side closes: frames from `incoming` go to
/// the session, the session's frames go to `outgoing`. Returns when the client
/// closes, the session closes the connection, or the sink fails.
///
/// The session never waits on `outgoing`: a client that cannot keep up fills
/// its bounded queue and is closed with [`CloseReason::SlowConsumer`].
pub async fn pump<In, Out>(conn: Connection, incoming: In, outgoing: Out)
where
    In: Stream<Item = WireIn> + Unpin,
    Out: Sink<Outbound> + Unpin,
{
    pump_with_keepalive(conn, incoming, outgoing, None).await;
}

/// [`pump`], pinging the client every `keepalive` while it runs. The session
/// drops a client that sends nothing, pongs included, for its stale timeout.
pub async fn pump_with_keepalive<In, Out>(
    conn: Connection,
    incoming: In,
    outgoing: Out,
    keepalive: Option<std::time::Duration>,
) where
    In: Stream<Item = WireIn> + Unpin,
    Out: Sink<Outbound> + Unpin,
{
    let span = conn.span().clone();
    pump_in_span(conn, incoming, outgoing, keepalive)
        .instrument(span)
        .await;
}

async fn pump_in_span<In, Out>(
    conn: Connection,
    mut incoming: In,
    mut outgoing: Out,
    keepalive: Option<std::time::Duration>,
) where
    In: Stream<Item = WireIn> + Unpin,
    Out: Sink<Outbound> + Unpin,
{
    tracing::debug!("connection open");
    let (sender, mut receiver) = conn.split();
    let mut too_large = false;
    let closing = {
        let read = async {
            loop {
                // A message in parts that is overdue gives its room back
                // even if its sender has gone quiet.
                let msg = match sender.parts_deadline() {
                    Some(deadline) => {
                        match tokio::time::timeout_at(deadline, incoming.next()).await {
                            Ok(msg) => msg,
                            Err(_) => {
                                if sender.parts_overdue().await.is_err() {
                                    break;
                                }
                                continue;
                            }
                        }
                    }
                    None => incoming.next().await,
                };
                let Some(msg) = msg else { break };
                let delivered = match msg {
                    WireIn::Text(text) => sender.send_text(text).await,
                    WireIn::Binary(bytes) => sender.send_binary(bytes).await,
                    WireIn::Pong => sender.touch().await,
                    WireIn::Close => break,
                    WireIn::TooLarge => {
                        too_large = true;
                        break;
                    }
                };
                if delivered.is_err() {
                    break;
                }
            }
        };
        let write = async {
            let mut ticker = keepalive.map(|every| {
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                let out = match ticker.as_mut() {
                    Some(t) => tokio::select! {
                        out = receiver.recv() => Some(out),
                        _ = t.tick() => None,
                    },
                    None => Some(receiver.recv().await),
                };
                let Some(out) = out else {
                    // The keepalive tick.
                    if outgoing.send(Outbound::Ping).await.is_err() {
                        break false;
                    }
                    continue;
                };
                let Some(mut out) = out else { break false };
                // Everything already queued goes out in one write (a burst of
                // edits, an ack with its event), then one flush.
                let mut burst = 0;
                let closed = loop {
                    let last = matches!(out, Outbound::Close(_));
                    if outgoing.feed(out).await.is_err() {
                        break None;
                    }
                    burst += 1;
                    if last {
                        break Some(true);
                    }
                    if burst == MAX_BURST {
                        break Some(false);
                    }
                    match receiver.try_recv() {
                        Some(next) => out = next,
                        None => break Some(false),
                    }
                };
                match closed {
                    Some(last) if outgoing.flush().await.is_ok() => {
                        if last {
                            break true;
                        }
                    }
                    _ => break false,
                }
            }
        };
        // The two sides run as members of a `FuturesUnordered`, which polls a
        // member only when its own waker fired: a connection woken to send
        // does not try a socket read (with its buffer work) as well, as a
        // plain `select` of the two would on every wake-up. Each side is
        // boxed: a member's node holds its future inline, and so does the
        // set's own empty stub node, which would cost a connection the
        // larger side's size (about 900 bytes) a third time.
        let mut sides: FuturesUnordered<_> = [
            futures::future::Either::Left(Box::pin(read.map(|()| false))),
            futures::future::Either::Right(Box::pin(write)),
        ]
        .into_iter()
        .collect();
        sides.next().await.unwrap_or(false)
    };
    if too_large {
        tracing::debug!("a message over the limit");
        let _ = outgoing
            .send(Outbound::Close(CloseReason::MessageTooBig))
            .await;
    }
    let _ = outgoing.flush().await;
    if closing {
        // The closing handshake: wait for the client's own close before
        // dropping the socket. Dropping it first would make the client's
        // reply (or a late pong) meet a closed socket, whose reset can destroy
        // frames the client has not read yet, the close frame among them.
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(msg) = incoming.next().await {
                if msg == WireIn::Close {
                    break;
                }
            }
        })
        .await;
    }
    let _ = outgoing.close().await;
}

/// Whether an error a WebSocket stream gave, or any error under it, is
/// tungstenite's refusal of a message or frame over the size limit: what
/// adapters turn into [`WireIn::TooLarge`]. Both adapters' frameworks wrap
/// tungstenite's error; the chain of sources reaches it.
pub fn is_message_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// Most frames written before one flush.
const MAX_BURST: usize = 64;

/// How long a server-initiated close waits for the client's close frame.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The WebSocket subprotocol collab speaks. A browser, which cannot set an
/// `Authorization` header on a WebSocket, offers it together with its token:
/// `new WebSocket(url, ["collab.v1", "bearer." + token])`; the server answers
/// with `collab.v1`, never echoing the token.
pub const SUBPROTOCOL: &str = "collab.v1";

/// The credential of an HTTP request, in this order: a `Bearer` token from the
/// `Authorization` header; a `bearer.<token>` entry of the
/// `Sec-WebSocket-Protocol` header; the `token` query parameter.
pub fn credential<'a>(
    authorization: Option<&'a str>,
    protocols: Option<&'a str>,
    query_token: Option<&'a str>,
) -> Option<&'a str> {
    let bearer = authorization.and_then(|h| {
        let (scheme, token) = h.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let offered =
        protocols.and_then(|p| p.split(',').find_map(|e| e.trim().strip_prefix("bearer.")));
    bearer.or(offered).or(query_token).filter(|t| !t.is_empty())
}

/// The body of a REST join (`POST /api/v1/sessions/{id}/users`): an optional
/// display name. An empty body joins with the authenticator's name.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct JoinBody {
    /// The name to show.
    #[serde(default)]
    pub name: Option<String>,
}

/// One server-sent event: its `id` (the resume cursor) and its `data` (one
/// JSON object: an event, which has `kind`; a document change, which has
/// `type`; or, last of all, `{"type":"error",...}` when the reader may no
/// longer read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The cursor to resume after this event, for `Last-Event-ID`.
    pub id: Option<String>,
    /// The JSON payload.
    pub data: String,
}

/// A session's events as server-sent events, for adapters to wrap in their
/// framework's SSE response. The reader's right to read is checked first, so
/// that a refusal is a plain HTTP error; a stream of an ended session with
/// nothing left to send is refused with `session_ended` (410), which stops a
/// browser's `EventSource` from reconnecting forever.
///
/// # Errors
/// As [`Caller::read`], and [`HubError::Session`] with `session_ended`.
pub async fn event_stream(
    caller: &Caller,
    id: SessionId,
    request: ReadRequest,
) -> Result<impl Stream<Item = SseEvent> + Send + Sync + 'static, HubError> {
    let first = caller
        .read(
            &id,
            ReadRequest {
                wait: std::time::Duration::ZERO,
                ..request
            },
        )
        .await?;
    if first.status == SessionStatus::Ended && first.events.is_empty() && first.ops.is_empty() {
        return Err(HubError::Session(collab_core::SessionError::SessionEnded));
    }
    let events = caller.stream(id, request).map(|item| match item {
        Ok((cursor, item)) => SseEvent {
            id: Some(cursor.to_string()),
            data: match item {
                StreamItem::Event(event) => serde_json::to_string(&event),
                StreamItem::Document(frame) => serde_json::to_string(&frame),
            }
            .unwrap_or_default(),
        },
        Err(err) => {
            let code = err.code();
            SseEvent {
                id: None,
                data:
                    serde_json::json!({"type": "error", "code": code, "message": err.to_string()})
                        .to_string(),
            }
        }
    });
    // Read on a task of its own and handed over a channel, so that what
    // adapters get is `Sync` as well as `Send` (warp needs both), whatever the
    // store's futures are; the task stops when the client goes away.
    let (mut tx, rx) = futures::channel::mpsc::channel(16);
    tokio::spawn(async move {
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_prefer_the_header() {
        assert_eq!(credential(Some("Bearer abc"), None, Some("q")), Some("abc"));
        assert_eq!(credential(Some("bearer  abc "), None, None), Some("abc"));
        assert_eq!(credential(Some("Basic xyz"), None, Some("q")), Some("q"));
        assert_eq!(
            credential(None, Some("collab.v1, bearer.a.b.c"), Some("q")),
            Some("a.b.c")
        );
        assert_eq!(credential(None, Some("collab.v1"), Some("q")), Some("q"));
        assert_eq!(credential(None, None, Some("")), None);
        assert_eq!(credential(None, None, None), None);
    }

    use super::*;
    use crate::{Hub, Identity, TokenAuthenticator};
    use collab_core::NewSession;
    use futures::channel::mpsc;

    #[tokio::test]
    async fn pumps_frames_both_ways_and_closes_with_the_reason() {
        let hub = Hub::new(TokenAuthenticator::new());
        let host = Identity::new("h", "Host");
        let info = hub
            .create_session(&host, NewSession::default())
            .await
            .unwrap();
        let conn = hub.connect(&info.id, host.clone()).await.unwrap();
        let (in_tx, in_rx) = mpsc::unbounded();
        let (out_tx, mut out_rx) = mpsc::unbounded();
        let task = tokio::spawn(pump(conn, in_rx, out_tx));
        in_tx
            .unbounded_send(WireIn::Text(r#"{"type":"join"}"#.into()))
            .unwrap();
        let first = out_rx.next().await.unwrap();
        assert!(matches!(first, Outbound::Text(t) if t.contains("welcome")));
        in_tx.unbounded_send(WireIn::Binary(vec![1, 2, 3])).unwrap();
        loop {
            match out_rx.next().await.unwrap() {
                Outbound::Text(t) if t.contains("malformed_frame") => break,
                _ => {}
            }
        }
        hub.end_session(&info.id, &host).await.unwrap();
        let mut last = None;
        while let Some(out) = out_rx.next().await {
            last = Some(out);
        }
        assert_eq!(last, Some(Outbound::Close(CloseReason::SessionEnded)));
        task.await.unwrap();
    }
}
