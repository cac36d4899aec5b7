//! A replica client without IO: its own copy of the session document, kept in
//! step with the server by automerge's sync protocol. Rust clients and the
//! tests use it; browsers can do the same with the automerge npm package.
//!
//! Edits made while disconnected stay in the replica's document and merge when
//! it syncs again: call [`ReplicaClient::reconnect`] on a new connection, then
//! exchange messages as usual.
//!
//! Over a WebSocket, send each message [`ReplicaClient::poll_message`] gives
//! as the frames [`crate::parts::split`] cuts it into (with the server's text
//! frame limit, 64 KiB by default): a message larger than a WebSocket
//! message travels in parts.
//!
//! ```
//! use collab_core::{Document, ReplicaClient, SyncState};
//!
//! let mut server = Document::new("python", [("main", "print(1)")]).unwrap();
//! let mut server_side = SyncState::new();
//! let mut replica = ReplicaClient::new();
//! // Exchange messages until neither side has anything to say.
//! loop {
//!     let to_replica = server.generate_sync(&mut server_side);
//!     if let Some(m) = &to_replica { replica.receive(m).unwrap(); }
//!     let to_server = replica.poll_message();
//!     if let Some(m) = &to_server { server.receive_sync(&mut server_side, m, None, Default::default()).unwrap(); }
//!     if to_replica.is_none() && to_server.is_none() { break; }
//! }
//! assert_eq!(replica.text("main").as_deref(), Some("print(1)"));
//! ```

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, LoadOptions, ObjId, ObjType, ReadDoc, TextEncoding, Value, ROOT};

use crate::document::{refused, DocumentError, DOCUMENT_MAGIC};

/// A replica of a session document.
#[derive(Debug)]
pub struct ReplicaClient {
    doc: AutoCommit,
    state: sync::State,
}

impl Default for ReplicaClient {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplicaClient {
    /// An empty replica; it gets the document from its first sync.
    pub fn new() -> Self {
        Self {
            doc: AutoCommit::new_with_encoding(TextEncoding::Utf16CodeUnit),
            state: sync::State::new(),
        }
    }

    /// Takes a binary frame from the server: a sync message, or the document
    /// snapshot a replica gets when it joins.
    ///
    /// # Errors
    /// [`DocumentError::BadSyncMessage`] or [`DocumentError::Automerge`].
    pub fn receive(&mut self, message: &[u8]) -> Result<(), DocumentError> {
        if message.starts_with(&DOCUMENT_MAGIC) {
            return self.load_snapshot(message);
        }
        let message = crate::sync::decode(message).map_err(DocumentError::BadSyncMessage)?;
        crate::sync::receive(&mut self.doc, &mut self.state, message, false).map_err(refused)?;
        // automerge 0.6 loads the first changes into an empty document with its
        // default text encoding; positions here are UTF-16, so load it again
        // with that encoding (once, on the first sync).
        if self.doc.document().text_encoding() != TextEncoding::Utf16CodeUnit {
            let bytes = self.doc.save();
            self.doc = AutoCommit::load_with_options(
                &bytes,
                LoadOptions::new().text_encoding(TextEncoding::Utf16CodeUnit),
            )
            .map_err(refused)?;
        }
        Ok(())
    }

    /// Takes every binary frame that has arrived (drain the socket first) and
    /// returns the one answer to all of them, if any is due. Answering each
    /// message separately sends the server as many frames as it sent; one
    /// answer per batch is what keeps a replica following a busy session
    /// well within the frame rate limit.
    ///
    /// # Errors
    /// As [`ReplicaClient::receive`]; the messages before the bad one are
    /// taken.
    pub fn receive_all<'m>(
        &mut self,
        messages: impl IntoIterator<Item = &'m [u8]>,
    ) -> Result<Option<Vec<u8>>, DocumentError> {
        for message in messages {
            self.receive(message)?;
        }
        Ok(self.poll_message())
    }

    /// The next sync message for the server, if it lacks anything.
    pub fn poll_message(&mut self) -> Option<Vec<u8>> {
        self.doc.commit();
        self.doc
            .sync()
            .generate_sync_message(&mut self.state)
            .map(sync::Message::encode)
    }

    /// Loads the server's snapshot: into the empty document, or merged with
    /// edits made before joining. The sync state starts from the snapshot's
    /// heads, which the server counts as shared.
    fn load_snapshot(&mut self, bytes: &[u8]) -> Result<(), DocumentError> {
        let mut snapshot = AutoCommit::load_with_options(
            bytes,
            LoadOptions::new().text_encoding(TextEncoding::Utf16CodeUnit),
        )
        .map_err(refused)?;
        let heads = snapshot.get_heads();
        self.doc.commit();
        if self.doc.get_heads().is_empty() {
            self.doc = snapshot;
        } else {
            self.doc.merge(&mut snapshot).map_err(refused)?;
        }
        self.state = sync::State::new();
        self.state.shared_heads = heads;
        Ok(())
    }

    /// Makes the edits so far one change (a keystroke). [`ReplicaClient::poll_message`]
    /// commits too, so edits between two messages are one change unless this
    /// is called in between.
    pub fn commit(&mut self) {
        self.doc.commit();
    }

    /// Starts over with a new connection: the server side has a fresh sync
    /// state, so this side needs one too. Local edits are kept and sync next.
    pub fn reconnect(&mut self) {
        self.state = sync::State::new();
    }

    /// Replaces `delete` UTF-16 units at `pos` of `path` with `insert`.
    ///
    /// # Errors
    /// [`DocumentError::UnknownFile`] before the file has synced,
    /// [`DocumentError::Operation`] for a range outside the text or splitting
    /// a surrogate pair.
    pub fn splice(
        &mut self,
        path: &str,
        pos: u32,
        delete: u32,
        insert: &str,
    ) -> Result<(), DocumentError> {
        let obj = self.file(path)?;
        let text = self.doc.text(&obj).map_err(refused)?;
        let units: Vec<u16> = text.encode_utf16().collect();
        let end = pos as usize + delete as usize;
        if end > units.len() {
            let needed = u32::try_from(end).unwrap_or(u32::MAX);
            return Err(crate::ot::OtError::OutOfRange {
                needed,
                len: units.len() as u32,
            }
            .into());
        }
        for at in [pos as usize, end] {
            let inside_pair = at > 0 && at < units.len() && (0xDC00..0xE000).contains(&units[at]);
            if inside_pair {
                return Err(crate::ot::OtError::SplitsSurrogatePair { at: at as u32 }.into());
            }
        }
        self.doc
            .splice_text(&obj, pos as usize, delete as isize, insert)
            .map_err(refused)?;
        Ok(())
    }

    /// Creates a file.
    ///
    /// # Errors
    /// [`DocumentError::Structure`] before the document has synced.
    pub fn create_file(&mut self, path: &str, text: &str) -> Result<(), DocumentError> {
        let files = self.files_obj()?;
        let obj = self
            .doc
            .put_object(&files, path, ObjType::Text)
            .map_err(refused)?;
        self.doc.splice_text(&obj, 0, 0, text).map_err(refused)?;
        Ok(())
    }

    /// Sets the language.
    ///
    /// # Errors
    /// Only if automerge refuses the write.
    pub fn set_language(&mut self, language: &str) -> Result<(), DocumentError> {
        self.doc.put(ROOT, "language", language).map_err(refused)?;
        Ok(())
    }

    /// A file's text.
    pub fn text(&self, path: &str) -> Option<String> {
        self.file(path)
            .ok()
            .and_then(|obj| self.doc.text(&obj).ok())
    }

    /// The paths of all files, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.files_obj()
            .map(|f| self.doc.keys(&f).collect())
            .unwrap_or_default()
    }

    /// The language, once synced.
    pub fn language(&self) -> Option<String> {
        match self.doc.get(ROOT, "language") {
            Ok(Some((Value::Scalar(s), _))) => s.as_str().map(str::to_owned),
            _ => None,
        }
    }

    /// The replica's document in automerge's binary format.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    fn files_obj(&self) -> Result<ObjId, DocumentError> {
        match self.doc.get(ROOT, "files").map_err(refused)? {
            Some((Value::Object(ObjType::Map), id)) => Ok(id),
            _ => Err(DocumentError::Structure("not synced yet: no files".into())),
        }
    }

    fn file(&self, path: &str) -> Result<ObjId, DocumentError> {
        let files = self.files_obj()?;
        match self.doc.get(&files, path).map_err(refused)? {
            Some((Value::Object(ObjType::Text), id)) => Ok(id),
            _ => Err(DocumentError::UnknownFile(path.to_owned())),
        }
    }
}
