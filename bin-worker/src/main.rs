//! `facebook-connector-worker`: see the library crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    facebook_connector_worker::cli::main()
}
