//! `facebook-connector-worker`: the delivery daemon's host and its operator commands.

mod cli;
mod migrate;
mod records;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
