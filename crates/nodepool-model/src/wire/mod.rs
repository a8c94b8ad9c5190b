//! The JSON documents stored in ZooKeeper, byte-compatible with Nodepool 11.
//!
//! Each submodule owns one znode document and offers `from_json(&[u8])` and
//! `to_json(&T) -> Vec<u8>` for its domain type:
//!
//! | module | znode | unknown keys on read-modify-write |
//! |---|---|---|
//! | [`node`] | `/nodepool/nodes/<id>` | dropped, as Nodepool's `Node.toDict` does (Zuul's extra `id` disappears) |
//! | [`request`] | `/nodepool/requests/<id>` | dropped, as `NodeRequest.toDict` does (Zuul keeps its own data in `requestor_data`) |
//! | [`image`] | builds and uploads under `/nodepool/images` | dropped, as `ImageBuild`/`ImageUpload.toDict` do |
//! | [`component`] | `/nodepool/components/<kind>/<name>` | **kept**: the registry stores the whole object (`content.update`) |
//!
//! **Writing.** Each document has its own `Serialize` struct whose fields are
//! in Nodepool's key order, printed by [`crate::python_json`] so the bytes
//! equal `json.dumps(obj.toDict())`. Golden files in `tests/golden` were made
//! by Nodepool's own classes.
//!
//! **Reading** follows Python's `dict.get(key, default)`: a missing key takes
//! the reader default of the spec tables, an explicit `null` stays null (where
//! the domain type can hold null), unknown keys are ignored, and the last of
//! duplicate keys wins. A present key of the wrong JSON type is a
//! [`WireError::WrongType`] naming the key; Python would carry the odd value
//! along untyped, we would rather say so than guess.
//!
//! Empty data (`b""`) is not a document: ZooKeeper parents and znodes that a
//! lock re-created are empty, and Nodepool and Zuul treat them as "no object".
//! Every reader returns [`WireError::Empty`] for it so the caller can branch.

pub mod component;
pub mod image;
pub mod node;
pub mod request;

mod fields;

pub use fields::MAX_DOCUMENT_BYTES;

use std::fmt;

use thiserror::Error;

/// Which znode document a [`WireError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Node,
    NodeRequest,
    ImageBuild,
    ImageUpload,
    Component,
}

impl fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DocumentKind::Node => "node",
            DocumentKind::NodeRequest => "node request",
            DocumentKind::ImageBuild => "image build",
            DocumentKind::ImageUpload => "image upload",
            DocumentKind::Component => "component",
        })
    }
}

/// Why znode data could not be read as a document.
#[derive(Debug, Error)]
pub enum WireError {
    /// The znode has no data: "no object here", not corruption.
    #[error("{document} znode has no data")]
    Empty { document: DocumentKind },
    /// Larger than any record may be (`MAX_DOCUMENT_BYTES`, 1 MiB: ZooKeeper's own limit).
    #[error("{document} data is {bytes} bytes, more than a record may hold")]
    TooLarge {
        document: DocumentKind,
        bytes: usize,
    },
    /// Not UTF-8 JSON at all.
    #[error("{document} data is not valid JSON: {source}")]
    InvalidJson {
        document: DocumentKind,
        #[source]
        source: serde_json::Error,
    },
    /// Valid JSON, but not an object.
    #[error("{document} data is a JSON {found}, not an object")]
    NotAnObject {
        document: DocumentKind,
        found: &'static str,
    },
    /// A key without a reader default is absent (`state`, `state_time`).
    #[error("{document} data has no {key:?} key")]
    MissingKey {
        document: DocumentKind,
        key: &'static str,
    },
    /// A key holds a value of a type its field cannot take.
    #[error("{document} key {key:?} must be {expected}, found {found}")]
    WrongType {
        document: DocumentKind,
        key: &'static str,
        expected: &'static str,
        found: String,
    },
}

impl WireError {
    /// True for [`WireError::Empty`]: the znode exists but holds no object.
    pub fn is_empty_data(&self) -> bool {
        matches!(self, WireError::Empty { .. })
    }

    pub fn document(&self) -> DocumentKind {
        match self {
            WireError::Empty { document }
            | WireError::TooLarge { document, .. }
            | WireError::InvalidJson { document, .. }
            | WireError::NotAnObject { document, .. }
            | WireError::MissingKey { document, .. }
            | WireError::WrongType { document, .. } => *document,
        }
    }
}
