//! The crate's error type, its classification (the error table of facebook-api.md) and the
//! mapping into the core's [`facebook_connector_core::Error`].
//!
//! No variant ever holds a token: transport errors are stored without their URL (which may
//! carry `access_token` in its query), and Graph messages are scrubbed of the tokens of the
//! call that produced them.

use std::fmt;
use std::time::Duration;

use connector_resilience::scrub;
use facebook_connector_core::Error as CoreError;
use serde::Deserialize;

/// The `error` object of a Graph API error response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GraphErrorBody {
    /// Developer-facing message.
    pub message: String,
    /// Error type, e.g. `OAuthException`.
    #[serde(rename = "type")]
    pub error_type: Option<String>,
    /// Error code.
    pub code: i64,
    /// Error subcode.
    pub error_subcode: Option<i64>,
    /// User-facing title.
    pub error_user_title: Option<String>,
    /// User-facing message.
    pub error_user_msg: Option<String>,
    /// Facebook's trace id, for support requests.
    pub fbtrace_id: Option<String>,
    /// Facebook's own hint that retrying may work.
    pub is_transient: bool,
}

/// How an error is handled (facebook-api.md, "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// 190, 102: the user token is invalid, expired or revoked. Never retried.
    InvalidToken,
    /// 10, 200–299: missing permission or terms not accepted. Never retried.
    Permission,
    /// 100 / 1713230: the audience is flagged and blocks uploads.
    AudienceFlagged,
    /// 100 (other), 2650 and anything unknown: the request itself is wrong.
    BadRequest,
    /// 803: an id does not (yet) exist; retried on uploads (propagation of a new audience).
    UnknownAlias,
    /// 2650 / 1870145: an update of the audience is in progress; wait and retry.
    UpdateInProgress,
    /// 2650 / 1870159: the upload session already finished (its last batch was processed).
    SessionFinished,
    /// 2650 / 1870158: the upload session timed out (its first batch is over 90 minutes old).
    SessionExpired,
    /// 1, 2, `is_transient`, HTTP 5xx, timeouts, connection failures.
    Transient,
    /// 4, 17, 32, 341, 613, 80000–80014, HTTP 429: rate limited.
    Throttled,
    /// 368: temporarily blocked for policy reasons; long backoff.
    PolicyBlock,
}

impl ErrorClass {
    /// Classifies a Graph error code and subcode returned with HTTP `status`.
    pub fn of(code: i64, subcode: Option<i64>, is_transient: bool, status: u16) -> ErrorClass {
        match code {
            190 | 102 => ErrorClass::InvalidToken,
            10 | 200..=299 => ErrorClass::Permission,
            4 | 17 | 32 | 341 | 613 | 80000..=80014 => ErrorClass::Throttled,
            368 => ErrorClass::PolicyBlock,
            100 if subcode == Some(1713230) => ErrorClass::AudienceFlagged,
            2650 if subcode == Some(1870145) => ErrorClass::UpdateInProgress,
            2650 if subcode == Some(1870159) => ErrorClass::SessionFinished,
            2650 if subcode == Some(1870158) => ErrorClass::SessionExpired,
            803 => ErrorClass::UnknownAlias,
            1 | 2 => ErrorClass::Transient,
            _ if is_transient => ErrorClass::Transient,
            _ if status == 429 => ErrorClass::Throttled,
            _ if status >= 500 => ErrorClass::Transient,
            _ => ErrorClass::BadRequest,
        }
    }

    /// Whether waiting and sending again may succeed (803 only where the caller allows it).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Transient
                | ErrorClass::Throttled
                | ErrorClass::PolicyBlock
                | ErrorClass::UpdateInProgress
        )
    }

    /// Whether this is a rate limit or another "wait, then retry" that uses up no attempt of
    /// the job (mapped to the core's `Throttled`).
    pub fn is_throttle(self) -> bool {
        matches!(
            self,
            ErrorClass::Throttled | ErrorClass::PolicyBlock | ErrorClass::UpdateInProgress
        )
    }
}

/// A Graph error object as received (texts scrubbed of the call's tokens).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the response.
    pub status: u16,
    /// Graph error code.
    pub code: i64,
    /// Graph error subcode.
    pub subcode: Option<i64>,
    /// Graph error type.
    pub error_type: Option<String>,
    /// Developer-facing message.
    pub message: String,
    /// User-facing title.
    pub user_title: Option<String>,
    /// User-facing message.
    pub user_message: Option<String>,
    /// Facebook's trace id.
    pub fbtrace_id: Option<String>,
    /// Facebook's transient hint.
    pub is_transient: bool,
    /// How long to wait before trying again: Facebook's `estimated_time_to_regain_access`
    /// (from `X-Business-Use-Case-Usage`), or, when the client gave up on a throttle-like
    /// error, the wait it would have taken next (whichever is longer).
    pub retry_after: Option<Duration>,
}

/// A failed Graph API call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// Facebook answered with a Graph error object.
    #[error("graph api error {}: {}", CodeDisplay(.0.code, .0.subcode), .0.message)]
    Api(Box<ApiError>),

    /// Facebook (or something in front of it) answered an error status without a Graph error.
    #[error("graph api answered http {status}")]
    Http {
        /// HTTP status.
        status: u16,
        /// Facebook's trace id header, if any.
        fbtrace_id: Option<String>,
    },

    /// The call did not finish within the configured timeout.
    #[error("graph api call timed out")]
    Timeout,

    /// The connection failed (the error is kept without its URL).
    #[error("cannot reach the graph api")]
    Transport {
        /// The HTTP client's error, stripped of the URL.
        #[source]
        source: reqwest::Error,
    },

    /// A successful response had an unexpected shape.
    #[error("unexpected graph api response to {what}")]
    Decode {
        /// Which call.
        what: &'static str,
        /// The parser's error; omitted for responses that carry tokens.
        #[source]
        source: Option<serde_json::Error>,
    },

    /// A `paging.next` link pointed away from the configured Graph API host.
    #[error("paging link points outside the configured graph api host")]
    ForeignPagingLink,

    /// A batch answer did not match the batch request.
    #[error("batch answer has {got} results for {expected} requests")]
    BatchShape {
        /// Requests sent.
        expected: usize,
        /// Results received.
        got: usize,
    },

    /// The client-side limiter's next free slot for this call (its ad account's, or the
    /// app's) is further away than what is left of the call's retry budget: nothing was sent.
    #[error("graph api usage limit reached; next slot in {} ms", .wait.as_millis())]
    Deferred {
        /// The wait until the next free slot.
        wait: Duration,
    },

    /// The caller asked for something Facebook would refuse (nothing was sent).
    #[error("invalid graph api request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: &'static str,
    },

    /// The client could not be built or a request could not be formed.
    #[error("invalid graph api client setup: {reason}")]
    Setup {
        /// What is wrong.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

struct CodeDisplay(i64, Option<i64>);

impl fmt::Display for CodeDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(sub) => write!(f, "{}/{}", self.0, sub),
            None => write!(f, "{}", self.0),
        }
    }
}

impl GraphError {
    /// Builds an [`GraphError::Api`] from a decoded body, scrubbing `secrets` out of its texts.
    pub(crate) fn from_body(
        status: u16,
        body: GraphErrorBody,
        regain_access: Option<Duration>,
        secrets: &[&str],
    ) -> GraphError {
        let scrub_opt = |s: Option<String>| s.map(|s| scrub(&s, secrets));
        GraphError::Api(Box::new(ApiError {
            status,
            code: body.code,
            subcode: body.error_subcode,
            error_type: body.error_type,
            message: scrub(&body.message, secrets),
            user_title: scrub_opt(body.error_user_title),
            user_message: scrub_opt(body.error_user_msg),
            fbtrace_id: body.fbtrace_id,
            is_transient: body.is_transient,
            retry_after: regain_access,
        }))
    }

    /// Wraps a transport error, dropping its URL.
    pub(crate) fn transport(err: reqwest::Error) -> GraphError {
        if err.is_timeout() {
            GraphError::Timeout
        } else {
            GraphError::Transport {
                source: err.without_url(),
            }
        }
    }

    /// How this error is handled.
    pub fn class(&self) -> ErrorClass {
        match self {
            GraphError::Api(e) => ErrorClass::of(e.code, e.subcode, e.is_transient, e.status),
            GraphError::Http { status, .. } if *status == 429 => ErrorClass::Throttled,
            GraphError::Http { status, .. } if *status >= 500 => ErrorClass::Transient,
            GraphError::Http { .. } => ErrorClass::BadRequest,
            GraphError::Timeout | GraphError::Transport { .. } | GraphError::Decode { .. } => {
                ErrorClass::Transient
            }
            GraphError::Deferred { .. } => ErrorClass::Throttled,
            GraphError::ForeignPagingLink
            | GraphError::BatchShape { .. }
            | GraphError::InvalidRequest { .. }
            | GraphError::Setup { .. } => ErrorClass::BadRequest,
        }
    }

    /// The Graph error code, if Facebook sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            GraphError::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// The Graph error subcode, if Facebook sent one.
    pub fn subcode(&self) -> Option<i64> {
        match self {
            GraphError::Api(e) => e.subcode,
            _ => None,
        }
    }

    /// Facebook's trace id, if any.
    pub fn fbtrace_id(&self) -> Option<&str> {
        match self {
            GraphError::Api(e) => e.fbtrace_id.as_deref(),
            GraphError::Http { fbtrace_id, .. } => fbtrace_id.as_deref(),
            _ => None,
        }
    }

    /// How long to wait before trying again, when known: Facebook's
    /// `estimated_time_to_regain_access`, the client-side limiter's next slot, or the wait the
    /// client's retry policy would have taken next.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Api(e) => e.retry_after,
            GraphError::Deferred { wait } => Some(*wait),
            _ => None,
        }
    }

    /// Records the wait the retry policy would have taken next (see [`GaveUp::wait`]) on a
    /// throttle-like error, keeping Facebook's own estimate when it is longer.
    ///
    /// [`GaveUp::wait`]: connector_resilience::GaveUp::wait
    pub(crate) fn with_retry_wait(mut self, wait: Option<Duration>) -> GraphError {
        if self.class().is_throttle()
            && let (GraphError::Api(e), Some(wait)) = (&mut self, wait)
        {
            e.retry_after = Some(e.retry_after.map_or(wait, |r| r.max(wait)));
        }
        self
    }

    /// A reason safe to show to a customer: the user-facing title and message when Facebook
    /// gave them, else the developer message, with the code.
    pub fn reason(&self) -> String {
        match self {
            GraphError::Api(e) => {
                let text = match (e.user_title.as_deref(), e.user_message.as_deref()) {
                    (Some(t), Some(m)) if !t.is_empty() && !m.is_empty() => format!("{t}: {m}"),
                    (_, Some(m)) if !m.is_empty() => m.to_owned(),
                    (Some(t), _) if !t.is_empty() => t.to_owned(),
                    _ => e.message.clone(),
                };
                format!("{text} (facebook error {})", CodeDisplay(e.code, e.subcode))
            }
            other => other.to_string(),
        }
    }

    /// Maps into the core's error, keeping `self` as the source:
    ///
    /// * invalid token (190, 102) → `InvalidToken` (never retried; the profile is paused);
    /// * permission (10, 200–299) → `PermissionDenied`, a flagged audience or a bad request →
    ///   `Rejected`, each with a reason a customer can act on (Facebook's user-facing title
    ///   and message where it gave them; never a token);
    /// * throttled (4, 17, 32, 341, 613, 80000–80014, 429), policy block (368), audience
    ///   update in progress (2650/1870145) and the client-side limiter → `Throttled` with the
    ///   wait ([`GraphError::retry_after`]);
    /// * transient (1, 2, `is_transient`, 5xx, timeouts) → `Transient`.
    ///
    /// An 803 (unknown id) is `Rejected` here; uploads map it to `Transient` themselves (a new
    /// audience may still be propagating). A finished or expired session is an upload outcome,
    /// not an error, on uploads; anywhere else it is `Rejected`.
    pub fn into_core(self) -> CoreError {
        let class = self.class();
        match class {
            ErrorClass::InvalidToken => CoreError::InvalidToken {
                source: Box::new(self),
            },
            ErrorClass::Permission => CoreError::PermissionDenied {
                reason: format!("facebook denied the request: {}", self.reason()),
                source: Some(Box::new(self)),
            },
            ErrorClass::AudienceFlagged => CoreError::Rejected {
                reason: format!(
                    "the audience is flagged by facebook and cannot receive uploads: {}",
                    self.reason()
                ),
                source: Some(Box::new(self)),
            },
            ErrorClass::BadRequest
            | ErrorClass::UnknownAlias
            | ErrorClass::SessionFinished
            | ErrorClass::SessionExpired => CoreError::Rejected {
                reason: format!("facebook rejected the request: {}", self.reason()),
                source: Some(Box::new(self)),
            },
            ErrorClass::Throttled | ErrorClass::PolicyBlock | ErrorClass::UpdateInProgress => {
                CoreError::Throttled {
                    retry_after: self.retry_after(),
                    source: Box::new(self),
                }
            }
            ErrorClass::Transient => CoreError::Transient {
                retry_after: self.retry_after(),
                source: Box::new(self),
            },
        }
    }
}

impl From<GraphError> for CoreError {
    fn from(err: GraphError) -> Self {
        err.into_core()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: i64, subcode: Option<i64>, status: u16) -> GraphError {
        GraphError::from_body(
            status,
            GraphErrorBody {
                message: "boom".into(),
                code,
                error_subcode: subcode,
                ..Default::default()
            },
            None,
            &[],
        )
    }

    #[test]
    fn the_error_table_is_followed() {
        use ErrorClass::*;
        let cases = [
            (190, None, 400, InvalidToken),
            (190, Some(463), 400, InvalidToken),
            (102, None, 400, InvalidToken),
            (10, None, 403, Permission),
            (200, Some(1870090), 403, Permission),
            (294, None, 403, Permission),
            (100, Some(1713230), 400, AudienceFlagged),
            (100, None, 400, BadRequest),
            (2650, None, 400, BadRequest),
            (2650, Some(1870145), 400, UpdateInProgress),
            (2650, Some(1870158), 400, SessionExpired),
            (2650, Some(1870159), 400, SessionFinished),
            (2650, Some(1870147), 400, BadRequest),
            (1, None, 500, Transient),
            (2, None, 503, Transient),
            (4, None, 400, Throttled),
            (17, None, 400, Throttled),
            (32, None, 400, Throttled),
            (341, None, 400, Throttled),
            (613, None, 400, Throttled),
            (80003, None, 400, Throttled),
            (368, None, 400, PolicyBlock),
            (803, None, 400, UnknownAlias),
            (9999, None, 500, Transient),
            (9999, None, 429, Throttled),
        ];
        for (code, sub, status, class) in cases {
            assert_eq!(api(code, sub, status).class(), class, "{code}/{sub:?}");
        }
        let transient = GraphError::from_body(
            400,
            GraphErrorBody {
                code: 9999,
                is_transient: true,
                ..Default::default()
            },
            None,
            &[],
        );
        assert_eq!(transient.class(), Transient);
        assert_eq!(GraphError::Timeout.class(), Transient);
        assert_eq!(
            GraphError::Http {
                status: 502,
                fbtrace_id: None
            }
            .class(),
            Transient
        );
    }

    #[test]
    fn core_mapping_keeps_the_source_and_reason() {
        let err = GraphError::from_body(
            403,
            GraphErrorBody {
                message: "dev text".into(),
                code: 200,
                error_subcode: Some(1870090),
                error_user_title: Some("Terms not accepted".into()),
                error_user_msg: Some("Accept the Custom Audience terms".into()),
                fbtrace_id: Some("TRACE".into()),
                ..Default::default()
            },
            None,
            &[],
        );
        let core: CoreError = err.into();
        match &core {
            CoreError::PermissionDenied { reason, source } => {
                assert!(
                    reason.contains("Accept the Custom Audience terms"),
                    "{reason}"
                );
                assert!(reason.contains("200/1870090"), "{reason}");
                assert!(source.is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
        let throttled = GraphError::from_body(
            400,
            GraphErrorBody {
                code: 80003,
                ..Default::default()
            },
            Some(Duration::from_secs(120)),
            &[],
        );
        let core: CoreError = throttled.into();
        assert_eq!(core.retry_after(), Some(Duration::from_secs(120)));
        assert!(api(190, None, 400).into_core().is_invalid_token());
    }

    #[test]
    fn messages_are_scrubbed_of_tokens() {
        let err = GraphError::from_body(
            400,
            GraphErrorBody {
                message: "bad token EAABsecret123 given".into(),
                code: 190,
                ..Default::default()
            },
            None,
            &["EAABsecret123"],
        );
        let printed = format!("{err} {err:?}");
        assert!(!printed.contains("EAABsecret123"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
