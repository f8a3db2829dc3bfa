//! The crate's error type and its mapping into the core's [`facebook_connector_core::Error`].
//!
//! Messages never contain a token, a client secret or a presigned download URL: endpoints are
//! named by their path, and `reqwest` errors are stripped of their URL before they are kept.

use std::time::Duration;

use facebook_connector_core::{Error as CoreError, InvalidValue};

/// What can go wrong talking to the marketplace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NarrativeError {
    /// The HTTP client could not be built (TLS provider, invalid configuration).
    #[error("cannot build the http client")]
    Build {
        /// The builder's error.
        #[source]
        source: reqwest::Error,
    },

    /// The TLS configuration could not be made (platform certificates, protocol versions).
    #[error("cannot set up tls")]
    Tls {
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },

    /// A configured URL or path is not usable.
    #[error("invalid url for {what}")]
    Url {
        /// Which URL.
        what: String,
        /// The parser's error.
        #[source]
        source: url::ParseError,
    },

    /// The request did not complete: connection refused or reset, timeout, broken body.
    #[error("request to {endpoint} failed")]
    Request {
        /// The endpoint, e.g. `GET /connections/{id}` (never a presigned URL).
        endpoint: String,
        /// Whether it was a timeout.
        timeout: bool,
        /// The transport error (without its URL).
        #[source]
        source: reqwest::Error,
    },

    /// The marketplace answered with an unexpected status.
    #[error("marketplace answered {status} to {endpoint}")]
    Status {
        /// The endpoint.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The marketplace's `error` field, when the body had one.
        error: Option<String>,
        /// The marketplace's `error_description` (or `message`) field, when the body had one.
        description: Option<String>,
        /// The `Retry-After` hint, when the response had one.
        retry_after: Option<Duration>,
    },

    /// The app token was refused even after a refresh and a new grant.
    #[error("marketplace refused the app token for {endpoint}")]
    AppUnauthorized {
        /// The endpoint.
        endpoint: String,
    },

    /// The customer's bearer token was refused (401).
    #[error("marketplace refused the customer token for {endpoint}")]
    CustomerUnauthorized {
        /// The endpoint.
        endpoint: String,
    },

    /// The token endpoint refused a grant.
    #[error("token endpoint refused the {grant} grant with status {status}")]
    Grant {
        /// `client_credentials` or `refresh_token`.
        grant: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The OAuth `error` code, when the body had one.
        error: Option<String>,
    },

    /// A response body could not be decoded.
    #[error("cannot decode the response of {endpoint}")]
    Decode {
        /// The endpoint.
        endpoint: String,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },

    /// A response carried a value that failed validation.
    #[error("invalid value in the response of {endpoint}")]
    Invalid {
        /// The endpoint.
        endpoint: String,
        /// What was wrong.
        #[source]
        source: InvalidValue,
    },

    /// The snapshot is older than the marketplace keeps file listings for (403).
    #[error(
        "snapshot {snapshot_id} of dataset {dataset_id} is older than 30 days and its files are no longer available"
    )]
    SnapshotTooOld {
        /// The dataset.
        dataset_id: i64,
        /// The snapshot.
        snapshot_id: String,
    },

    /// The marketplace will no longer hand out the file (451 `expired`, or a presigned URL that
    /// kept being refused).
    #[error("download of {file} expired")]
    DownloadExpired {
        /// The file.
        file: String,
        /// The marketplace's description, when it gave one.
        description: Option<String>,
    },

    /// The body was shorter or longer than the announced length.
    #[error("download of {file} has {actual} bytes, expected {expected}")]
    LengthMismatch {
        /// The file.
        file: String,
        /// The announced length.
        expected: u64,
        /// What arrived.
        actual: u64,
    },

    /// Writing a downloaded file failed.
    #[error("cannot write {path}")]
    Io {
        /// The destination.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Paging through a listing did not advance.
    #[error("paging through {endpoint} did not advance")]
    PagingStuck {
        /// The endpoint.
        endpoint: String,
    },
}

impl NarrativeError {
    /// Whether retrying the same request may succeed (5xx, 408, 429, timeouts, resets).
    pub fn is_transient(&self) -> bool {
        match self {
            NarrativeError::Request { .. } | NarrativeError::LengthMismatch { .. } => true,
            NarrativeError::Status { status, .. } => is_transient_status(*status),
            NarrativeError::Grant { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }

    /// The upstream's wait hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NarrativeError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, when the marketplace answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            NarrativeError::Status { status, .. } | NarrativeError::Grant { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    fn reason(&self) -> String {
        match self {
            NarrativeError::Status {
                endpoint,
                status,
                error,
                description,
                ..
            } => {
                let mut reason = format!("marketplace answered {status} to {endpoint}");
                if let Some(error) = error {
                    reason.push_str(": ");
                    reason.push_str(error);
                }
                if let Some(description) = description {
                    reason.push_str(" (");
                    reason.push_str(description);
                    reason.push(')');
                }
                reason
            }
            NarrativeError::DownloadExpired {
                file,
                description: Some(description),
            } => format!("download of {file} expired: {description}"),
            other => other.to_string(),
        }
    }
}

pub(crate) fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

impl From<NarrativeError> for CoreError {
    fn from(error: NarrativeError) -> Self {
        match &error {
            NarrativeError::Request { .. } | NarrativeError::LengthMismatch { .. } => {
                CoreError::transient(error)
            }
            NarrativeError::Status { status, .. } | NarrativeError::Grant { status, .. }
                if is_transient_status(*status) =>
            {
                CoreError::Transient {
                    retry_after: error.retry_after(),
                    source: Box::new(error),
                }
            }
            NarrativeError::CustomerUnauthorized { .. } => CoreError::InvalidToken {
                source: Box::new(error),
            },
            NarrativeError::AppUnauthorized { .. } | NarrativeError::Grant { .. } => {
                CoreError::PermissionDenied {
                    reason: "the marketplace refused the app's credentials".to_owned(),
                    source: Some(Box::new(error)),
                }
            }
            NarrativeError::Status { status: 403, .. } => CoreError::PermissionDenied {
                reason: error.reason(),
                source: Some(Box::new(error)),
            },
            NarrativeError::Status {
                status: 404,
                endpoint,
                ..
            } => CoreError::NotFound {
                what: endpoint.clone(),
            },
            // the local disk (full, temp dir gone): not the file's fault and not a bug
            NarrativeError::Io { .. } => CoreError::transient(error),
            _ => CoreError::Rejected {
                reason: error.reason(),
                source: Some(Box::new(error)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> NarrativeError {
        NarrativeError::Status {
            endpoint: "GET /connections/x".into(),
            status,
            error: Some("nope".into()),
            description: None,
            retry_after: Some(Duration::from_secs(3)),
        }
    }

    #[test]
    fn statuses_map_to_core_classes() {
        assert!(matches!(
            CoreError::from(status(503)),
            CoreError::Transient {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(CoreError::from(status(429)).is_retryable());
        assert!(matches!(
            CoreError::from(status(404)),
            CoreError::NotFound { .. }
        ));
        assert!(matches!(
            CoreError::from(status(403)),
            CoreError::PermissionDenied { .. }
        ));
        match CoreError::from(status(400)) {
            CoreError::Rejected { reason, .. } => {
                assert_eq!(
                    reason,
                    "marketplace answered 400 to GET /connections/x: nope"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            CoreError::from(NarrativeError::CustomerUnauthorized {
                endpoint: "GET /company-info/whoami".into()
            })
            .is_invalid_token()
        );
        assert!(matches!(
            CoreError::from(NarrativeError::SnapshotTooOld {
                dataset_id: 1,
                snapshot_id: "s".into()
            }),
            CoreError::Rejected { .. }
        ));
        assert!(
            CoreError::from(NarrativeError::LengthMismatch {
                file: "f".into(),
                expected: 2,
                actual: 1
            })
            .is_retryable()
        );
    }

    #[test]
    fn messages_are_lowercase_without_trailing_punctuation() {
        for e in [
            status(500),
            NarrativeError::AppUnauthorized {
                endpoint: "GET /v2/app/events".into(),
            },
            NarrativeError::DownloadExpired {
                file: "a".into(),
                description: None,
            },
        ] {
            let msg = e.to_string();
            assert!(!msg.ends_with('.'), "{msg}");
            assert!(
                msg.chars().next().is_some_and(|c| !c.is_uppercase()),
                "{msg}"
            );
        }
    }
}
