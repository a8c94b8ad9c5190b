//! Every daemon loop reports what it is doing, so the CLI and web can show it (STYLE habit
//! 7). Shared by the launcher and the builder; in memory only.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    Starting,
    Busy,
    Idle,
    Stopped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerStatus {
    pub name: String,
    pub state: WorkerState,
    pub passes: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

/// The status board; a std mutex because nothing awaits while holding it.
#[derive(Debug, Default)]
pub struct Workers {
    board: Mutex<BTreeMap<String, WorkerStatus>>,
}

impl Workers {
    fn with(&self, name: &str, f: impl FnOnce(&mut WorkerStatus)) {
        let mut board = self.board.lock().unwrap_or_else(|e| e.into_inner());
        let status = board
            .entry(name.to_string())
            .or_insert_with(|| WorkerStatus {
                name: name.to_string(),
                state: WorkerState::Starting,
                passes: 0,
                errors: 0,
                last_error: None,
            });
        f(status);
    }

    pub fn busy(&self, name: &str) {
        self.with(name, |s| s.state = WorkerState::Busy);
    }

    pub fn idle(&self, name: &str) {
        self.with(name, |s| {
            s.state = WorkerState::Idle;
            s.passes += 1;
        });
    }

    pub fn error(&self, name: &str, error: &dyn std::fmt::Display) {
        self.with(name, |s| {
            s.errors += 1;
            s.last_error = Some(format!("{error:#}"));
        });
    }

    pub fn stopped(&self, name: &str) {
        self.with(name, |s| s.state = WorkerState::Stopped);
    }

    pub fn snapshot(&self) -> Vec<WorkerStatus> {
        self.board
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}
