//! Replicas: automerge's own sync protocol, one state per connection, and
//! absorbing what a replica changed into the text mirrors and the history.

use super::*;

impl Document {
    /// Applies a replica's sync message. Returns the versions its changes made
    /// (in order) and anything else they did.
    ///
    /// # Errors
    /// [`DocumentError::BadSyncMessage`] for bytes that are not a sync message,
    /// [`DocumentError::Automerge`] if automerge refuses its changes. Nothing
    /// changes on error.
    pub fn receive_sync(
        &mut self,
        state: &mut SyncState,
        message: &[u8],
        author: Option<ParticipantId>,
        now: Timestamp,
    ) -> Result<(Vec<Version>, Vec<SideEffect>), DocumentError> {
        self.receive_sync_all(state, &[message], author, now)
    }

    /// Applies several sync messages from one replica, in the order they
    /// came, as one: their changes go to automerge in one call, and the
    /// last message says what the replica has and needs. automerge's cost
    /// per call grows with the history (about 4 ms at 40k changes), so a
    /// replica's burst costs one call instead of one per message.
    ///
    /// # Errors
    /// As [`Document::receive_sync`]; one bad message refuses them all and
    /// none of their changes is applied (pending local edits are committed,
    /// and the sync state may have noted what the messages said).
    pub fn receive_sync_all(
        &mut self,
        state: &mut SyncState,
        messages: &[&[u8]],
        author: Option<ParticipantId>,
        now: Timestamp,
    ) -> Result<(Vec<Version>, Vec<SideEffect>), DocumentError> {
        let Some(message) =
            crate::sync::decode_all(messages).map_err(DocumentError::BadSyncMessage)?
        else {
            return Ok((Vec::new(), Vec::new()));
        };
        self.commit();
        self.must_save |= !message.changes.is_empty();
        self.private = false;
        let patches =
            crate::sync::receive(&mut self.doc, &mut state.0, message, true).map_err(refused)?;
        let absorbed = self.absorb(patches, author, now);
        // The versions a replica's changes made are automerge's already.
        self.handed_over = self.rev();
        Ok(absorbed)
    }

    /// Whether the sync message carries changes (a viewer's may not).
    ///
    /// # Errors
    /// [`DocumentError::BadSyncMessage`].
    pub fn sync_message_has_changes(message: &[u8]) -> Result<bool, DocumentError> {
        let message = crate::sync::decode(message).map_err(DocumentError::BadSyncMessage)?;
        Ok(!message.changes.is_empty())
    }

    /// The next sync message for a replica, if it lacks anything.
    pub fn generate_sync(&mut self, state: &mut SyncState) -> Option<Vec<u8>> {
        self.commit();
        let message = self.doc.sync().generate_sync_message(&mut state.0)?;
        self.must_save |= !message.changes.is_empty();
        self.private = false;
        Some(message.encode())
    }

    /// What a replica joining now starts from: the document as bytes to load
    /// (the last full save plus the changes saved after it, so this costs only
    /// the changes since the previous call), and the server's sync state for
    /// that replica, which already counts everything in those bytes as shared.
    /// The replica loads the bytes and starts its own sync state from their
    /// heads; the sync protocol then only exchanges what came after, instead
    /// of summarising the whole history in both directions.
    pub fn replica_start(&mut self) -> (Vec<u8>, SyncState) {
        self.commit();
        self.must_save = true;
        self.private = false;
        let heads = self.doc.get_heads();
        if heads != self.snapshot_heads {
            let after = self.doc.save_after(&self.snapshot_heads);
            self.snapshot.extend_from_slice(&after);
            self.snapshot_heads.clone_from(&heads);
            // Separate change chunks load slower and weigh more than one
            // compressed document; fold them in once they outweigh it.
            if self.snapshot.len() > 2 * self.snapshot_full_len + 64 * 1024 {
                self.snapshot = self.doc.save();
                self.snapshot_full_len = self.snapshot.len();
            }
        }
        let mut state = sync::State::new();
        state.shared_heads = heads;
        (self.snapshot.clone(), SyncState(state))
    }

    // ---- internals -----------------------------------------------------------

    /// Turns patches from remote changes into versions, keeping the mirrors in step.
    pub(super) fn absorb(
        &mut self,
        patches: Vec<Patch>,
        author: Option<ParticipantId>,
        now: Timestamp,
    ) -> (Vec<Version>, Vec<SideEffect>) {
        let mut versions = Vec::new();
        let mut effects = Vec::new();
        let mut record = |this: &mut Self, file: String, change: Change| {
            let version = Version {
                rev: this.rev() + 1,
                file,
                change,
                author,
                at: now,
                oid: None,
            };
            this.push(&version);
            versions.push(version);
        };
        for patch in patches {
            if patch.obj == ROOT {
                if let PatchAction::PutMap {
                    key,
                    value: (Value::Scalar(s), _),
                    ..
                } = &patch.action
                {
                    if key == "language" {
                        if let ScalarValue::Str(lang) = s.as_ref() {
                            self.language = lang.to_string();
                            effects.push(SideEffect::Language(lang.to_string()));
                        }
                    }
                }
                continue;
            }
            if patch.obj == self.files_obj {
                match patch.action {
                    PatchAction::PutMap {
                        key,
                        value: (Value::Object(ObjType::Text), obj),
                        ..
                    } => {
                        // The patches that follow fill the new text object, so
                        // it starts empty here.
                        if let Some(old) = self.objs.insert(key.clone(), obj.clone()) {
                            self.by_obj.remove(&old);
                        }
                        self.by_obj.insert(obj, key.clone());
                        self.files
                            .insert(key.clone(), FileState { text: Rope::new() });
                        record(
                            self,
                            key,
                            Change::Create {
                                text: String::new(),
                            },
                        );
                    }
                    PatchAction::DeleteMap { key } | PatchAction::PutMap { key, .. } => {
                        // Removed, or replaced by something that is not text.
                        if let Some(old) = self.objs.remove(&key) {
                            self.by_obj.remove(&old);
                        }
                        if self.files.remove(&key).is_some() {
                            record(self, key, Change::Remove);
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if let Some(path) = self.by_obj.get(&patch.obj).cloned() {
                let op = match patch.action {
                    PatchAction::SpliceText { index, value, .. } => {
                        let mut op = TextOperation::new();
                        op.retain(index as u32).insert(&value.make_string());
                        op
                    }
                    PatchAction::DeleteSeq { index, length } => {
                        let mut op = TextOperation::new();
                        op.retain(index as u32).delete(length as u32);
                        op
                    }
                    _ => continue,
                };
                if let Some(f) = self.files.get_mut(&path) {
                    apply_to_rope(&mut f.text, &op);
                }
                record(self, path, Change::Edit { op });
                continue;
            }
            if is_runs_patch(&patch) {
                let runs = self.read_runs();
                if runs.len() > self.runs.len() || runs.last() != self.runs.last() {
                    if let Some(run) = runs.last().cloned() {
                        effects.push(SideEffect::Run(run));
                    }
                }
                self.runs = runs;
            }
        }
        (versions, effects)
    }
}

pub(super) fn is_runs_patch(patch: &Patch) -> bool {
    patch
        .path
        .first()
        .is_some_and(|(obj, prop)| *obj == ROOT && *prop == Prop::Map("runs".into()))
}

/// One replica's sync state. Keep one per connection; a new connection starts afresh.
#[derive(Debug, Default)]
pub struct SyncState(sync::State);

impl SyncState {
    /// A fresh state, for a new connection.
    pub fn new() -> Self {
        Self(sync::State::new())
    }
}
