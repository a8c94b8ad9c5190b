//! Log output: lines shaped like Nodepool's `%(asctime)s %(levelname)s %(name)s: %(message)s`
//! on stderr, so people and log scrapers used to Nodepool read ours the same way.
//!
//! Level: INFO, or DEBUG with `--debug` / `-d`; `RUST_LOG`, when set, overrides both.
//! Python logging configuration files (`-l`) cannot be interpreted yet; we check that the
//! file exists, as Nodepool does before reading it, and say that defaults are used.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber. Called once, before any command runs.
pub fn init(debug: bool) {
    let default_level = if debug { "debug" } else { "info" };
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty());
    let (filter, rejected) = match rust_log.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => (filter, None),
        Some(Err(error)) => (EnvFilter::new(default_level), Some(error)),
        None => (EnvFilter::new(default_level), None),
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Plain text even on a terminal, as Nodepool writes; no escape codes in log files.
        .with_ansi(false)
        .event_format(NodepoolFormat)
        .try_init();
    if let Err(error) = installed {
        // Only possible if something installed a subscriber before us; keep theirs.
        eprintln!("nodepool: logging was already set up: {error}");
    }
    if let Some(error) = rejected {
        tracing::warn!(
            "ignoring RUST_LOG, it is not a valid filter ({error}); logging at {default_level}"
        );
    }
}

/// Handles `-l LOGCONFIG`: a missing file is an error (Nodepool refuses to start too); an
/// existing one is reported as not interpreted.
pub fn check_log_config(path: Option<&Path>) -> Result<(), ExitCode> {
    let Some(path) = path else {
        return Ok(());
    };
    if !path.exists() {
        // Nodepool's message, with the absolute path as Nodepool shows it.
        let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        tracing::error!("Unable to read logging config file at {}", shown.display());
        return Err(ExitCode::FAILURE);
    }
    tracing::warn!(
        "logging config file {} is not interpreted yet (Python logging configuration); using the default log format on stderr",
        path.display()
    );
    Ok(())
}

/// `<date> <time>,<millis> <LEVEL> <target>: [<span>{fields}: ]<message> [key=value ...]`
#[derive(Debug, Clone, Copy)]
struct NodepoolFormat;

impl<S, N> FormatEvent<S, N> for NodepoolFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        write!(
            writer,
            "{} {} {}: ",
            python_asctime(SystemTime::now()),
            python_level_name(*metadata.level()),
            metadata.target()
        )?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                write!(writer, ": ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Python's level names (`WARNING`, not `WARN`); Python has no TRACE, we keep ours.
fn python_level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Python's `asctime`: `2024-05-01 12:34:56,789`. Python prints local time; we print UTC,
/// which is what servers and containers run on, to avoid a time-zone database dependency.
fn python_asctime(now: SystemTime) -> String {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let second_of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02},{millis:03}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Gregorian (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, restricted to dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis)
    }

    #[test]
    fn asctime_of_the_epoch() {
        assert_eq!(python_asctime(UNIX_EPOCH), "1970-01-01 00:00:00,000");
    }

    #[test]
    fn asctime_matches_python() {
        // python3 -c 'import datetime; print(datetime.datetime.utcfromtimestamp(1700000000.123))'
        assert_eq!(
            python_asctime(at(1_700_000_000, 123)),
            "2023-11-14 22:13:20,123"
        );
        // A leap day and the last millisecond of a day.
        assert_eq!(
            python_asctime(at(1_709_251_199, 999)),
            "2024-02-29 23:59:59,999"
        );
        assert_eq!(
            python_asctime(at(951_782_400, 0)),
            "2000-02-29 00:00:00,000"
        );
        assert_eq!(
            python_asctime(at(4_102_444_800, 5)),
            "2100-01-01 00:00:00,005"
        );
    }

    #[test]
    fn level_names_are_pythons() {
        assert_eq!(python_level_name(Level::WARN), "WARNING");
        assert_eq!(python_level_name(Level::ERROR), "ERROR");
        assert_eq!(python_level_name(Level::INFO), "INFO");
        assert_eq!(python_level_name(Level::DEBUG), "DEBUG");
    }
}
