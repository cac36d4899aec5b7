//! The document as it travels: revisions, versions, snapshots, run output.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::ParticipantId;
use crate::ot::TextOperation;
use crate::time::Timestamp;

/// The file a session's initial code goes into.
pub const DEFAULT_FILE: &str = "main";

/// Most files in one document.
pub const MAX_FILES: usize = 64;

/// Most run outputs kept in the document.
pub const MAX_RUNS: usize = 100;

/// Longest run output (stdout or stderr), in bytes.
pub const MAX_RUN_OUTPUT_BYTES: usize = 64 * 1024;

/// A position in the document's history: the number of text changes applied.
pub type Revision = u64;

/// What one revision changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Change {
    /// A file's text was edited.
    Edit {
        /// The edit.
        op: TextOperation,
    },
    /// A file was created with this text.
    Create {
        /// Its text.
        text: String,
    },
    /// A file was removed.
    Remove,
}

/// One revision of the document's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Its revision number (the first change is 1).
    pub rev: Revision,
    /// The file changed.
    pub file: String,
    /// What changed.
    #[serde(flatten)]
    pub change: Change,
    /// Who made it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<ParticipantId>,
    /// When the server applied it.
    pub at: Timestamp,
    /// The client's id for the operation, for thin-client operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
}

/// The result of a run of the session's code, shared with everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    /// Who ran it.
    pub by: ParticipantId,
    /// When it finished.
    pub at: Timestamp,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status; absent if the program was stopped (a time limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// The document as a thin client starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSnapshot {
    /// The revision the texts are at.
    pub rev: Revision,
    /// The language.
    pub language: String,
    /// Every file's text; absent for replicas, which sync instead, and for
    /// thin clients catching up from a revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<BTreeMap<String, String>>,
}

/// A version that does not apply where [`replay`] met it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("revision {rev} does not apply to {file}: {reason}")]
pub struct ReplayError {
    /// The version's revision.
    pub rev: Revision,
    /// Its file.
    pub file: String,
    /// Why: the file is missing, or the edit does not fit its text.
    pub reason: String,
}

/// The files that `versions`, applied in order, make of `start`: an edit
/// applies its operation to its file, a create makes the file, a remove
/// deletes it. What a tool reading a session's export does to rebuild any
/// revision.
///
/// ```
/// use std::collections::BTreeMap;
/// use collab_wire::document::{replay, Change, Version};
/// use collab_wire::ot::TextOperation;
/// use collab_wire::time::Timestamp;
///
/// let start = BTreeMap::from([("main".to_owned(), "ab".to_owned())]);
/// let mut op = TextOperation::new();
/// op.retain(2).insert("c");
/// let edit = Version {
///     rev: 1,
///     file: "main".into(),
///     change: Change::Edit { op },
///     author: None,
///     at: Timestamp(0),
///     oid: None,
/// };
/// assert_eq!(replay(&start, &[edit]).unwrap()["main"], "abc");
/// ```
///
/// # Errors
/// [`ReplayError`] for an edit of a file that does not exist, or that does
/// not fit the file's text.
pub fn replay(
    start: &BTreeMap<String, String>,
    versions: &[Version],
) -> Result<BTreeMap<String, String>, ReplayError> {
    let mut files = start.clone();
    for v in versions {
        let refused = |reason: String| ReplayError {
            rev: v.rev,
            file: v.file.clone(),
            reason,
        };
        match &v.change {
            Change::Edit { op } => {
                let text = files
                    .get_mut(&v.file)
                    .ok_or_else(|| refused("no such file".into()))?;
                *text = op.apply(text).map_err(|e| refused(e.to_string()))?;
            }
            Change::Create { text } => {
                files.insert(v.file.clone(), text.clone());
            }
            Change::Remove => {
                files.remove(&v.file);
            }
        }
    }
    Ok(files)
}
