//! The core's error type. Ports return [`Error`] so the engine can decide, from the variant
//! alone, whether to retry, pause a profile, or fail a delivery; adapters keep their detailed
//! errors (HTTP status, Graph error code, SQL state) as the `source`.

use std::time::Duration;

/// Any error an adapter wants to keep as the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A value that failed validation (an id, a setting, a file name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct InvalidValue {
    /// What was being parsed, e.g. `ad account id`.
    pub what: &'static str,
    /// The offending input (never a secret: callers do not validate tokens with this type).
    pub value: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

impl InvalidValue {
    /// Builds the error; long values are cut so that logs stay readable.
    pub fn new(what: &'static str, value: &str, reason: &'static str) -> Self {
        let value: String = value.chars().take(120).collect();
        InvalidValue {
            what,
            value,
            reason,
        }
    }
}

/// Errors of the core and of every port.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input failed validation.
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),

    /// The Facebook (or marketplace customer) token is invalid, expired or revoked. Never
    /// retried: the profile is marked `needs_reauth` and its jobs wait.
    #[error("token is invalid, expired or revoked")]
    InvalidToken {
        /// The upstream error.
        #[source]
        source: BoxError,
    },

    /// The caller may not do this (missing scope, terms of service not accepted, not the
    /// caller's resource). Not retried.
    #[error("permission denied: {reason}")]
    PermissionDenied {
        /// A human-readable reason that is safe to show to the customer.
        reason: String,
        /// The upstream error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The thing asked for does not exist (or no longer exists).
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `audience 123`.
        what: String,
    },

    /// The request was refused for a reason that retrying will not fix (bad request, audience
    /// flagged, expired download link). The delivery fails with `reason`.
    #[error("rejected: {reason}")]
    Rejected {
        /// A human-readable reason that is safe to show to the customer or operator.
        reason: String,
        /// The upstream error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A temporary failure (5xx, timeout, throttling, connection reset, database restart).
    /// Retried with backoff; `retry_after` is the upstream's own hint, when it gave one.
    #[error("temporary failure")]
    Transient {
        /// How long the upstream asked us to wait.
        retry_after: Option<Duration>,
        /// The upstream error.
        #[source]
        source: BoxError,
    },

    /// Someone else holds what we wanted: a job lease was lost to another worker, or another
    /// worker is creating the audience for the same settings id.
    #[error("conflict: {what}")]
    Conflict {
        /// What conflicted.
        what: String,
    },

    /// A stored token could not be decrypted (wrong key or tampered ciphertext).
    #[error("stored token cannot be decrypted")]
    Decrypt {
        /// The cipher's error.
        #[source]
        source: BoxError,
    },

    /// The storage backend failed in a way that is not known to be temporary.
    #[error("storage failure")]
    Storage {
        /// The backend's error.
        #[source]
        source: BoxError,
    },

    /// A record file could not be read.
    #[error("cannot read {what}")]
    Read {
        /// What was being read, e.g. `parquet file part-0.parquet`.
        what: String,
        /// The reader's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// A temporary failure without an upstream wait hint.
    pub fn transient(source: impl Into<BoxError>) -> Self {
        Error::Transient {
            retry_after: None,
            source: source.into(),
        }
    }

    /// A permanent refusal with a reason and its upstream cause.
    pub fn rejected(reason: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Rejected {
            reason: reason.into(),
            source: Some(source.into()),
        }
    }

    /// Whether trying the same operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Transient { .. } | Error::Conflict { .. })
    }

    /// Whether the token behind the call must be re-authorised before anything else happens.
    pub fn is_invalid_token(&self) -> bool {
        matches!(self, Error::InvalidToken { .. })
    }

    /// The upstream's own wait hint, for throttling.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// An error and its causes on one line (`outer: cause: root cause`), for command-line output
/// and log fields where a chain cannot be rendered structurally.
pub fn display_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

/// Result alias for the core and its ports.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_drives_retries() {
        let io = || std::io::Error::other("connection reset");
        assert!(Error::transient(io()).is_retryable());
        assert!(!Error::rejected("bad", io()).is_retryable());
        let token = Error::InvalidToken {
            source: Box::new(io()),
        };
        assert!(token.is_invalid_token());
        assert!(!token.is_retryable());
        let throttled = Error::Transient {
            retry_after: Some(Duration::from_secs(60)),
            source: Box::new(io()),
        };
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn messages_are_lowercase_and_keep_causes_out() {
        let e = Error::transient(std::io::Error::other("secret-ish detail"));
        assert_eq!(e.to_string(), "temporary failure");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("secret-ish detail"));
        assert_eq!(display_chain(&e), "temporary failure: secret-ish detail");
        let long = "x".repeat(500);
        let invalid = InvalidValue::new("audience id", &long, "expected digits");
        assert!(invalid.to_string().len() < 200);
    }
}
