//! Comparing a database's applied migrations with the ones this binary carries.

use sqlx::migrate::Migrator;

use crate::error::{StoreError, StoreResult};

/// The schema of a database that matches this binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Applied migration versions, oldest first.
    pub applied: Vec<i64>,
}

impl SchemaStatus {
    /// The newest applied migration, if any.
    pub fn version(&self) -> Option<i64> {
        self.applied.last().copied()
    }
}

/// What the `migrate` command of both binaries prints.
impl std::fmt::Display for SchemaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version() {
            Some(version) => write!(f, "database schema is at version {version}"),
            None => f.write_str("database schema is empty"),
        }
    }
}

/// `applied`: `(version, checksum, success)` rows of `_sqlx_migrations`.
pub(crate) fn compare(
    migrator: &Migrator,
    applied: &[(i64, Vec<u8>, bool)],
) -> StoreResult<SchemaStatus> {
    let known: Vec<_> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    let unknown: Vec<i64> = applied
        .iter()
        .map(|(version, _, _)| *version)
        .filter(|v| !known.iter().any(|m| m.version == *v))
        .collect();
    if !unknown.is_empty() {
        return Err(StoreError::SchemaTooNew { unknown });
    }
    for (version, checksum, success) in applied {
        let same = known
            .iter()
            .any(|m| m.version == *version && m.checksum.as_ref() == checksum.as_slice());
        if !success || !same {
            return Err(StoreError::SchemaMismatch { version: *version });
        }
    }
    let pending: Vec<i64> = known
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.iter().any(|(a, _, _)| a == v))
        .collect();
    if !pending.is_empty() {
        return Err(StoreError::SchemaBehind { pending });
    }
    Ok(SchemaStatus {
        applied: applied.iter().map(|(v, _, _)| *v).collect(),
    })
}
