//! Records that cannot be read (malformed JSON, wrong types, too large) are skipped, never
//! fatal: whoever lists or acts on records (the launcher's loops, the CLI, the webapp,
//! `/metrics`) leaves the one record out and serves the rest. Anyone with store access can
//! write a record, so one bad znode must not stop a site.
//!
//! Each is reported with one WARNING naming its path, once per path and reason for the life
//! of the process: a long-running reader that meets the same bad record on every pass (or
//! every web request) does not repeat itself.

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::Mutex;

/// How many (path, reason) pairs are remembered; past it the memory starts again (and a
/// record still bad is reported once more).
const REMEMBERED: usize = 10_000;

static REPORTED: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);

/// Logs that the record at `path` is skipped because of `reason`, unless already said.
pub fn skipped(path: &str, reason: &dyn Display) {
    let reason = reason.to_string();
    let first = {
        let mut reported = REPORTED.lock().unwrap_or_else(|e| e.into_inner());
        let reported = reported.get_or_insert_with(HashSet::new);
        if reported.len() >= REMEMBERED {
            reported.clear();
        }
        reported.insert((path.to_string(), reason.clone()))
    };
    if first {
        tracing::warn!(znode = path, reason, "skipping an unreadable record");
    }
}
