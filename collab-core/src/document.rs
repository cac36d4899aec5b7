//! The session document: files (path -> text), the language, and shared run
//! output, kept in an automerge document so that concurrent edits merge instead
//! of overwriting each other.
//!
//! Two ways in, one truth:
//!
//! - **Thin clients** send [`TextOperation`]s tagged with the revision they were
//!   typed against. [`Document::apply_operation`] rebases them over everything
//!   applied since (operational transformation; at a tie the history goes
//!   first, or the author who goes first when the client asks for it) and
//!   applies the result to the automerge document as a local transaction.
//! - **Replicas** hold their own automerge document and speak automerge's sync
//!   protocol ([`Document::receive_sync`], [`Document::generate_sync`]). What
//!   their changes do to the text comes back as patches, which become
//!   operations in the same history.
//!
//! Every change to a file's text, from either path, gets the next revision in
//! one linear history ([`Version`]). That history is what thin clients rebase
//! over, what replay steps through, and what `text_at` reads.
//!
//! Text positions and lengths count UTF-16 code units, as browsers do.
//!
//! A mirror of every file's text is kept in a rope, so that checking an
//! operation against the text (its length, surrogate pairs) and reading the text
//! never walks the automerge history. Local changes are committed in batches
//! (when the author changes, every [`COMMIT_EVERY`] operations, or when
//! anything needs the heads), because an automerge commit costs more than the
//! edit itself.

use std::collections::{BTreeMap, HashMap};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    AutoCommit, LoadOptions, ObjId, ObjType, Patch, PatchAction, Prop, ReadDoc, ScalarValue,
    TextEncoding, Value, ROOT,
};
use ropey::Rope;

use crate::ids::ParticipantId;
use crate::ot::{OtError, TextOperation};
use crate::protocol::Ties;
use crate::time::Timestamp;

pub use collab_wire::document::{
    Change, DocumentSnapshot, Revision, RunOutput, Version, DEFAULT_FILE, MAX_FILES, MAX_RUNS,
    MAX_RUN_OUTPUT_BYTES,
};

/// Longest file path, in bytes.
pub const MAX_PATH_BYTES: usize = crate::presence::MAX_FILE_PATH_BYTES;
/// Local operations committed together at most.
pub const COMMIT_EVERY: usize = 64;
/// A checkpoint of every file's text is kept every this many revisions, so
/// that reading the text at an old revision replays at most this many operations.
const CHECKPOINT_EVERY: u64 = 1_024;

/// A document operation that cannot be done. Unless said otherwise, the
/// caller's mistake, and nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// A path is empty, too long, or has control characters.
    #[error("file path must be 1 to {MAX_PATH_BYTES} bytes without control characters")]
    BadPath,
    /// No file at that path.
    #[error("no file {0:?}")]
    UnknownFile(String),
    /// A file already exists at that path.
    #[error("file {0:?} exists already")]
    FileExists(String),
    /// The document has [`MAX_FILES`] files.
    #[error("a document holds at most {MAX_FILES} files")]
    TooManyFiles,
    /// The revision is newer than the document's.
    #[error("unknown revision {rev}; the document is at {current}")]
    UnknownRevision {
        /// The revision given.
        rev: Revision,
        /// The document's revision.
        current: Revision,
    },
    /// The operation does not fit the text it was rebased onto.
    #[error("operation does not fit the text: {0}")]
    Operation(#[from] OtError),
    /// The document would grow past its size limit.
    #[error("document would be {len} UTF-16 units; the limit is {max}")]
    TooLarge {
        /// Size after the change.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A run output is too large.
    #[error("run output is limited to {MAX_RUN_OUTPUT_BYTES} bytes per stream")]
    RunOutputTooLarge,
    /// Bytes that are not an automerge sync message.
    #[error("not a sync message: {0}")]
    BadSyncMessage(String),
    /// The document's structure is not what this library writes (a damaged or
    /// foreign document). Fatal for this document.
    #[error("document structure: {0}")]
    Structure(String),
    /// automerge refused the operation.
    #[error("automerge: {0}")]
    Automerge(String),
}

impl From<automerge::AutomergeError> for DocumentError {
    fn from(e: automerge::AutomergeError) -> Self {
        DocumentError::Automerge(e.to_string())
    }
}

/// What applying a thin client's operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied as this version (its `op` is the rebased operation).
    New(Version),
    /// An operation with this `oid` was applied before, as revision `rev`:
    /// nothing changed (a client resending after a reconnect).
    Duplicate(Revision),
}

/// Something a replica's changes did besides editing text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SideEffect {
    /// The language changed.
    Language(String),
    /// A run output was added.
    Run(RunOutput),
}

#[derive(Debug, Clone)]
struct FileState {
    obj: ObjId,
    text: Rope,
}

/// The shared document of one session.
#[derive(Debug)]
pub struct Document {
    doc: AutoCommit,
    files_obj: ObjId,
    files: BTreeMap<String, FileState>,
    by_obj: HashMap<ObjId, String>,
    language: String,
    history: Vec<Version>,
    /// Every file's text at revisions that are multiples of CHECKPOINT_EVERY.
    checkpoints: Vec<(Revision, BTreeMap<String, Rope>)>,
    /// Thin-client operation ids already applied, per author.
    oids: HashMap<(ParticipantId, String), Revision>,
    uncommitted: usize,
    uncommitted_author: Option<ParticipantId>,
    runs: Vec<RunOutput>,
    max_len: u64,
    /// What late-joining replicas load: see [`Document::replica_start`].
    snapshot: Vec<u8>,
    snapshot_heads: Vec<automerge::ChangeHash>,
    snapshot_full_len: usize,
}

/// The first bytes of a saved automerge document, which tell a snapshot from
/// a sync message in a binary frame.
pub const DOCUMENT_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

fn automerge_utf16() -> AutoCommit {
    AutoCommit::new_with_encoding(TextEncoding::Utf16CodeUnit)
}

fn utf16_len(s: &str) -> u64 {
    s.encode_utf16().count() as u64
}

impl Document {
    /// A document with the given language and files.
    ///
    /// ```
    /// use collab_core::Document;
    /// let doc = Document::new("rust", [("main", "fn main() {}")]).unwrap();
    /// assert_eq!(doc.text("main").as_deref(), Some("fn main() {}"));
    /// assert_eq!(doc.language(), "rust");
    /// assert_eq!(doc.rev(), 0);
    /// ```
    ///
    /// # Errors
    /// [`DocumentError::BadPath`] for an invalid path, [`DocumentError::TooManyFiles`].
    pub fn new<'a>(
        language: &str,
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, DocumentError> {
        let mut doc = automerge_utf16();
        doc.put(ROOT, "language", language)?;
        let files_obj = doc.put_object(ROOT, "files", ObjType::Map)?;
        doc.put_object(ROOT, "runs", ObjType::List)?;
        let mut this = Self::fresh(doc, files_obj, language.to_owned());
        for (path, text) in files {
            check_path(path)?;
            if this.files.len() >= MAX_FILES {
                return Err(DocumentError::TooManyFiles);
            }
            this.put_file(path, text)?;
        }
        this.doc.commit();
        this.checkpoints[0].1 = this.texts();
        this.snapshot = this.doc.save();
        this.snapshot_full_len = this.snapshot.len();
        this.snapshot_heads = this.doc.get_heads();
        Ok(this)
    }

    /// Loads a document saved with [`Document::save`]. Its history starts
    /// afresh at revision 0 with the loaded texts.
    ///
    /// # Errors
    /// [`DocumentError::Structure`] or [`DocumentError::Automerge`] for bytes
    /// that are not a document of this library.
    pub fn load(bytes: &[u8]) -> Result<Self, DocumentError> {
        let doc = AutoCommit::load_with_options(
            bytes,
            LoadOptions::new().text_encoding(TextEncoding::Utf16CodeUnit),
        )?;
        let mut this = Self::from_automerge(doc)?;
        // The bytes just loaded are the snapshot for replicas, for free.
        this.snapshot = bytes.to_vec();
        this.snapshot_full_len = bytes.len();
        this.snapshot_heads = this.doc.get_heads();
        Ok(this)
    }

    /// A stored document back: the saved automerge bytes, the files as they
    /// were at revision 0, and the stored history. Replaying the history from
    /// those files must give the saved texts; anything else means the stored
    /// parts do not belong together, and is refused.
    ///
    /// # Errors
    /// As [`Document::load`], and [`DocumentError::Structure`] when the
    /// history does not lead to the saved texts.
    pub fn restore(
        saved: &[u8],
        initial: &BTreeMap<String, String>,
        history: Vec<Version>,
    ) -> Result<Self, DocumentError> {
        let mut this = Self::load(saved)?;
        let mut texts: BTreeMap<String, Rope> = initial
            .iter()
            .map(|(p, t)| (p.clone(), Rope::from_str(t)))
            .collect();
        let mut checkpoints = vec![(0, texts.clone())];
        for (i, v) in history.iter().enumerate() {
            let rev = i as Revision + 1;
            if v.rev != rev {
                return Err(DocumentError::Structure(format!(
                    "version {} where {rev} belongs",
                    v.rev
                )));
            }
            match &v.change {
                Change::Edit { op } => {
                    let Some(text) = texts.get_mut(&v.file) else {
                        return Err(DocumentError::Structure(format!(
                            "revision {rev} edits {}, which does not exist",
                            v.file
                        )));
                    };
                    apply_to_rope(text, op);
                }
                Change::Create { text } => {
                    texts.insert(v.file.clone(), Rope::from_str(text));
                }
                Change::Remove => {
                    texts.remove(&v.file);
                }
            }
            if rev % CHECKPOINT_EVERY == 0 {
                checkpoints.push((rev, texts.clone()));
            }
            if let (Some(author), Some(oid)) = (v.author, v.oid.as_ref()) {
                this.oids.insert((author, oid.clone()), rev);
            }
        }
        if texts != this.texts() {
            return Err(DocumentError::Structure(
                "the stored history does not lead to the stored text".into(),
            ));
        }
        this.history = history;
        this.checkpoints = checkpoints;
        Ok(this)
    }

    /// The changes made since `heads` as bytes to append to a stored
    /// document, committing pending local changes first; `None` when there
    /// are none. `heads` moves to the document's heads, and `saved` (every
    /// change already stored) grows by what is returned.
    ///
    /// Walks back from the heads to the first stored changes, so it costs the
    /// new changes, not the history (automerge's `save_after` scans the
    /// whole history on every call).
    pub fn save_since(
        &mut self,
        heads: &mut Vec<automerge::ChangeHash>,
        saved: &mut std::collections::HashSet<automerge::ChangeHash>,
    ) -> Option<Vec<u8>> {
        self.commit();
        let now = self.doc.get_heads();
        if &now == heads {
            return None;
        }
        // Depth first, dependencies before the changes that need them.
        let mut bytes = Vec::new();
        let mut stack: Vec<(automerge::ChangeHash, bool)> =
            now.iter().map(|h| (*h, false)).collect();
        while let Some((hash, deps_done)) = stack.pop() {
            if saved.contains(&hash) {
                continue;
            }
            let Some(change) = self.doc.get_change_by_hash(&hash) else {
                continue;
            };
            if deps_done {
                bytes.extend_from_slice(change.raw_bytes());
                saved.insert(hash);
            } else {
                let deps: Vec<_> = change.deps().to_vec();
                stack.push((hash, true));
                stack.extend(
                    deps.into_iter()
                        .filter(|d| !saved.contains(d))
                        .map(|d| (d, false)),
                );
            }
        }
        *heads = now;
        Some(bytes)
    }

    /// Every change the document holds, by hash (what is stored after a full
    /// save or a load). Costs the history: for loads and compactions only.
    pub fn change_hashes(&mut self) -> std::collections::HashSet<automerge::ChangeHash> {
        self.commit();
        self.doc.get_changes(&[]).iter().map(|c| c.hash()).collect()
    }

    /// The document's current heads.
    pub fn heads(&mut self) -> Vec<automerge::ChangeHash> {
        self.doc.get_heads()
    }

    fn from_automerge(doc: AutoCommit) -> Result<Self, DocumentError> {
        let language = match doc.get(ROOT, "language")? {
            Some((Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Str(s) => s.to_string(),
                _ => return Err(DocumentError::Structure("language is not a string".into())),
            },
            _ => return Err(DocumentError::Structure("no language".into())),
        };
        let files_obj = match doc.get(ROOT, "files")? {
            Some((Value::Object(ObjType::Map), id)) => id,
            _ => return Err(DocumentError::Structure("no files map".into())),
        };
        let mut files = BTreeMap::new();
        let mut by_obj = HashMap::new();
        for path in doc.keys(&files_obj) {
            if let Some((Value::Object(ObjType::Text), obj)) = doc.get(&files_obj, &path)? {
                let text = doc.text(&obj)?;
                by_obj.insert(obj.clone(), path.clone());
                files.insert(
                    path,
                    FileState {
                        obj,
                        text: Rope::from_str(&text),
                    },
                );
            }
        }
        let mut this = Self::fresh(doc, files_obj, language);
        this.files = files;
        this.by_obj = by_obj;
        this.checkpoints[0].1 = this.texts();
        this.runs = this.read_runs();
        Ok(this)
    }

    /// A document over `doc` with no files known yet and an empty history.
    fn fresh(doc: AutoCommit, files_obj: ObjId, language: String) -> Self {
        Self {
            doc,
            files_obj,
            files: BTreeMap::new(),
            by_obj: HashMap::new(),
            language,
            history: Vec::new(),
            checkpoints: vec![(0, BTreeMap::new())],
            oids: HashMap::new(),
            uncommitted: 0,
            uncommitted_author: None,
            runs: Vec::new(),
            max_len: 4 * 1024 * 1024,
            snapshot: Vec::new(),
            snapshot_heads: Vec::new(),
            snapshot_full_len: 0,
        }
    }

    /// Sets the largest total text size, in UTF-16 units (default 4 Mi).
    pub fn set_max_len(&mut self, max: u64) {
        self.max_len = max;
    }

    // ---- reads ---------------------------------------------------------------

    /// The current revision.
    pub fn rev(&self) -> Revision {
        self.history.len() as Revision
    }

    /// The language.
    pub fn language(&self) -> &str {
        &self.language
    }

    /// The text of a file, `None` if there is no such file.
    pub fn text(&self, path: &str) -> Option<String> {
        self.files.get(path).map(|f| f.text.to_string())
    }

    /// A file's length in UTF-16 units.
    pub fn len_utf16(&self, path: &str) -> Option<u32> {
        self.files.get(path).map(|f| f.text.len_utf16_cu() as u32)
    }

    /// The paths of all files, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// Every file's text.
    pub fn files(&self) -> BTreeMap<String, String> {
        self.files
            .iter()
            .map(|(p, f)| (p.clone(), f.text.to_string()))
            .collect()
    }

    /// The snapshot a thin client starts from.
    pub fn snapshot(&self, with_files: bool) -> DocumentSnapshot {
        DocumentSnapshot {
            rev: self.rev(),
            language: self.language.clone(),
            files: with_files.then(|| self.files()),
        }
    }

    /// Shared run outputs, oldest first.
    pub fn runs(&self) -> &[RunOutput] {
        &self.runs
    }

    /// Up to `limit` versions after `after`, oldest first: the history to
    /// replay a session's edits step by step.
    pub fn versions(&self, after: Revision, limit: usize) -> (&[Version], bool) {
        let start = (after as usize).min(self.history.len());
        let end = start.saturating_add(limit).min(self.history.len());
        (&self.history[start..end], end < self.history.len())
    }

    /// The text of `path` as it was at revision `rev` (`None` if the file did
    /// not exist then).
    ///
    /// # Errors
    /// [`DocumentError::UnknownRevision`] for a revision in the future.
    pub fn text_at(&self, path: &str, rev: Revision) -> Result<Option<String>, DocumentError> {
        if rev > self.rev() {
            return Err(DocumentError::UnknownRevision {
                rev,
                current: self.rev(),
            });
        }
        let i = self.checkpoints.partition_point(|(r, _)| *r <= rev) - 1;
        let (from, texts) = &self.checkpoints[i];
        let mut text = texts.get(path).cloned();
        for v in &self.history[*from as usize..rev as usize] {
            if v.file != path {
                continue;
            }
            match &v.change {
                Change::Edit { op } => {
                    if let Some(t) = text.as_mut() {
                        apply_to_rope(t, op);
                    }
                }
                Change::Create { text: t } => text = Some(Rope::from_str(t)),
                Change::Remove => text = None,
            }
        }
        Ok(text.map(|t| t.to_string()))
    }

    /// Whether `pos` is a valid caret position in `path` (within the text and
    /// not inside a surrogate pair).
    pub fn is_boundary(&self, path: &str, pos: u32) -> bool {
        self.files
            .get(path)
            .is_some_and(|f| utf16_boundary(&f.text, pos))
    }

    /// The 1-based line of a UTF-16 position in `path`.
    pub fn line_of(&self, path: &str, pos: u32) -> Option<u32> {
        let f = self.files.get(path)?;
        let pos = (pos as usize).min(f.text.len_utf16_cu());
        Some(f.text.char_to_line(f.text.utf16_cu_to_char(pos)) as u32 + 1)
    }

    /// The UTF-16 position where 1-based `line` of `path` starts.
    pub fn line_start(&self, path: &str, line: u32) -> Option<u32> {
        let f = self.files.get(path)?;
        let index = (line as usize).checked_sub(1)?;
        if index >= f.text.len_lines() {
            return None;
        }
        Some(f.text.char_to_utf16_cu(f.text.line_to_char(index)) as u32)
    }

    // ---- thin clients --------------------------------------------------------

    /// Applies a thin client's operation typed against revision `base`:
    /// rebases it over every later change to the same file (the history wins
    /// ties), checks it against the text, applies it, and records it as the
    /// next version.
    ///
    /// # Errors
    /// [`DocumentError::UnknownRevision`], [`DocumentError::UnknownFile`],
    /// [`DocumentError::Operation`] (out of range, splits a surrogate pair),
    /// [`DocumentError::TooLarge`]. Nothing changes on error.
    pub fn apply_operation(
        &mut self,
        author: ParticipantId,
        base: Revision,
        path: &str,
        op: TextOperation,
        oid: Option<String>,
        now: Timestamp,
    ) -> Result<Applied, DocumentError> {
        self.apply_operation_with(author, base, path, op, oid, Ties::History, now)
    }

    /// [`Document::apply_operation`] with ties against concurrent inserts
    /// broken by `ties` ([`Ties::Author`]: by author, see
    /// [`crate::ot::inserts_first`]).
    ///
    /// # Errors
    /// As [`Document::apply_operation`].
    #[allow(clippy::too_many_arguments)] // the operation and how to place it
    pub fn apply_operation_with(
        &mut self,
        author: ParticipantId,
        base: Revision,
        path: &str,
        op: TextOperation,
        oid: Option<String>,
        ties: Ties,
        now: Timestamp,
    ) -> Result<Applied, DocumentError> {
        if let Some(rev) = oid
            .as_ref()
            .and_then(|o| self.oids.get(&(author, o.clone())))
        {
            return Ok(Applied::Duplicate(*rev));
        }
        let current = self.rev();
        if base > current {
            return Err(DocumentError::UnknownRevision { rev: base, current });
        }
        let mut op = op;
        for v in &self.history[base as usize..] {
            if v.file != path {
                continue;
            }
            match &v.change {
                Change::Edit { op: applied } => {
                    op = match ties {
                        Ties::History => TextOperation::transform(applied, &op).1,
                        Ties::Author => {
                            TextOperation::transform_by_author(applied, v.author, &op, Some(author))
                                .1
                        }
                    };
                }
                // The file was removed or replaced since: the edit has nothing to land on.
                Change::Remove | Change::Create { .. } => {
                    return Err(DocumentError::UnknownFile(path.to_owned()));
                }
            }
        }
        let file = self
            .files
            .get(path)
            .ok_or_else(|| DocumentError::UnknownFile(path.to_owned()))?;
        op.check_len(file.text.len_utf16_cu() as u32)?;
        if let Some(at) = op
            .touched_positions()
            .into_iter()
            .find(|p| !utf16_boundary(&file.text, *p))
        {
            return Err(OtError::SplitsSurrogatePair { at }.into());
        }
        let total = self.total_len().saturating_add_signed(op.len_delta());
        if op.len_delta() > 0 && total > self.max_len {
            return Err(DocumentError::TooLarge {
                len: total,
                max: self.max_len,
            });
        }
        if op.is_noop() {
            // Nothing to apply; the client still gets a revision to move on with.
            return Ok(Applied::Duplicate(current));
        }
        let obj = file.obj.clone();
        self.before_local_change(author);
        splice_automerge(&mut self.doc, &obj, &op)?;
        if let Some(f) = self.files.get_mut(path) {
            apply_to_rope(&mut f.text, &op);
        }
        let version = Version {
            rev: current + 1,
            file: path.to_owned(),
            change: Change::Edit { op },
            author: Some(author),
            at: now,
            oid: oid.clone(),
        };
        if let Some(oid) = oid {
            self.oids.insert((author, oid), version.rev);
        }
        self.push(version.clone());
        Ok(Applied::New(version))
    }

    /// Creates an empty or pre-filled file.
    ///
    /// # Errors
    /// [`DocumentError::BadPath`], [`DocumentError::FileExists`], [`DocumentError::TooManyFiles`].
    pub fn create_file(
        &mut self,
        author: ParticipantId,
        path: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<Version, DocumentError> {
        check_path(path)?;
        if self.files.contains_key(path) {
            return Err(DocumentError::FileExists(path.to_owned()));
        }
        if self.files.len() >= MAX_FILES {
            return Err(DocumentError::TooManyFiles);
        }
        let total = self.total_len() + utf16_len(text);
        if total > self.max_len {
            return Err(DocumentError::TooLarge {
                len: total,
                max: self.max_len,
            });
        }
        self.before_local_change(author);
        self.put_file(path, text)?;
        let version = Version {
            rev: self.rev() + 1,
            file: path.to_owned(),
            change: Change::Create {
                text: text.to_owned(),
            },
            author: Some(author),
            at: now,
            oid: None,
        };
        self.push(version.clone());
        Ok(version)
    }

    /// Removes a file.
    ///
    /// # Errors
    /// [`DocumentError::UnknownFile`].
    pub fn remove_file(
        &mut self,
        author: ParticipantId,
        path: &str,
        now: Timestamp,
    ) -> Result<Version, DocumentError> {
        let file = self
            .files
            .get(path)
            .ok_or_else(|| DocumentError::UnknownFile(path.to_owned()))?;
        let obj = file.obj.clone();
        self.before_local_change(author);
        self.doc.delete(&self.files_obj, path)?;
        self.files.remove(path);
        self.by_obj.remove(&obj);
        let version = Version {
            rev: self.rev() + 1,
            file: path.to_owned(),
            change: Change::Remove,
            author: Some(author),
            at: now,
            oid: None,
        };
        self.push(version.clone());
        Ok(version)
    }

    /// Sets the language.
    ///
    /// # Errors
    /// Only if automerge refuses the write.
    pub fn set_language(&mut self, language: &str) -> Result<(), DocumentError> {
        self.doc.put(ROOT, "language", language)?;
        self.language = language.to_owned();
        self.uncommitted += 1;
        Ok(())
    }

    /// Records a run's output for everyone; the oldest is dropped past [`MAX_RUNS`].
    ///
    /// # Errors
    /// [`DocumentError::RunOutputTooLarge`].
    pub fn add_run(&mut self, run: RunOutput) -> Result<(), DocumentError> {
        if run.stdout.len() > MAX_RUN_OUTPUT_BYTES || run.stderr.len() > MAX_RUN_OUTPUT_BYTES {
            return Err(DocumentError::RunOutputTooLarge);
        }
        self.before_local_change(run.by);
        let runs = self.runs_obj()?;
        let len = self.doc.length(&runs);
        let entry = self.doc.insert_object(&runs, len, ObjType::Map)?;
        self.doc.put(&entry, "by", i64::from(run.by.0))?;
        self.doc.put(&entry, "at", run.at.as_millis() as i64)?;
        self.doc.put(&entry, "stdout", run.stdout.as_str())?;
        self.doc.put(&entry, "stderr", run.stderr.as_str())?;
        if let Some(code) = run.exit_code {
            self.doc.put(&entry, "exit_code", i64::from(code))?;
        }
        if len + 1 > MAX_RUNS {
            self.doc.delete(&runs, 0)?;
        }
        self.runs.push(run);
        if self.runs.len() > MAX_RUNS {
            self.runs.remove(0);
        }
        Ok(())
    }

    // ---- replicas ------------------------------------------------------------

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
        let message = crate::sync::decode(message).map_err(DocumentError::BadSyncMessage)?;
        self.commit();
        let patches = crate::sync::receive(&mut self.doc, &mut state.0, message, true)?;
        Ok(self.absorb(patches, author, now))
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
        self.doc
            .sync()
            .generate_sync_message(&mut state.0)
            .map(sync::Message::encode)
    }

    /// Commits what local changes are pending, so that heads, saves and sync
    /// see them.
    pub fn commit(&mut self) {
        if self.uncommitted == 0 {
            return;
        }
        let mut options = CommitOptions::default();
        if let Some(author) = self.uncommitted_author {
            options = options.with_message(format!("participant:{author}"));
        }
        self.doc.commit_with(options);
        self.uncommitted = 0;
        self.uncommitted_author = None;
    }

    /// Whether local changes wait to be committed.
    pub fn has_uncommitted(&self) -> bool {
        self.uncommitted > 0
    }

    /// The document in automerge's compact binary format.
    pub fn save(&mut self) -> Vec<u8> {
        self.commit();
        self.doc.save()
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

    /// Writes a new text object for `path` and mirrors it (checks are the caller's).
    fn put_file(&mut self, path: &str, text: &str) -> Result<(), DocumentError> {
        let obj = self.doc.put_object(&self.files_obj, path, ObjType::Text)?;
        self.doc.splice_text(&obj, 0, 0, text)?;
        self.by_obj.insert(obj.clone(), path.to_owned());
        self.files.insert(
            path.to_owned(),
            FileState {
                obj,
                text: Rope::from_str(text),
            },
        );
        Ok(())
    }

    fn before_local_change(&mut self, author: ParticipantId) {
        if self.uncommitted_author.is_some_and(|a| a != author) || self.uncommitted >= COMMIT_EVERY
        {
            self.commit();
        }
        self.uncommitted_author = Some(author);
        self.uncommitted += 1;
    }

    fn push(&mut self, version: Version) {
        self.history.push(version);
        let rev = self.rev();
        if rev % CHECKPOINT_EVERY == 0 {
            self.checkpoints.push((rev, self.texts()));
        }
    }

    fn texts(&self) -> BTreeMap<String, Rope> {
        self.files
            .iter()
            .map(|(p, f)| (p.clone(), f.text.clone()))
            .collect()
    }

    fn total_len(&self) -> u64 {
        self.files
            .values()
            .map(|f| f.text.len_utf16_cu() as u64)
            .sum()
    }

    fn runs_obj(&mut self) -> Result<ObjId, DocumentError> {
        match self.doc.get(ROOT, "runs")? {
            Some((Value::Object(ObjType::List), id)) => Ok(id),
            _ => Ok(self.doc.put_object(ROOT, "runs", ObjType::List)?),
        }
    }

    fn read_runs(&self) -> Vec<RunOutput> {
        let Ok(Some((Value::Object(ObjType::List), runs))) = self.doc.get(ROOT, "runs") else {
            return Vec::new();
        };
        (0..self.doc.length(&runs))
            .filter_map(|i| self.read_run(&runs, i))
            .collect()
    }

    fn read_run(&self, runs: &ObjId, index: usize) -> Option<RunOutput> {
        let Ok(Some((Value::Object(ObjType::Map), entry))) = self.doc.get(runs, index) else {
            return None;
        };
        let int = |key: &str| match self.doc.get(&entry, key) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Int(i) => Some(*i),
                ScalarValue::Uint(u) => i64::try_from(*u).ok(),
                _ => None,
            },
            _ => None,
        };
        let string = |key: &str| match self.doc.get(&entry, key) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            Ok(Some((Value::Object(ObjType::Text), id))) => self.doc.text(&id).ok(),
            _ => None,
        };
        Some(RunOutput {
            by: ParticipantId(u32::try_from(int("by")?).ok()?),
            at: Timestamp::from_millis(u64::try_from(int("at")?).ok()?),
            stdout: string("stdout").unwrap_or_default(),
            stderr: string("stderr").unwrap_or_default(),
            exit_code: int("exit_code").and_then(|c| i32::try_from(c).ok()),
        })
    }

    /// Turns patches from remote changes into versions, keeping the mirrors in step.
    fn absorb(
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
            this.push(version.clone());
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
                        if let Some(old) = self.files.get(&key) {
                            self.by_obj.remove(&old.obj);
                        }
                        self.by_obj.insert(obj.clone(), key.clone());
                        self.files.insert(
                            key.clone(),
                            FileState {
                                obj,
                                text: Rope::new(),
                            },
                        );
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
                        if let Some(old) = self.files.remove(&key) {
                            self.by_obj.remove(&old.obj);
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

fn is_runs_patch(patch: &Patch) -> bool {
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

fn check_path(path: &str) -> Result<(), DocumentError> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES || path.chars().any(char::is_control) {
        return Err(DocumentError::BadPath);
    }
    Ok(())
}

/// Whether a UTF-16 position is within the rope and not inside a surrogate pair.
fn utf16_boundary(text: &Rope, pos: u32) -> bool {
    let pos = pos as usize;
    if pos > text.len_utf16_cu() {
        return false;
    }
    text.char_to_utf16_cu(text.utf16_cu_to_char(pos)) == pos
}

/// Applies a checked operation to a rope.
fn apply_to_rope(text: &mut Rope, op: &TextOperation) {
    use crate::ot::Component;
    let mut pos = 0usize; // UTF-16 units
    for c in op.components() {
        match c {
            Component::Retain(n) => pos += *n as usize,
            Component::Insert(s) => {
                let at = text.utf16_cu_to_char(pos.min(text.len_utf16_cu()));
                text.insert(at, s);
                pos += s.encode_utf16().count();
            }
            Component::Delete(n) => {
                let start = text.utf16_cu_to_char(pos.min(text.len_utf16_cu()));
                let end = text.utf16_cu_to_char((pos + *n as usize).min(text.len_utf16_cu()));
                text.remove(start..end);
            }
        }
    }
}

/// Applies a checked operation to an automerge text object (UTF-16 encoding).
fn splice_automerge(
    doc: &mut AutoCommit,
    obj: &ObjId,
    op: &TextOperation,
) -> Result<(), DocumentError> {
    use crate::ot::Component;
    let mut pos = 0usize;
    let mut components = op.components().iter().peekable();
    while let Some(c) = components.next() {
        match c {
            Component::Retain(n) => pos += *n as usize,
            Component::Insert(s) => {
                // An insert followed by a delete at the same place is one splice.
                let del = match components.peek() {
                    Some(Component::Delete(n)) => {
                        let n = *n as isize;
                        components.next();
                        n
                    }
                    _ => 0,
                };
                doc.splice_text(obj, pos, del, s)?;
                pos += s.encode_utf16().count();
            }
            Component::Delete(n) => doc.splice_text(obj, pos, *n as isize, "")?,
        }
    }
    Ok(())
}
