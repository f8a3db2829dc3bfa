//! Logging: `tracing` events to stderr (standard output is the data of `parse`, `payload`,
//! `deliveries --json`), one line each. JSON lines carry `timestamp`, `level`, `message`,
//! `target` and the event's own fields at the top level; `RUST_LOG` filters (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default on a terminal).
    Text,
    /// One JSON object per line (the default otherwise).
    Json,
}

impl LogFormat {
    /// The format asked for, else text on a terminal and JSON otherwise.
    pub fn resolve(asked: Option<LogFormat>) -> LogFormat {
        asked.unwrap_or(if std::io::stderr().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        })
    }
}

/// The filter of the daemons (`serve`, `run`) when `RUST_LOG` is not set.
pub const DAEMON_FILTER: &str = "info";
/// The filter of the one-shot commands (`parse`, `migrate`, `deliveries`, …) when `RUST_LOG`
/// is not set: their output is what they print, logs only say what went wrong (and not the
/// database driver's chatter about connection parameters).
pub const COMMAND_FILTER: &str = "warn,sqlx=error";

/// Installs the process's subscriber with the daemons' default filter. A second call (tests)
/// leaves the first in place.
pub fn init(asked: Option<LogFormat>) {
    init_with_default(asked, DAEMON_FILTER);
}

/// Installs the process's subscriber; `default` is the filter when `RUST_LOG` is not set.
pub fn init_with_default(asked: Option<LogFormat>, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match LogFormat::resolve(asked) {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
