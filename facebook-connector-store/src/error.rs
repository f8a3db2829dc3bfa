//! The crate's error type and its classification into the core's [`Error`](CoreError).

use std::time::Duration;

use facebook_connector_core::Error as CoreError;

/// Errors of the storage backends, the schema check and the token cipher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL names no supported backend.
    #[error("unsupported database url scheme {scheme:?}: expected postgres:// or sqlite:")]
    UnsupportedUrl {
        /// The scheme found (never the whole URL, which may carry a password).
        scheme: String,
    },

    /// The database could not be reached or refused the connection.
    #[error("cannot connect to the {backend} database")]
    Connect {
        /// `postgres` or `sqlite`.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// A query failed.
    #[error("database query failed: {operation}")]
    Query {
        /// What was being done, e.g. `claim job`.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// Running the migrations failed.
    #[error("cannot migrate the database schema")]
    Migrate {
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// The database has migrations this binary does not know: it was migrated by a newer
    /// version. Refusing to run protects the data from an old binary.
    #[error(
        "database schema is newer than this binary (unknown migrations {unknown:?}): upgrade the binary"
    )]
    SchemaTooNew {
        /// Applied versions this binary does not know.
        unknown: Vec<i64>,
    },

    /// The database lacks migrations this binary needs.
    #[error("database schema is behind this binary (pending migrations {pending:?}): run migrate")]
    SchemaBehind {
        /// Versions not applied yet.
        pending: Vec<i64>,
    },

    /// An applied migration differs from this binary's copy, or failed half-way.
    #[error("applied migration {version} does not match this binary's migration")]
    SchemaMismatch {
        /// The migration's version.
        version: i64,
    },

    /// A stored value could not be turned back into a domain value.
    #[error("stored {what} is invalid")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why it did not decode.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A value does not fit the database's column (e.g. a revision above `i64::MAX`).
    #[error("{what} {value} is out of range for the database")]
    OutOfRange {
        /// Which value.
        what: &'static str,
        /// The value.
        value: u64,
    },

    /// A row the operation needs does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What, e.g. `profile 0b6d…`.
        what: String,
    },

    /// A job's lease is no longer the current one (it expired and the job was claimed again,
    /// or the job was finished or released meanwhile); nothing was changed.
    #[error("lease on {what} is no longer held")]
    LeaseLost {
        /// The job and lease generation.
        what: String,
    },

    /// Another worker holds the claim to do this (create a target's audience).
    #[error("{what} is busy")]
    Busy {
        /// What is held elsewhere.
        what: String,
        /// How long until the other holder's claim runs out.
        retry_after: Option<Duration>,
    },

    /// A row with this key exists (a unique constraint refused the write).
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists, e.g. `profile 0b6d…`.
        what: String,
    },

    /// The caller passed inconsistent arguments (a bug in the caller).
    #[error("invariant broken: {what}")]
    Invariant {
        /// What was inconsistent.
        what: String,
    },

    /// The token key configuration is invalid (never includes key material).
    #[error("invalid token key configuration: {reason}")]
    InvalidKeys {
        /// What is wrong, e.g. `key k1 is not 32 bytes`.
        reason: String,
    },

    /// A token could not be encrypted or decrypted.
    #[error("token cipher failure: {reason}")]
    Cipher {
        /// What failed, e.g. `unknown key id k9` (never key or token material).
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn query(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { operation, source }
    }

    /// The error of a write that may hit a unique key: [`StoreError::AlreadyExists`] naming
    /// `what` when it did, the query error otherwise.
    pub(crate) fn unique(
        operation: &'static str,
        what: impl FnOnce() -> String,
    ) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| {
            if StoreError::is_unique_violation(&source) {
                StoreError::AlreadyExists { what: what() }
            } else {
                StoreError::Query { operation, source }
            }
        }
    }

    pub(crate) fn corrupt(
        what: &'static str,
    ) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> StoreError {
        move |source| StoreError::Corrupt { what, source }
    }

    /// Whether the driver error is temporary (connection loss, pool exhausted, serialization
    /// failure, deadlock, `database is locked`).
    fn is_transient(source: &sqlx::Error) -> bool {
        match source {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::BeginFailed => true,
            sqlx::Error::Database(db) => {
                let code = db.code();
                let code = code.as_deref().unwrap_or("");
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some()
                {
                    // 40001 serialization_failure, 40P01 deadlock_detected, 08* connection
                    // exceptions, 53300 too_many_connections, 55P03 lock_not_available (lock
                    // timeout), 57014 query_canceled (statement timeout), 57P01..57P03
                    // shutdown/recovery, 25006 read_only_sql_transaction (a standby answered
                    // during a failover)
                    matches!(
                        code,
                        "40001"
                            | "40P01"
                            | "53300"
                            | "55P03"
                            | "57014"
                            | "57P01"
                            | "57P02"
                            | "57P03"
                            | "25006"
                    ) || code.starts_with("08")
                } else {
                    // SQLite: primary result codes SQLITE_BUSY (5) and SQLITE_LOCKED (6)
                    code.parse::<i64>()
                        .map(|c| matches!(c & 0xff, 5 | 6))
                        .unwrap_or(false)
                        || db.message().contains("database is locked")
                }
            }
            _ => false,
        }
    }

    fn is_unique_violation(source: &sqlx::Error) -> bool {
        matches!(source, sqlx::Error::Database(db) if db.is_unique_violation())
    }
}

impl From<StoreError> for CoreError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Query { ref source, .. } | StoreError::Connect { ref source, .. }
                if StoreError::is_transient(source) =>
            {
                CoreError::transient(error)
            }
            StoreError::Query {
                ref source,
                operation,
            } if StoreError::is_unique_violation(source) => CoreError::AlreadyExists {
                what: format!("the row written by {operation}"),
            },
            StoreError::NotFound { what } => CoreError::NotFound { what },
            StoreError::LeaseLost { what } => CoreError::LeaseLost { what },
            StoreError::Busy { what, retry_after } => CoreError::Busy { what, retry_after },
            StoreError::AlreadyExists { what } => CoreError::AlreadyExists { what },
            StoreError::Invariant { what } => CoreError::Invariant { what },
            StoreError::Cipher { .. } | StoreError::InvalidKeys { .. } => CoreError::Decrypt {
                source: Box::new(error),
            },
            other => CoreError::Storage {
                source: Box::new(other),
            },
        }
    }
}

/// Result alias for this crate's own API.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_errors_are_classified() {
        let timed_out = StoreError::Query {
            operation: "claim job",
            source: sqlx::Error::PoolTimedOut,
        };
        assert!(matches!(
            CoreError::from(timed_out),
            CoreError::Transient { .. }
        ));
        let io = StoreError::Connect {
            backend: "postgres",
            source: sqlx::Error::Io(std::io::Error::other("reset")),
        };
        assert!(matches!(CoreError::from(io), CoreError::Transient { .. }));
        let decode = StoreError::Query {
            operation: "get job",
            source: sqlx::Error::RowNotFound,
        };
        assert!(matches!(CoreError::from(decode), CoreError::Storage { .. }));
        let cipher = StoreError::Cipher {
            reason: "unknown key id k9".into(),
        };
        assert!(matches!(CoreError::from(cipher), CoreError::Decrypt { .. }));
    }

    #[test]
    fn conflicts_keep_their_kind() {
        use facebook_connector_core::Disposition;
        let disposition = |e: StoreError| CoreError::from(e).disposition();
        let lost = StoreError::LeaseLost {
            what: "job 1 (generation 2)".into(),
        };
        assert_eq!(disposition(lost), Disposition::AbandonJob);
        let busy = StoreError::Busy {
            what: "settings x".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            disposition(busy),
            Disposition::RetryLater {
                wait: Some(Duration::from_secs(7)),
                throttled: false,
                uses_attempt: false,
            }
        );
        let exists = StoreError::AlreadyExists {
            what: "profile 1".into(),
        };
        let core = CoreError::from(exists);
        assert_eq!(core.to_string(), "profile 1 already exists");
        assert_eq!(core.disposition(), Disposition::FailFile);
        let bug = StoreError::Invariant {
            what: "revisions differ".into(),
        };
        assert_eq!(disposition(bug), Disposition::Fatal);
        let other = StoreError::Query {
            operation: "get job",
            source: sqlx::Error::Protocol("bad".into()),
        };
        assert_eq!(disposition(other), Disposition::Fatal);
    }

    #[test]
    fn messages_are_lowercase_without_causes() {
        let e = StoreError::SchemaTooNew {
            unknown: vec![20990101000000],
        };
        let text = e.to_string();
        assert!(text.starts_with("database schema is newer"), "{text}");
        assert!(!text.ends_with('.'));
    }
}
