//! Scenario tests fail on unexpected ERROR logs (STYLE habit 12): a tracing layer installed
//! once per test binary keeps every ERROR event, and a harness asserts at shutdown there were
//! none. Tests of one binary share the process, so an ERROR from one test fails whichever
//! harness shuts down next; scenarios should never log one.

use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Collect;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl<S: Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() == Level::ERROR {
            let mut message = Message(event.metadata().target().to_string());
            event.record(&mut message);
            ERRORS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(message.0);
        }
    }
}

/// Installs the collector (and a test-friendly log to stderr filtered by `RUST_LOG`).
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::registry()
            .with(Collect)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(EnvFilter::from_default_env()),
            )
            .try_init();
    });
}

/// Panics if any ERROR was logged so far.
pub fn assert_none() {
    let errors = ERRORS.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        errors.is_empty(),
        "unexpected ERROR logs:\n{}",
        errors.join("\n")
    );
}
