//! The `fake-state` file: the servers and images of one fake cloud as JSON.
//!
//! It exists so crash tests can kill a launcher with SIGKILL and start it again against the
//! same cloud. It holds only what a real cloud would still have after the launcher died:
//! servers and images. Fault counters and pending status changes are process state; a server
//! that was still building comes back active, one that was being deleted comes back gone.
//! The file is replaced atomically and durably (`nodepool_driver::durable`) so a kill or a
//! power cut never leaves half a document.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cloud::{FakeImage, FakeServer};

/// The document in the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateDocument {
    pub servers: Vec<FakeServer>,
    pub images: Vec<FakeImage>,
}

/// Reads the file; `Ok(None)` when it does not exist yet.
pub(crate) fn load(path: &Path) -> Result<Option<StateDocument>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

/// Replaces the file with `document`.
pub(crate) fn save(path: &Path, document: &StateDocument) -> Result<(), String> {
    let text = serde_json::to_string_pretty(document)
        .map_err(|e| format!("cannot encode the fake cloud state: {e}"))?;
    nodepool_driver::durable::replace_file(path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_an_empty_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(&dir.path().join("absent.json")), Ok(None));
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cloud.json");
        let document = StateDocument {
            servers: Vec::new(),
            images: vec![FakeImage {
                id: "i-1".into(),
                name: "image".into(),
                status: "READY".into(),
                metadata: [("k".to_string(), "v".to_string())].into(),
            }],
        };
        save(&path, &document).expect("save");
        assert_eq!(load(&path), Ok(Some(document)));
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            1,
            "no temporary file is left"
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cloud.json");
        std::fs::write(&path, "{not json").expect("write");
        assert!(load(&path).is_err());
    }
}
