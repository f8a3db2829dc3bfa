//! The `migrate` command of both binaries.

use std::process::ExitCode;

use facebook_connector_store::{StoreOptions, migrate_database};

use crate::config::DatabaseArgs;

/// Applies pending migrations, prints the resulting schema version and returns the exit
/// status (refuses, with a message, a database migrated by a newer binary).
pub fn run(args: &DatabaseArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return crate::exit::failure(&e),
    };
    match runtime.block_on(migrate_database(
        &args.database_url,
        &StoreOptions::default(),
    )) {
        Ok(status) => {
            println!("{status}");
            ExitCode::SUCCESS
        }
        Err(e) => crate::exit::failure(&e),
    }
}
