//! How an outcome becomes an exit status: 0 on success, 2 for a configuration error (a
//! missing or invalid value, before anything connected), 1 for everything else. The message is
//! one line: the error and its causes.

use std::process::ExitCode;

use facebook_connector_core::error::display_chain;

/// Exit status of a configuration error.
pub const CONFIG_ERROR: u8 = 2;

/// Prints `error: <chain>` to stderr and returns exit status 1.
pub fn failure(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("error: {}", display_chain(error));
    ExitCode::FAILURE
}

/// Prints `error: <chain>` to stderr and returns exit status 2.
pub fn config_error(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("error: {}", display_chain(error));
    ExitCode::from(CONFIG_ERROR)
}
