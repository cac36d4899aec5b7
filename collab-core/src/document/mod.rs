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
//! Every file's text is kept in a rope, and the ropes are what thin clients
//! read and edit: checking an operation against the text (its length,
//! surrogate pairs), applying it and reading the text never touch automerge.
//! automerge takes local changes later, in batches (every [`COMMIT_EVERY`]
//! operations, on the session's commit timer, or when anything needs its
//! heads: a replica, a store write), each file's run of edits composed into
//! one operation first. A keystroke then costs what the rope and the history
//! cost, not what an automerge call costs, which grows with the history
//! (about 4 ms a call at 40k changes on automerge 0.12); and text typed and
//! deleted within one batch never enters automerge's op set.

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
    replay, Change, DocumentSnapshot, ReplayError, Revision, RunOutput, Version, DEFAULT_FILE,
    MAX_FILES, MAX_RUNS, MAX_RUN_OUTPUT_BYTES,
};

mod history;
mod log;
use log::AppliedOids;
mod persist;
mod replica;
mod thin;

pub use log::{decode_versions, encode_versions, DecodeError};
pub use replica::SyncState;
use thin::apply_to_rope;

/// Longest file path, in bytes.
pub const MAX_PATH_BYTES: usize = crate::presence::MAX_FILE_PATH_BYTES;
/// Local operations that wait for automerge at most: past this many, the
/// next one first hands them over and commits them as one change. They
/// wait in the history, which holds them anyway, so waiting costs no
/// memory; a hand-over costs an automerge commit, which grows with the
/// document (milliseconds for a long one on automerge 0.12).
pub const COMMIT_EVERY: usize = 4_096;
/// Operations one automerge change holds at most when collab hands automerge
/// text: past this many, the open change is committed and another starts.
/// automerge 0.12 keeps an open transaction's operations at a few hundred
/// bytes each until it commits. Measured on 600k characters: typed in
/// splices of a thousand into one transaction, a 141 MB peak (5 MB with a
/// commit after each, in half the time); in one splice, 196 MB; deleted in
/// one splice, 300 MB and 2.8 s.
const MAX_TRANSACTION_OPS: usize = 8_192;
/// Characters one automerge splice inserts at most (UTF-16 units for a
/// delete), so that a long insert or delete is cut into changes of about
/// [`MAX_TRANSACTION_OPS`].
const INSERT_PIECE: usize = 4_096;
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
    /// The request reads versions at or before `floor`, which a session
    /// loaded from a store reads from it on demand (see
    /// [`Document::history_floor`]), and they are not read yet.
    #[error("the history up to revision {floor} is not loaded from the store")]
    HistoryNotLoaded {
        /// The last revision not held in memory.
        floor: Revision,
    },
}

/// automerge's refusal as a document error. Not a `From` impl: that would
/// put automerge's type in this crate's public API.
pub(crate) fn refused(e: automerge::AutomergeError) -> DocumentError {
    DocumentError::Automerge(e.to_string())
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
    text: Rope,
}

/// The shared document of one session.
#[derive(Debug)]
pub struct Document {
    doc: AutoCommit,
    files_obj: ObjId,
    files: BTreeMap<String, FileState>,
    /// automerge's files: each path's text object. Behind `files` by the
    /// versions after `handed_over`.
    objs: BTreeMap<String, ObjId>,
    by_obj: HashMap<ObjId, String>,
    /// automerge has every version up to this revision; the later ones are
    /// local changes it has not taken yet (a replica's changes are taken
    /// only when there are none, so these are always the history's tail).
    handed_over: Revision,
    language: String,
    /// The versions, encoded (see [`log`]): all of them, or beside a store
    /// those after [`Document::history_floor`].
    history: log::VersionLog,
    /// Every file's text at revision 0 and at revisions that are multiples
    /// of CHECKPOINT_EVERY, except those before `restored_at`.
    checkpoints: Vec<(Revision, BTreeMap<String, Rope>)>,
    /// A restored document whose history was not replayed: the revision the
    /// stored document held and its texts there. The checkpoints before it
    /// are built, and the history checked against these texts, on the first
    /// read that needs them.
    restored_at: Option<(Revision, BTreeMap<String, Rope>)>,
    /// Thin-client operation ids already applied: see [`AppliedOids`].
    oids: AppliedOids,
    /// The revision at which the versions before the floor were last read
    /// back from the store for a reader: they stay a while (see
    /// [`Document::forget_stored_history`]).
    older_read: Option<Revision>,
    /// Writes made to automerge directly (the language, runs) that are not
    /// committed yet.
    uncommitted: usize,
    /// The authors of the pending and uncommitted changes, in order, once each.
    uncommitted_authors: Vec<ParticipantId>,
    runs: Vec<RunOutput>,
    max_len: u64,
    /// What late-joining replicas load: see [`Document::replica_start`].
    snapshot: Vec<u8>,
    snapshot_heads: Vec<automerge::ChangeHash>,
    snapshot_full_len: usize,
    /// automerge holds what the versions cannot rebuild (a replica's
    /// changes, the language, a run), or changes that left this process (a
    /// sync message, a replica's start): the next store write must carry the
    /// document's changes. Otherwise they may wait, since replaying the
    /// versions rebuilds them.
    must_save: bool,
    /// No automerge change of this document has left the process or come
    /// into it (no replica ever joined): its automerge history is nobody's
    /// but ours, and may be started afresh from the texts, which is how a
    /// long-edited document's op set comes back to the size of its text
    /// (see [`Document::restart_private`]).
    private: bool,
    /// UTF-16 units inserted into or deleted from automerge's texts since
    /// it was started or loaded: a measure of what its op set holds beyond
    /// the texts (see [`Document::wants_restart`]).
    churn: u64,
    /// automerge was started afresh outside a store's compaction (see
    /// [`Document::commit`]): the next store write must replace the stored
    /// document.
    restarted: bool,
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
        // automerge is built once the files are known, the way a private
        // document is started afresh (`rebuild_from_texts`); until then it
        // is an empty document and `ROOT` stands in for the files map.
        let mut this = Self::fresh(automerge_utf16(), ROOT, language.to_owned());
        this.private = true;
        for (path, text) in files {
            check_path(path)?;
            if this.files.len() >= MAX_FILES {
                return Err(DocumentError::TooManyFiles);
            }
            this.put_file(path, text);
        }
        this.rebuild_from_texts()?;
        this.checkpoints[0].1 = this.texts();
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
        )
        .map_err(refused)?;
        let mut this = Self::from_automerge(doc)?;
        // The bytes just loaded are the snapshot for replicas, for free.
        this.snapshot = bytes.to_vec();
        this.snapshot_full_len = bytes.len();
        this.snapshot_heads = this.doc.get_heads();
        Ok(this)
    }

    fn from_automerge(doc: AutoCommit) -> Result<Self, DocumentError> {
        let language = match doc.get(ROOT, "language").map_err(refused)? {
            Some((Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Str(s) => s.to_string(),
                _ => return Err(DocumentError::Structure("language is not a string".into())),
            },
            _ => return Err(DocumentError::Structure("no language".into())),
        };
        let files_obj = match doc.get(ROOT, "files").map_err(refused)? {
            Some((Value::Object(ObjType::Map), id)) => id,
            _ => return Err(DocumentError::Structure("no files map".into())),
        };
        let mut files = BTreeMap::new();
        let mut objs = BTreeMap::new();
        let mut by_obj = HashMap::new();
        for path in doc.keys(&files_obj) {
            if let Some((Value::Object(ObjType::Text), obj)) =
                doc.get(&files_obj, &path).map_err(refused)?
            {
                let text = doc.text(&obj).map_err(refused)?;
                by_obj.insert(obj.clone(), path.clone());
                objs.insert(path.clone(), obj);
                files.insert(
                    path,
                    FileState {
                        text: Rope::from_str(&text),
                    },
                );
            }
        }
        let mut this = Self::fresh(doc, files_obj, language);
        this.files = files;
        this.objs = objs;
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
            objs: BTreeMap::new(),
            by_obj: HashMap::new(),
            handed_over: 0,
            language,
            history: log::VersionLog::default(),
            checkpoints: vec![(0, BTreeMap::new())],
            restored_at: None,
            older_read: None,
            oids: AppliedOids::default(),
            uncommitted: 0,
            uncommitted_authors: Vec::new(),
            runs: Vec::new(),
            max_len: 4 * 1024 * 1024,
            snapshot: Vec::new(),
            snapshot_heads: Vec::new(),
            snapshot_full_len: 0,
            must_save: false,
            private: false,
            churn: 0,
            restarted: false,
        }
    }

    /// Sets the largest total text size, in UTF-16 units (default 4 Mi; a
    /// session sets [`SessionConfig::max_document_units`](crate::SessionConfig::max_document_units)).
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

    /// Creates `path` with `text` in the ropes (checks are the caller's;
    /// automerge takes it from the version that records it).
    fn put_file(&mut self, path: &str, text: &str) {
        self.files.insert(
            path.to_owned(),
            FileState {
                text: Rope::from_str(text),
            },
        );
    }

    fn total_len(&self) -> u64 {
        self.files
            .values()
            .map(|f| f.text.len_utf16_cu() as u64)
            .sum()
    }

    fn runs_obj(&mut self) -> Result<ObjId, DocumentError> {
        match self.doc.get(ROOT, "runs").map_err(refused)? {
            Some((Value::Object(ObjType::List), id)) => Ok(id),
            _ => Ok(self
                .doc
                .put_object(ROOT, "runs", ObjType::List)
                .map_err(refused)?),
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
