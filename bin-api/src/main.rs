//! `facebook-connector-api`: the HTTP API the marketplace UI calls to manage profiles. This
//! file only parses the command line; everything else is the library's.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use facebook_connector_api::serve::{self, ServeArgs};
use facebook_connector_host::{DatabaseArgs, LogArgs, logging};

/// The Facebook connector's HTTP API.
#[derive(Debug, Parser)]
#[command(name = "facebook-connector-api", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    log: LogArgs,
}

/// The command line; without a command (or with `serve`'s flags only) it is `serve`.
fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let unknown = match Cli::try_parse_from(&args) {
        Ok(cli) if cli.command.is_some() => return cli,
        Ok(_) => None,
        Err(e) if e.kind() == clap::error::ErrorKind::UnknownArgument => Some(e),
        Err(e) => e.exit(),
    };
    let mut as_serve = args;
    as_serve.insert(1.min(as_serve.len()), "serve".into());
    match Cli::try_parse_from(&as_serve) {
        Ok(cli) => cli,
        // an argument neither the top level nor `serve` knows: the top level's error
        Err(e) => unknown.unwrap_or(e).exit(),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (the default when no command is given)
    ///
    /// Needs TOKEN_ENCRYPTION_KEYS, FACEBOOK_APP_ID and FACEBOOK_APP_SECRET (or their flags).
    /// SIGTERM or SIGINT stops accepting connections and lets requests in flight finish.
    Serve(Box<ServeArgs>),
    /// Apply the database migrations (safe to repeat; refuses a newer schema)
    Migrate(DatabaseArgs),
}

fn main() -> ExitCode {
    let cli = parse();
    match cli.command {
        Some(Command::Migrate(database)) => {
            logging::init_with_default(cli.log.log_format, logging::COMMAND_FILTER);
            facebook_connector_host::migrate::run(&database)
        }
        Some(Command::Serve(args)) => {
            logging::init(cli.log.log_format);
            serve::main(&args)
        }
        // `parse` always names a command
        None => ExitCode::from(facebook_connector_host::exit::CONFIG_ERROR),
    }
}
