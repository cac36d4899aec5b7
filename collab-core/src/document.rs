//! The session document: files (path -> text) and the language, kept in an
//! automerge document so that concurrent edits merge instead of overwriting.
//!
//! This type wraps automerge so that the automerge version can change without
//! touching callers. Text offsets count UTF-16 code units, as browsers do.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc, TextEncoding, ROOT};

/// The file a session's initial code goes into.
pub const DEFAULT_FILE: &str = "main";

/// Longest file path, in bytes.
pub const MAX_PATH_BYTES: usize = crate::presence::MAX_FILE_PATH_BYTES;

/// A document operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// A path is empty or too long. Caller's mistake.
    #[error("file path must be 1 to {MAX_PATH_BYTES} bytes")]
    BadPath,
    /// The document's structure is not what this library writes (a damaged or
    /// foreign document). Fatal for this document.
    #[error("document structure: {0}")]
    Structure(String),
    /// automerge refused the operation.
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// The shared document of one session.
#[derive(Debug, Clone)]
pub struct Document {
    doc: AutoCommit,
}

impl Document {
    /// A document with the given language and files.
    ///
    /// ```
    /// use collab_core::Document;
    /// let doc = Document::new("rust", [("main", "fn main() {}")]).unwrap();
    /// assert_eq!(doc.text("main").unwrap().as_deref(), Some("fn main() {}"));
    /// assert_eq!(doc.language().unwrap(), "rust");
    /// ```
    ///
    /// # Errors
    /// [`DocumentError::BadPath`] for an empty or overlong path.
    pub fn new<'a>(
        language: &str,
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, DocumentError> {
        let mut doc = AutoCommit::new_with_encoding(TextEncoding::Utf16CodeUnit);
        doc.put(ROOT, "language", language)?;
        let dir = doc.put_object(ROOT, "files", ObjType::Map)?;
        for (path, content) in files {
            check_path(path)?;
            let text = doc.put_object(&dir, path, ObjType::Text)?;
            doc.splice_text(&text, 0, 0, content)?;
        }
        doc.commit();
        Ok(Self { doc })
    }

    /// The session's language.
    ///
    /// # Errors
    /// [`DocumentError::Structure`] if the document has no language.
    pub fn language(&self) -> Result<String, DocumentError> {
        match self.doc.get(ROOT, "language")? {
            Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                automerge::ScalarValue::Str(s) => Ok(s.to_string()),
                other => Err(DocumentError::Structure(format!("language is {other:?}"))),
            },
            _ => Err(DocumentError::Structure("no language".into())),
        }
    }

    /// Sets the language.
    ///
    /// # Errors
    /// Only if automerge refuses the write.
    pub fn set_language(&mut self, language: &str) -> Result<(), DocumentError> {
        self.doc.put(ROOT, "language", language)?;
        self.doc.commit();
        Ok(())
    }

    /// The text of a file, `None` if there is no such file.
    ///
    /// # Errors
    /// [`DocumentError::Structure`] if the document's structure is damaged.
    pub fn text(&self, path: &str) -> Result<Option<String>, DocumentError> {
        let dir = self.files_dir()?;
        match self.doc.get(&dir, path)? {
            Some((automerge::Value::Object(ObjType::Text), id)) => Ok(Some(self.doc.text(&id)?)),
            Some(_) => Err(DocumentError::Structure(format!("{path} is not text"))),
            None => Ok(None),
        }
    }

    /// The paths of all files, sorted.
    ///
    /// # Errors
    /// [`DocumentError::Structure`] if the document's structure is damaged.
    pub fn paths(&self) -> Result<Vec<String>, DocumentError> {
        let dir = self.files_dir()?;
        Ok(self.doc.keys(&dir).collect())
    }

    /// The document in automerge's compact binary format.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    fn files_dir(&self) -> Result<automerge::ObjId, DocumentError> {
        match self.doc.get(ROOT, "files")? {
            Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
            _ => Err(DocumentError::Structure("no files map".into())),
        }
    }
}

fn check_path(path: &str) -> Result<(), DocumentError> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return Err(DocumentError::BadPath);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_language_round_trip_through_save() {
        let mut doc =
            Document::new("python", [("main", "print('hé 😀')"), ("util.py", "")]).unwrap();
        doc.set_language("rust").unwrap();
        let bytes = doc.save();
        let loaded = AutoCommit::load(&bytes).unwrap();
        let loaded = Document { doc: loaded };
        assert_eq!(loaded.language().unwrap(), "rust");
        assert_eq!(
            loaded.paths().unwrap(),
            vec!["main".to_string(), "util.py".to_string()]
        );
        assert_eq!(loaded.text("main").unwrap().unwrap(), "print('hé 😀')");
        assert_eq!(loaded.text("missing").unwrap(), None);
    }

    #[test]
    fn bad_paths_are_refused() {
        assert!(matches!(
            Document::new("x", [("", "a")]),
            Err(DocumentError::BadPath)
        ));
    }
}
