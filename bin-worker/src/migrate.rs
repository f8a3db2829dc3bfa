//! `migrate`: prepares the database with the store's migrations.

use facebook_connector_store::{StoreOptions, migrate_database};

use crate::records::CliResult;

/// Applies pending migrations and prints the resulting schema version.
pub fn run(database_url: &str) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(migrate_database(database_url, &StoreOptions::default()))?;
    println!("{status}");
    Ok(())
}
