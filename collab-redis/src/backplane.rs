//! The backplane: leases and epochs as keys changed only by compare-and-set
//! scripts, and an inbox per process as a pub/sub channel.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, Mutex};

use collab_core::{SessionId, Timestamp};
use collab_edges::backplane::{Backplane, BackplaneError, Lease, Letter, NodeId};

use crate::{open, ConnectError};

/// A [`Backplane`] on Redis. See the [crate docs](crate).
///
/// A session's lease is the key `PREFIX:{SESSION}:lease` holding
/// `EPOCH OWNER` with a time to live: claimed only when absent (the epoch
/// from the counter `PREFIX:{SESSION}:epoch`, which only grows), extended
/// only while it still holds the same value, so a process whose lease
/// lapsed and was taken cannot extend the new owner's. Letters to a process
/// are published on `PREFIX:inbox:NODE`; a letter to a process that is not
/// listening fails as [`BackplaneError::Unreachable`].
pub struct RedisBackplane {
    node: NodeId,
    prefix: String,
    conn: ConnectionManager,
    claim: redis::Script,
    renew: redis::Script,
    release: redis::Script,
    inbox: Mutex<mpsc::Receiver<Letter>>,
    listener: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("node", &self.node)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBackplane {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Takes the lease if nobody holds it. KEYS: lease, epoch counter. ARGV:
/// this node, time to live (ms). Returns the lease's value and its time
/// left (ms).
const CLAIM: &str = r"
local held = redis.call('GET', KEYS[1])
if held then return {held, redis.call('PTTL', KEYS[1])} end
local lease = redis.call('INCR', KEYS[2]) .. ' ' .. ARGV[1]
redis.call('SET', KEYS[1], lease, 'PX', ARGV[2])
return {lease, tonumber(ARGV[2])}
";

/// Extends the lease if it still holds ARGV[1]. KEYS: lease. Returns the
/// value held (empty if none) and the time left (ms; -1 when not extended).
const RENEW: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {held, tonumber(ARGV[2])}
end
return {held or '', -1}
";

/// Deletes the lease if it still holds ARGV[1]. KEYS: lease. The epoch
/// counter stays: the next claim takes a larger epoch.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// How long the inbox listener waits before subscribing again after its
/// connection failed.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(200);

/// Letters waiting for the hub, per process.
const INBOX_QUEUE: usize = 4096;

impl RedisBackplane {
    /// Joins the cluster on the Redis at `url` as `node` (a name unique
    /// among the processes, e.g. its address), keys under `prefix`. Its
    /// inbox is listening when this returns.
    ///
    /// # Errors
    /// [`ConnectError`] when the URL is wrong or Redis cannot be reached.
    pub async fn connect(url: &str, prefix: &str, node: NodeId) -> Result<Self, ConnectError> {
        let (client, conn) = open(url).await?;
        let channel = inbox_channel(prefix, &node);
        // The first subscription is made here so that letters sent once
        // this returns are heard; later ones by the listener.
        let first = subscribe(&client, &channel)
            .await
            .map_err(crate::connect_error)?;
        let (tx, rx) = mpsc::channel(INBOX_QUEUE);
        let listener = tokio::spawn(listen(client, channel, first, tx));
        Ok(Self {
            node,
            prefix: prefix.to_owned(),
            conn,
            claim: redis::Script::new(CLAIM),
            renew: redis::Script::new(RENEW),
            release: redis::Script::new(RELEASE),
            inbox: Mutex::new(rx),
            listener,
        })
    }

    fn key(&self, session: &SessionId, part: &str) -> String {
        format!("{}:{{{}}}:{part}", self.prefix, session.as_str())
    }
}

fn inbox_channel(prefix: &str, node: &NodeId) -> String {
    format!("{prefix}:inbox:{node}")
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// Hands the inbox's letters to the hub, subscribing again whenever the
/// connection drops (letters published meanwhile are lost, as they are for
/// a process that is down: their connections end and clients reconnect).
async fn listen(
    client: redis::Client,
    channel: String,
    first: redis::aio::PubSub,
    tx: mpsc::Sender<Letter>,
) {
    let mut pubsub = Some(first);
    loop {
        let current = match pubsub.take() {
            Some(p) => p,
            None => match subscribe(&client, &channel).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen to this process's inbox yet");
                    tokio::time::sleep(RESUBSCRIBE_AFTER).await;
                    continue;
                }
            },
        };
        let mut messages = current.into_on_message();
        while let Some(message) = messages.next().await {
            let bytes: &[u8] = message.get_payload_bytes();
            match Letter::decode(bytes) {
                Ok(letter) => {
                    if tx.send(letter).await.is_err() {
                        return; // The backplane is gone.
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dropped a letter"),
            }
        }
        if tx.is_closed() {
            return;
        }
        tracing::warn!("lost the inbox's Redis connection; subscribing again");
        tokio::time::sleep(RESUBSCRIBE_AFTER).await;
    }
}

fn backend(e: redis::RedisError) -> BackplaneError {
    BackplaneError::Backend(e.to_string())
}

/// A lease from the scripts' answer: `EPOCH OWNER` and the time left.
fn lease(
    session: &SessionId,
    held: &str,
    ttl_ms: i64,
    now: Timestamp,
) -> Result<Lease, BackplaneError> {
    let (epoch, owner) = held
        .split_once(' ')
        .and_then(|(e, o)| Some((e.parse().ok()?, o)))
        .ok_or_else(|| BackplaneError::Backend(format!("a lease that is not one: {held:?}")))?;
    Ok(Lease {
        session: session.clone(),
        owner: NodeId(owner.to_owned()),
        epoch,
        expires: now.plus(Duration::from_millis(ttl_ms.max(0) as u64)),
    })
}

fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

#[async_trait]
impl Backplane for RedisBackplane {
    fn node(&self) -> &NodeId {
        &self.node
    }

    async fn claim(
        &self,
        session: &SessionId,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Lease, BackplaneError> {
        let (held, left): (String, i64) = self
            .claim
            .key(self.key(session, "lease"))
            .key(self.key(session, "epoch"))
            .arg(&self.node.0)
            .arg(millis(ttl))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        lease(session, &held, left, now)
    }

    async fn renew(
        &self,
        current: &Lease,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Lease, BackplaneError> {
        let value = format!("{} {}", current.epoch, current.owner.0);
        let (held, left): (String, i64) = self
            .renew
            .key(self.key(&current.session, "lease"))
            .arg(&value)
            .arg(millis(ttl))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        if left < 0 {
            let owner = match lease(&current.session, &held, 0, now) {
                Ok(other) => other.owner,
                // Nobody holds it: it lapsed.
                Err(_) => self.node.clone(),
            };
            return Err(BackplaneError::Lost {
                session: current.session.clone(),
                owner,
            });
        }
        lease(&current.session, &held, left, now)
    }

    async fn release(&self, current: &Lease) -> Result<(), BackplaneError> {
        let value = format!("{} {}", current.epoch, current.owner.0);
        let _released: i64 = self
            .release
            .key(self.key(&current.session, "lease"))
            .arg(&value)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn send(&self, to: &NodeId, letter: Letter) -> Result<(), BackplaneError> {
        let heard: i64 = redis::cmd("PUBLISH")
            .arg(inbox_channel(&self.prefix, to))
            .arg(letter.encode())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend)?;
        if heard == 0 {
            return Err(BackplaneError::Unreachable(to.clone()));
        }
        Ok(())
    }

    async fn recv(&self) -> Option<Letter> {
        self.inbox.lock().await.recv().await
    }
}
