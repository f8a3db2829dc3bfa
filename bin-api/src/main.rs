//! `facebook-connector-api`: the HTTP API the marketplace UI calls to manage profiles. This
//! file only parses the command line; everything else is the library's.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use facebook_connector_api::serve::{self, ServeArgs};
use facebook_connector_host::{DatabaseArgs, LogArgs, logging};

/// The Facebook connector's HTTP API.
#[derive(Debug, Parser)]
#[command(name = "facebook-connector-api", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `serve`'s flags, when no subcommand is given.
    #[command(flatten)]
    serve: Box<ServeArgs>,
    #[command(flatten)]
    log: LogArgs,
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
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Migrate(database)) => {
            logging::init_with_default(cli.log.log_format, logging::COMMAND_FILTER);
            facebook_connector_host::migrate::run(&database)
        }
        Some(Command::Serve(args)) => {
            logging::init(cli.log.log_format);
            serve::main(&args)
        }
        None => {
            logging::init(cli.log.log_format);
            serve::main(&cli.serve)
        }
    }
}
