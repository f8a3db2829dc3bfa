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

/// What the delivery engine does about a failed operation: the one place that turns an
/// [`Error`] into an action (see [`Error::disposition`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Temporary: hand the job back to the queue and run it again later, after `wait` when the
    /// upstream gave a hint. With `throttled`, the wait is a rate limit and every job of the
    /// same ad account waits too; without `uses_attempt` the wait does not use up one of the
    /// job's attempts (rate limits, another worker busy with the same target).
    RetryLater {
        /// The upstream's own wait hint.
        wait: Option<Duration>,
        /// Whether this is a rate limit (Facebook throttling) rather than a failure.
        throttled: bool,
        /// Whether the try counts against the job's attempts.
        uses_attempt: bool,
    },
    /// The profile's token stopped working: mark the profile `needs_reauth` and pause its
    /// jobs until it is re-authorised. No attempt is used up.
    PauseProfile,
    /// Retrying will not help this file: fail it with the error's reason, which is written
    /// for the customer or operator.
    FailFile,
    /// The job is no longer ours (its lease was lost to another worker): stop at once and
    /// change nothing.
    AbandonJob,
    /// A bug or a broken deployment (undecryptable token, unknown storage failure, a broken
    /// invariant): log it as an error and hand the job back with a long delay, using up the
    /// attempt, so that an operator can fix the cause and nothing is lost.
    Fatal,
}

/// Errors of the core and of every port.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input failed validation. Disposition: [`Disposition::FailFile`].
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),

    /// The Facebook (or marketplace customer) token is invalid, expired or revoked. Never
    /// retried: the profile is marked `needs_reauth` and its jobs wait.
    /// Disposition: [`Disposition::PauseProfile`].
    #[error("token is invalid, expired or revoked")]
    InvalidToken {
        /// The upstream error.
        #[source]
        source: BoxError,
    },

    /// The caller may not do this (missing scope, terms of service not accepted, not the
    /// caller's resource). Not retried. Disposition: [`Disposition::FailFile`].
    #[error("permission denied: {reason}")]
    PermissionDenied {
        /// A human-readable reason that is safe to show to the customer.
        reason: String,
        /// The upstream error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The thing asked for does not exist (or no longer exists).
    /// Disposition: [`Disposition::FailFile`].
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `audience 123`.
        what: String,
    },

    /// The request was refused for a reason that retrying will not fix (bad request, audience
    /// flagged, expired download link). Disposition: [`Disposition::FailFile`].
    #[error("rejected: {reason}")]
    Rejected {
        /// A human-readable reason that is safe to show to the customer or operator.
        reason: String,
        /// The upstream error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A temporary failure (5xx, timeout, connection reset, database restart). Retried with
    /// backoff; `retry_after` is the upstream's own hint, when it gave one.
    /// Disposition: [`Disposition::RetryLater`] (the attempt counts).
    #[error("temporary failure")]
    Transient {
        /// How long the upstream asked us to wait.
        retry_after: Option<Duration>,
        /// The upstream error.
        #[source]
        source: BoxError,
    },

    /// Rate limited (Facebook throttling, a temporary policy block, an audience update in
    /// progress). Waited out: the wait uses up no attempt, and a throttle of an ad account
    /// holds back every job of that ad account.
    /// Disposition: [`Disposition::RetryLater`] with `throttled`.
    #[error("rate limited")]
    Throttled {
        /// How long the upstream asked us to wait (`estimated_time_to_regain_access`).
        retry_after: Option<Duration>,
        /// The upstream error.
        #[source]
        source: BoxError,
    },

    /// The job's lease is no longer held: it expired and another worker claimed the job (or
    /// the job was finished or requeued meanwhile). Disposition: [`Disposition::AbandonJob`].
    #[error("lease on {what} is no longer held")]
    LeaseLost {
        /// The job and lease generation.
        what: String,
    },

    /// Someone else is doing this right now (another worker holds the claim to create the
    /// audience of the same settings id). Disposition: [`Disposition::RetryLater`] without
    /// using up an attempt.
    #[error("{what} is busy")]
    Busy {
        /// What is being done elsewhere.
        what: String,
        /// When the other holder's claim runs out, as a wait from now.
        retry_after: Option<Duration>,
    },

    /// A unique key is taken (e.g. a profile with this id exists). Permanent.
    /// Disposition: [`Disposition::FailFile`].
    #[error("{what} already exists")]
    AlreadyExists {
        /// What exists.
        what: String,
    },

    /// A broken invariant: the caller passed inconsistent arguments (e.g. a command whose
    /// revision differs from its event's). A bug. Disposition: [`Disposition::Fatal`].
    #[error("invariant broken: {what}")]
    Invariant {
        /// What was inconsistent.
        what: String,
    },

    /// A stored token could not be decrypted (wrong key or tampered ciphertext): a key
    /// configuration problem. Disposition: [`Disposition::Fatal`].
    #[error("stored token cannot be decrypted")]
    Decrypt {
        /// The cipher's error.
        #[source]
        source: BoxError,
    },

    /// The storage backend failed in a way that is not known to be temporary (temporary ones
    /// are [`Error::Transient`]). Disposition: [`Disposition::Fatal`].
    #[error("storage failure")]
    Storage {
        /// The backend's error.
        #[source]
        source: BoxError,
    },

    /// A record file could not be read or decoded (not Parquet, broken compression, not UTF-8
    /// where it must be). Disposition: [`Disposition::FailFile`].
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

    /// What the delivery engine does about this error. Every variant has exactly one answer,
    /// documented on the variant.
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::Transient { retry_after, .. } => Disposition::RetryLater {
                wait: *retry_after,
                throttled: false,
                uses_attempt: true,
            },
            Error::Throttled { retry_after, .. } => Disposition::RetryLater {
                wait: *retry_after,
                throttled: true,
                uses_attempt: false,
            },
            Error::Busy { retry_after, .. } => Disposition::RetryLater {
                wait: *retry_after,
                throttled: false,
                uses_attempt: false,
            },
            Error::InvalidToken { .. } => Disposition::PauseProfile,
            Error::InvalidValue(_)
            | Error::PermissionDenied { .. }
            | Error::NotFound { .. }
            | Error::Rejected { .. }
            | Error::AlreadyExists { .. }
            | Error::Read { .. } => Disposition::FailFile,
            Error::LeaseLost { .. } => Disposition::AbandonJob,
            Error::Invariant { .. } | Error::Decrypt { .. } | Error::Storage { .. } => {
                Disposition::Fatal
            }
        }
    }

    /// Whether trying the same operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.disposition(), Disposition::RetryLater { .. })
    }

    /// Whether the token behind the call must be re-authorised before anything else happens.
    pub fn is_invalid_token(&self) -> bool {
        matches!(self, Error::InvalidToken { .. })
    }

    /// The upstream's own wait hint, for throttling.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.disposition() {
            Disposition::RetryLater { wait, .. } => wait,
            _ => None,
        }
    }

    /// A reason for a failed file that a customer or operator can act on: the variant's
    /// message with its causes (adapters keep secrets out of both).
    pub fn reason(&self) -> String {
        display_chain(self)
    }
}

/// An error and its causes on one line (`outer: cause: root cause`), for command-line output
/// and log fields where a chain cannot be rendered structurally.
pub fn display_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        // a cause whose message the line already holds (an error that prints its source
        // as part of its own message) adds nothing but a repetition
        let message = c.to_string();
        if !message.is_empty() && !line.contains(&message) {
            line.push_str(": ");
            line.push_str(&message);
        }
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
    fn chains_name_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading the file: {source}")]
        struct Repeats {
            source: std::io::Error,
        }
        #[derive(Debug, thiserror::Error)]
        #[error("delivery failed")]
        struct Outer {
            #[source]
            source: Repeats,
        }
        let error = Outer {
            source: Repeats {
                source: std::io::Error::other("disk full"),
            },
        };
        assert_eq!(
            display_chain(&error),
            "delivery failed: reading the file: disk full"
        );
    }

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
        let throttled = Error::Throttled {
            retry_after: Some(Duration::from_secs(60)),
            source: Box::new(io()),
        };
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(60)));
        assert_eq!(
            throttled.disposition(),
            Disposition::RetryLater {
                wait: Some(Duration::from_secs(60)),
                throttled: true,
                uses_attempt: false,
            }
        );
    }

    #[test]
    fn the_four_kinds_of_conflict_are_told_apart() {
        let lost = Error::LeaseLost {
            what: "job 1 (generation 2)".into(),
        };
        assert_eq!(lost.disposition(), Disposition::AbandonJob);
        assert!(!lost.is_retryable(), "a lost lease must never be retried");
        let busy = Error::Busy {
            what: "settings profile_x:subscription_1".into(),
            retry_after: Some(Duration::from_secs(5)),
        };
        assert!(busy.is_retryable());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(5)));
        let exists = Error::AlreadyExists {
            what: "profile 1".into(),
        };
        assert_eq!(exists.disposition(), Disposition::FailFile);
        let bug = Error::Invariant {
            what: "command revision 2 differs from event revision 3".into(),
        };
        assert_eq!(bug.disposition(), Disposition::Fatal);
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
