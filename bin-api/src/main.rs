//! `facebook-connector-api`: the HTTP API the marketplace UI calls to manage profiles.
//!
//! The routes arrive with their own issue; the `migrate` command, shared with the worker, is
//! here already so either binary can prepare the database.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use facebook_connector_core::error::display_chain;
use facebook_connector_store::{StoreOptions, migrate_database};

/// The Facebook connector's HTTP API.
#[derive(Debug, Parser)]
#[command(name = "facebook-connector-api", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations (safe to repeat; refuses a newer schema)
    Migrate {
        /// Database URL: `postgres://…` or `sqlite://path?mode=rwc` (the embedded default).
        #[arg(
            long,
            env = "DB_URL",
            default_value = "sqlite://facebook-connector.db?mode=rwc",
            hide_env_values = true
        )]
        database_url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Migrate { database_url } => {
            match runtime.block_on(migrate_database(&database_url, &StoreOptions::default())) {
                Ok(status) => {
                    println!("{status}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", display_chain(&e));
                    ExitCode::FAILURE
                }
            }
        }
    }
}
