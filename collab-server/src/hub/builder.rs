//! [`HubBuilder`]: a hub's parts, set once before it serves.

use super::*;

/// What a [`Hub`] is made of, each part with a default until set: tokio's
/// clock, [`HubConfig::default`], sessions in memory only, [`DefaultAccess`],
/// no other processes.
///
/// ```
/// use std::sync::Arc;
/// use collab_server::{Hub, HubConfig, MemoryStore, TokenAuthenticator};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mut config = HubConfig::default();
/// config.session.capacity = 4;
/// let hub = Hub::builder(Arc::new(TokenAuthenticator::new()))
///     .config(config)
///     .store(Arc::new(MemoryStore::new()))
///     .build();
/// assert_eq!(hub.stats().sessions, 0);
/// # });
/// ```
#[must_use = "a builder does nothing until built"]
pub struct HubBuilder {
    pub(super) auth: Arc<dyn Authenticator>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: HubConfig,
    pub(super) store: Option<Arc<dyn Store>>,
    pub(super) backplane: Option<Arc<dyn Backplane>>,
    pub(super) access: Arc<dyn Access>,
}

impl HubBuilder {
    pub(super) fn new(auth: Arc<dyn Authenticator>) -> Self {
        Self {
            auth,
            clock: Arc::new(TokioClock::new()),
            config: HubConfig::default(),
            store: None,
            backplane: None,
            access: Arc::new(DefaultAccess),
        }
    }

    /// The clock sessions run on (a [`crate::clock::ManualClock`] in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The hub's settings.
    pub fn config(mut self, config: HubConfig) -> Self {
        self.config = config;
        self
    }

    /// Keeps sessions in `store`: every acknowledged change is saved before
    /// the acknowledgement goes out (see [`crate::store`]), sessions idle
    /// for [`HubConfig::unload_after`] leave memory and load again on
    /// demand, after a restart too, and a sweep every
    /// [`HubConfig::sweep_every`] expires idle sessions and deletes ended
    /// ones after [`HubConfig::keep_ended`].
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Serves sessions together with other processes: each session is
    /// owned by one process at a time, claimed through `backplane` with an
    /// epoch that fences `store` (which every process must reach);
    /// connections and requests for a session owned elsewhere are forwarded
    /// to its owner.
    pub fn cluster(mut self, store: Arc<dyn Store>, backplane: Arc<dyn Backplane>) -> Self {
        self.store = Some(store);
        self.backplane = Some(backplane);
        self
    }

    /// Decides who may create, read and join which session with `access`
    /// instead of [`DefaultAccess`].
    pub fn access(mut self, access: impl Access) -> Self {
        self.access = Arc::new(access);
        self
    }

    /// The hub. With a store it must be built within a tokio runtime: the
    /// sweep (and with a backplane, the inbox and the watch on owners) are
    /// tasks.
    pub fn build(self) -> Hub {
        let backplane = self.backplane.clone();
        let stored = self.store.is_some();
        let hub = Hub::assemble(self);
        if let Some(backplane) = backplane {
            tokio::spawn(Hub::serve_inbox(
                Arc::downgrade(&hub.inner),
                Arc::clone(&backplane),
            ));
            tokio::spawn(Hub::watch_owners(Arc::downgrade(&hub.inner), backplane));
        }
        if stored {
            Hub::serving(hub)
        } else {
            hub
        }
    }
}
