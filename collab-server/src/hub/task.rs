//! The session task: the only writer of its session. It applies commands,
//! stores what changed, then delivers frames, and sleeps until the
//! session's next deadline.

use super::request::{Reply, Request};
use super::*;
use crate::backplane::BackplaneError;
use collab_core::time::duration_ms;
use tracing::Instrument;

pub(super) struct Peer {
    pub(super) tx: queue::Sender<Outbound>,
    pub(super) shared: Arc<ConnShared>,
}

/// Why a frame was not queued.
enum Queued {
    /// The queue is full, or the process holds more than its budget and
    /// this connection has a sixteenth of it still to write.
    Slow,
    /// The connection is gone.
    Gone,
}

impl Peer {
    /// Queues a frame of `len` bytes, counted against the hub's budget
    /// until the connection writes it.
    fn queue(&self, hub: &Inner, out: Outbound, len: usize) -> Result<(), Queued> {
        let behind = self.shared.queued.load(Ordering::Relaxed) > hub.budget.share();
        if behind && hub.budget.over() {
            return Err(Queued::Slow);
        }
        self.shared.queued.fetch_add(len, Ordering::Relaxed);
        hub.budget.queue(len);
        let refused = match self.tx.try_send(out) {
            Ok(()) => return Ok(()),
            Err(queue::TrySendError::Full(_)) => Queued::Slow,
            Err(queue::TrySendError::Closed(_)) => Queued::Gone,
        };
        self.shared.queued.fetch_sub(len, Ordering::Relaxed);
        hub.budget.dequeue(len);
        Err(refused)
    }
}

/// A reply that may go out only once the step's changes are stored.
pub(super) type Deferred = Box<dyn FnOnce() + Send>;

/// Commands taken at once before one store write: the group commit.
pub(super) const MAX_BATCH: usize = 256;

/// REST requests that may wait for a session's older history at once; past
/// it they are answered `storage_failed`.
const MAX_WAITING_FOR_HISTORY: usize = 64;

/// A session's older history is read from the store this many versions at
/// a time and kept encoded: never more than a range of it decoded at once.
const HISTORY_READ: Revision = 4_096;

/// One session's task state.
pub(super) struct Task {
    pub(super) session: Session,
    pub(super) peers: HashMap<ConnectionId, Peer>,
    pub(super) hub: Arc<Inner>,
    pub(super) me: mpsc::WeakSender<Command>,
    pub(super) deferred: Vec<Deferred>,
    pub(super) stop: bool,
    /// When the last command arrived: a session just loaded to answer a
    /// request is in use even if nothing happens in it.
    pub(super) last_command: Timestamp,
    /// With a backplane: this process's ownership of the session.
    pub(super) lease: Option<Lease>,
    /// After a renewal failed for a reason that may pass: when to try again.
    pub(super) renew_retry: Option<Timestamp>,
    /// REST requests that read versions the session was loaded without,
    /// applied once the store has handed them in (see
    /// `Session::request_history`).
    pub(super) awaiting_history: Vec<Command>,
    /// Those requests are being applied: none waits again.
    pub(super) handing_in: bool,
}

impl Task {
    /// Applies commands in order; a replica's sync messages that follow
    /// each other go to the session together, so their changes cost one
    /// automerge call.
    pub(super) fn apply_all(&mut self, commands: Vec<Command>) {
        let mut commands = commands.into_iter().peekable();
        while let Some(command) = commands.next() {
            let Command::Binary { conn, bytes, held } = command else {
                self.apply(command);
                continue;
            };
            // The messages' bytes stay held until they are applied.
            let mut holds = vec![held];
            let mut frames = vec![bytes];
            while let Some(Command::Binary { conn: next, .. }) = commands.peek() {
                if *next != conn {
                    break;
                }
                if let Some(Command::Binary { bytes, held, .. }) = commands.next() {
                    frames.push(bytes);
                    holds.push(held);
                }
            }
            let now = self.hub.clock.now();
            self.last_command = now;
            let frames: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
            self.session.handle_binaries(conn, &frames, now);
            drop(holds);
        }
    }

    pub(super) fn apply(&mut self, command: Command) {
        let now = self.hub.clock.now();
        self.last_command = now;
        let command = match command {
            Command::History { versions } => return self.history_read(versions, now),
            command => command,
        };
        if self.must_wait_for_history(&command) {
            self.session.request_history();
            self.awaiting_history.push(command);
            return;
        }
        let session = &mut self.session;
        match command {
            Command::Connect {
                conn,
                identity,
                address,
                outbound,
                shared,
                reply,
            } => {
                let result = session.connect_from(conn, identity, address, now);
                if result.is_ok() {
                    self.peers.insert(
                        conn,
                        Peer {
                            tx: outbound,
                            shared,
                        },
                    );
                }
                let _ = reply.send(result);
            }
            Command::Text { conn, text, held } => {
                session.handle_text(conn, &text, now);
                drop(held);
            }
            Command::Binary { conn, bytes, held } => {
                session.handle_binary(conn, &bytes, now);
                drop(held);
            }
            Command::Refused { conn, error } => session.handle_refused(conn, error, now),
            Command::Touch { conn } => session.touch(conn, now),
            Command::Disconnect { conn } => {
                self.peers.remove(&conn);
                session.disconnect(conn, now);
            }
            Command::Call {
                request,
                conn,
                reply,
            } => self.answer(request, conn, reply, now),
            Command::Authenticated { conn, rid, outcome } => {
                session.handle_authenticated(conn, rid, outcome, now);
            }
            Command::History { .. } => unreachable!("taken above"),
            Command::Shutdown => {
                session.close_all(CloseReason::ServerShutdown, now);
                self.stop = true;
            }
        }
    }

    /// Answers a [`Request`] with the [`Session`] method it names.
    fn answer(
        &mut self,
        request: Request,
        conn: Option<ConnectionId>,
        reply: oneshot::Sender<Result<Reply, SessionError>>,
        now: Timestamp,
    ) {
        let session = &mut self.session;
        let view = |session: &Session| SessionView {
            info: session.info(),
            code: session.code(),
            rev: session.position().1,
            participants: session.participants(now),
        };
        // Reads answer at once; a change only once the step that made it
        // is stored.
        let (answer, changes) = match request {
            Request::View => (Ok(Reply::View(view(session))), false),
            Request::ViewFor { user, peer } => {
                let read = session.may_read(&user, peer).map(|member| {
                    Reply::Read(if member {
                        SessionRead::Full(view(session))
                    } else {
                        SessionRead::Summary(session.info())
                    })
                });
                (read, false)
            }
            Request::May { user, action } => {
                (session.may(&user, action).map(|()| Reply::Done), false)
            }
            Request::Read {
                user, since, rev, ..
            } => {
                let page = session.read(&user, since, rev, usize::MAX);
                (page.map(Reply::Page), false)
            }
            Request::Export { user } => {
                let export = session.export(&user, now);
                (export.map(|e| Reply::Export(Box::new(e))), false)
            }
            Request::Update { identity, update } => {
                let info = session.update(&identity.user_id, update, now);
                (info.map(Reply::Info), true)
            }
            Request::End { identity } => {
                (session.end(&identity.user_id, now).map(Reply::Info), true)
            }
            Request::ReplaceCode { user, rev, code } => {
                let rev = session.replace_code(&user, rev, &code, now);
                (rev.map(Reply::Revision), true)
            }
            Request::Join { name, .. } => {
                let joined = match conn {
                    Some(conn) => session.join_connection(conn, name, now),
                    None => Err(SessionError::InvalidInput(
                        "a join over REST comes through its connection".into(),
                    )),
                };
                (joined.map(Reply::Joined), true)
            }
            Request::Leave { user, target } => {
                let left = session.leave_user(&user, &target, now);
                (left.map(|()| Reply::Done), true)
            }
        };
        if changes {
            self.defer(reply, answer);
        } else {
            let _ = reply.send(answer);
        }
    }

    /// Whether a REST request reads versions before the session's history
    /// floor, and may wait for them.
    fn must_wait_for_history(&self, command: &Command) -> bool {
        let Command::Call { request, .. } = command else {
            return false;
        };
        let needs = match request {
            Request::ReplaceCode { user, rev, .. } => {
                self.session.replace_needs_history(user, *rev)
            }
            Request::Read { user, rev, .. } => self.session.read_needs_history(user, *rev),
            Request::Export { user } => self.session.export_needs_history(user),
            _ => false,
        };
        needs && !self.handing_in && self.awaiting_history.len() < MAX_WAITING_FOR_HISTORY
    }

    /// Hands the session the older history the store read, then the REST
    /// requests that waited for it. If it could not be read, they are
    /// answered `storage_failed` now; the next request that needs it asks
    /// again.
    fn history_read(&mut self, versions: Option<Vec<u8>>, now: Timestamp) {
        if let Err(e) = self.session.handle_history(versions.as_deref(), now) {
            tracing::error!(error = %e, "the stored history does not fit the session");
        }
        let waiting = std::mem::take(&mut self.awaiting_history);
        self.handing_in = true;
        for command in waiting {
            self.apply(command);
        }
        self.handing_in = false;
    }

    pub(super) fn defer<T: Send + 'static>(&mut self, reply: oneshot::Sender<T>, value: T) {
        self.deferred.push(Box::new(move || {
            let _ = reply.send(value);
        }));
    }

    /// Stores what changed, retrying while the store is down: nothing the
    /// step produced goes out before. `false` if the session cannot be
    /// stored at all (damaged), after closing everyone: nothing of what was
    /// not stored is acknowledged, and the session loads again from what was.
    async fn persist(&mut self) -> bool {
        let Some(store) = self.hub.store.clone() else {
            return true;
        };
        let mut changes = self.session.take_changes();
        if changes.is_empty() {
            return true;
        }
        changes.epoch = self.lease.as_ref().map_or(0, |l| l.epoch);
        let mut delay = std::time::Duration::from_millis(20);
        let started = std::time::Instant::now();
        let span = tracing::debug_span!(
            "store_save",
            events = changes.events.len(),
            versions = changes.versions.len(),
        );
        loop {
            match store.save(&changes).instrument(span.clone()).await {
                Ok(()) => {
                    metrics::histogram!(telemetry::STORE_SAVE_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    return true;
                }
                Err(e @ (StoreError::Damaged { .. } | StoreError::Fenced { .. })) => {
                    // Damaged, or owned by another process now: nothing of
                    // this step is acknowledged, and clients reconnect to
                    // wherever the session is served.
                    tracing::error!(session = %self.session.id(), error = %e, "cannot store session; closing it");
                    self.give_up(matches!(e, StoreError::Fenced { .. }));
                    return false;
                }
                Err(e) if self.lease_lapsed() => {
                    // Cut off from the shared store and the backplane for as
                    // long as the lease lasts: another process may own the
                    // session now. Nothing unstored is acknowledged; clients
                    // reconnect to wherever it is served.
                    tracing::error!(session = %self.session.id(), error = %e, "store unreachable past the lease; closing the session");
                    self.give_up(true);
                    return false;
                }
                Err(e) => {
                    tracing::warn!(session = %self.session.id(), error = %e, "store write failed; retrying");
                    let clock = &self.hub.clock;
                    clock.sleep_until(clock.now().plus(delay)).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    }

    /// Drops what the step would have sent and acknowledged, closes every
    /// connection and stops; `lost`: the lease is not ours to give back.
    fn give_up(&mut self, lost: bool) {
        while self.session.poll_transmit().is_some() {}
        self.deferred.clear();
        let now = self.hub.clock.now();
        self.session.close_all(CloseReason::ServerShutdown, now);
        self.stop = true;
        if lost {
            self.lease = None;
        }
    }

    /// Whether this process's lease has run out by its own clock.
    fn lease_lapsed(&self) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|lease| self.hub.clock.now() >= lease.expires)
    }

    /// Gives the lease back, so that the next process asked serves the
    /// session at once. Called once everything is stored and before the
    /// clients are told to go, so that they find the session free when they
    /// come back.
    async fn release_lease(&mut self) {
        let (Some(lease), Some(backplane)) = (self.lease.take(), &self.hub.backplane) else {
            return;
        };
        if let Err(e) = backplane.release(&lease).await {
            tracing::warn!(error = %e, "cannot release the session's lease; it will lapse");
        }
    }

    /// When the lease must be renewed: at half its time.
    pub(super) fn renew_at(&self) -> Option<Timestamp> {
        let lease = self.lease.as_ref()?;
        if let Some(retry) = self.renew_retry {
            // Never later than the lease's end, when it must be given up.
            return Some(retry.min(lease.expires));
        }
        let ttl = self.hub.config.lease_ttl;
        Some(Timestamp(
            lease.expires.0.saturating_sub(duration_ms(ttl) / 2),
        ))
    }

    /// Renews the lease when due. A lost lease stops the session here: its
    /// clients are closed and reconnect to the new owner.
    pub(super) async fn keep_lease(&mut self) {
        let now = self.hub.clock.now();
        let (Some(lease), Some(backplane)) = (&self.lease, &self.hub.backplane) else {
            return;
        };
        if self.renew_at().is_none_or(|at| now < at) {
            return;
        }
        match backplane.renew(lease, now, self.hub.config.lease_ttl).await {
            Ok(renewed) => {
                self.lease = Some(renewed);
                self.renew_retry = None;
            }
            Err(e) if now >= lease.expires || matches!(e, BackplaneError::Lost { .. }) => {
                tracing::warn!(error = %e, "lost the session's lease; closing its connections");
                self.lease = None;
                self.session.close_all(CloseReason::ServerShutdown, now);
                self.stop = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the session's lease yet");
                // Try again soon, and give it up when it ends by this
                // process's clock.
                self.renew_retry = Some(now.plus(self.hub.config.lease_ttl / 10));
            }
        }
    }

    /// Stores, then sends, then answers: the order the durability contract needs.
    async fn finish_step(&mut self, position: &watch::Sender<(Seq, Revision)>) {
        self.persist().await;
        if self.stop {
            self.release_lease().await;
        }
        deliver(&mut self.session, &mut self.peers, &self.hub, &self.me);
        for reply in self.deferred.drain(..) {
            reply();
        }
        let now_at = self.session.position();
        position.send_if_modified(|p| std::mem::replace(p, now_at) != now_at);
    }

    /// When to unload, with a store: at once for an ended session nobody is
    /// connected to, after [`HubConfig::unload_after`] for an idle one.
    pub(super) fn unload_at(&self) -> Option<Timestamp> {
        // Not while requests wait for the store's history: they would be
        // dropped unanswered.
        if self.hub.store.is_none()
            || self.session.connection_count() > 0
            || self.session.awaits_history()
            || !self.awaiting_history.is_empty()
        {
            return None;
        }
        if self.session.is_ended() {
            return Some(self.session.last_activity());
        }
        let last_use = self.session.last_activity().max(self.last_command);
        Some(last_use.plus(self.hub.config.unload_after))
    }

    /// Leaves the hub's map, under the load lock so the session cannot load
    /// again until its last changes are stored. `false` (and back in the map)
    /// if a connection arrived meanwhile.
    async fn unload(
        &mut self,
        rx: &mut mpsc::Receiver<Command>,
        position: &watch::Sender<(Seq, Revision)>,
    ) -> bool {
        let hub = Arc::clone(&self.hub);
        let id = self.session.id().clone();
        let _loading = LoadingGuard::lock(&hub, &id).await;
        let mine = self.me.upgrade();
        {
            let mut sessions = hub.sessions.lock().unwrap_or_else(|e| e.into_inner());
            if let (Some(h), Some(mine)) = (sessions.get(&id), mine.as_ref()) {
                if h.tx.same_channel(mine) {
                    sessions.remove(&id);
                }
            }
        }
        while let Ok(command) = rx.try_recv() {
            self.apply(command);
        }
        self.finish_step(position).await;
        if self.session.connection_count() == 0 || self.stop {
            // Still under the load lock: this process cannot load the
            // session again before its lease is given back.
            self.release_lease().await;
            return true;
        }
        if let Some(tx) = mine {
            let handle = SessionHandle {
                tx,
                position: position.subscribe(),
            };
            hub.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, handle);
        }
        false
    }
}

/// Holds one session's loading lock; the last holder forgets the lock.
pub(super) struct LoadingGuard {
    pub(super) inner: Arc<Inner>,
    pub(super) id: SessionId,
    pub(super) lock: Arc<tokio::sync::Mutex<()>>,
    pub(super) guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl LoadingGuard {
    pub(super) async fn lock(inner: &Arc<Inner>, id: &SessionId) -> Self {
        let lock = Arc::clone(
            inner
                .loading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id.clone())
                .or_default(),
        );
        let guard = Arc::clone(&lock).lock_owned().await;
        Self {
            inner: Arc::clone(inner),
            id: id.clone(),
            lock,
            guard: Some(guard),
        }
    }
}

impl Drop for LoadingGuard {
    fn drop(&mut self) {
        self.guard.take();
        let mut loading = self.inner.loading.lock().unwrap_or_else(|e| e.into_inner());
        // The map's and ours: nobody else waits for this session.
        if Arc::strong_count(&self.lock) == 2 {
            loading.remove(&self.id);
        }
    }
}

pub(super) async fn run_session(
    session: Session,
    lease: Option<Lease>,
    mut rx: mpsc::Receiver<Command>,
    me: mpsc::WeakSender<Command>,
    position: watch::Sender<(Seq, Revision)>,
    hub: Arc<Inner>,
) {
    let hub_now = hub.clock.now();
    metrics::gauge!(telemetry::SESSIONS_LOADED).increment(1.0);
    tracing::debug!("session running");
    let mut task = Task {
        session,
        peers: HashMap::new(),
        hub,
        me,
        deferred: Vec::new(),
        stop: false,
        last_command: hub_now,
        lease,
        renew_retry: None,
        awaiting_history: Vec::new(),
        handing_in: false,
    };
    loop {
        let deadline = [
            task.session.poll_timeout(),
            task.unload_at(),
            task.renew_at(),
        ]
        .into_iter()
        .flatten()
        .min();
        let clock = Arc::clone(&task.hub.clock);
        let wake = async {
            match deadline {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let step = tokio::select! {
            command = rx.recv() => {
                let Some(command) = command else { break };
                let step = std::time::Instant::now();
                // Everything already waiting joins this step and its one write.
                let mut batch = Vec::with_capacity(8);
                batch.push(command);
                while batch.len() <= MAX_BATCH {
                    match rx.try_recv() {
                        Ok(command) => batch.push(command),
                        Err(_) => break,
                    }
                }
                task.apply_all(batch);
                step
            }
            () = wake => {
                let step = std::time::Instant::now();
                task.session.handle_timeout(task.hub.clock.now());
                step
            }
        };
        task.keep_lease().await;
        task.finish_step(&position).await;
        telemetry::report(&task.session.take_tally());
        metrics::histogram!(telemetry::SESSION_STEP_SECONDS).record(step.elapsed().as_secs_f64());
        if task.stop {
            break;
        }
        let now = task.hub.clock.now();
        if task.unload_at().is_some_and(|at| now >= at) && task.unload(&mut rx, &position).await {
            break;
        }
    }
    metrics::gauge!(telemetry::SESSIONS_LOADED).decrement(1.0);
    tracing::debug!("session stopped");
    if task.stop {
        // Shut down or damaged: out of the map, if still there.
        let id = task.session.id().clone();
        let mine = task.me.upgrade();
        let mut sessions = task.hub.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(h), Some(mine)) = (sessions.get(&id), mine.as_ref()) {
            if h.tx.same_channel(mine) {
                sessions.remove(&id);
            }
        }
    }
}

/// Versions `1..=through` of a session, read a range at a time and encoded
/// as they come (see [`HISTORY_READ`]). A store that has fewer gives fewer;
/// the session refuses them.
async fn read_history(
    store: &dyn Store,
    id: &SessionId,
    through: Revision,
) -> Result<Vec<u8>, StoreError> {
    let mut encoded = Vec::new();
    let mut after = 0;
    while after < through {
        let to = through.min(after + HISTORY_READ);
        let part = store.versions(id, after, to).await?;
        encoded.extend(collab_core::document::encode_versions(&part));
        if part.len() as Revision != to - after {
            break;
        }
        after = to;
    }
    Ok(encoded)
}

/// Hands everything the session wants sent to the connections' queues, without
/// ever waiting: a full queue drops that connection as a slow consumer.
pub(super) fn deliver(
    session: &mut Session,
    peers: &mut HashMap<ConnectionId, Peer>,
    hub: &Arc<Inner>,
    me: &mpsc::WeakSender<Command>,
) {
    loop {
        // Full queues: readers too slow. Closed ones: readers already gone,
        // whose disconnect is on its way; not a slow consumer.
        let mut slow = Vec::new();
        let mut gone = Vec::new();
        while let Some(transmit) = session.poll_transmit() {
            match transmit {
                Transmit::Send { to, frame } => {
                    // Serialised once; every recipient shares these bytes,
                    // down to its WebSocket's write.
                    let text = crate::outbound::SharedText::from(frame.to_json());
                    let mut sent = 0;
                    for conn in to {
                        let Some(peer) = peers.get(&conn) else {
                            continue;
                        };
                        match peer.queue(hub, Outbound::Text(text.clone()), text.len()) {
                            Ok(()) => sent += 1,
                            Err(Queued::Slow) => slow.push(conn),
                            Err(Queued::Gone) => gone.push(conn),
                        }
                    }
                    hub.counters.frames_out.fetch_add(sent, Ordering::Relaxed);
                    hub.counters
                        .bytes_out
                        .fetch_add(sent * text.len() as u64, Ordering::Relaxed);
                    metrics::counter!(telemetry::FRAMES_OUT, "type" => frame.type_name())
                        .increment(sent);
                }
                Transmit::SendBinary { to, bytes } => {
                    let Some(peer) = peers.get(&to) else { continue };
                    let len = bytes.len();
                    peer.shared.sent_binary();
                    match peer.queue(hub, Outbound::Binary(bytes), len) {
                        Ok(()) => {
                            hub.counters.frames_out.fetch_add(1, Ordering::Relaxed);
                            hub.counters
                                .bytes_out
                                .fetch_add(len as u64, Ordering::Relaxed);
                            metrics::counter!(telemetry::FRAMES_OUT, "type" => "sync").increment(1);
                        }
                        Err(Queued::Slow) => slow.push(to),
                        Err(Queued::Gone) => gone.push(to),
                    }
                }
                Transmit::Authenticate { conn, rid, token } => {
                    // Checked off the session task, which must not wait on an
                    // authenticator; the outcome comes back as a command.
                    let (Some(tx), auth) = (me.upgrade(), Arc::clone(&hub.auth)) else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let outcome = auth.authenticate(Some(&token)).await;
                        let _ = tx.send(Command::Authenticated { conn, rid, outcome }).await;
                    });
                }
                Transmit::LoadHistory { through } => {
                    // Read off the session task, like a credential check;
                    // the frames that need it wait in the session.
                    let Some(tx) = me.upgrade() else { continue };
                    let store = hub.store.clone();
                    let id = session.id().clone();
                    tokio::spawn(async move {
                        let versions = match store {
                            Some(store) => match read_history(&*store, &id, through).await {
                                Ok(versions) => Some(versions),
                                Err(e) => {
                                    tracing::warn!(
                                        session = %id, error = %e,
                                        "reading a session's history from the store failed"
                                    );
                                    None
                                }
                            },
                            None => None,
                        };
                        let _ = tx.send(Command::History { versions }).await;
                    });
                }
                Transmit::Close { conn, reason } => {
                    if let Some(peer) = peers.remove(&conn) {
                        peer.shared.set(reason);
                        let _ = peer.tx.try_send(Outbound::Close(reason));
                    }
                }
            }
        }
        if slow.is_empty() && gone.is_empty() {
            return;
        }
        let now = hub.clock.now();
        for conn in slow {
            if let Some(peer) = peers.remove(&conn) {
                hub.counters.drops.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(telemetry::SLOW_CONSUMER_DROPS).increment(1);
                tracing::info!(
                    conn = conn.0,
                    "dropping a connection that does not read its frames"
                );
                peer.shared.set(CloseReason::SlowConsumer);
                session.disconnect(conn, now);
            }
        }
        for conn in gone {
            if peers.remove(&conn).is_some() {
                session.disconnect(conn, now);
            }
        }
    }
}
