//! What can go wrong in a profile operation, classified for the caller (the HTTP API maps each
//! variant to one status and error code), and how it maps into the core's [`Error`].

use crate::error::Error;

/// Which upstream failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// The Narrative marketplace API.
    Marketplace,
    /// The Facebook Graph API.
    Facebook,
}

impl Upstream {
    /// `marketplace` or `facebook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Marketplace => "marketplace",
            Upstream::Facebook => "facebook",
        }
    }
}

/// Errors of the profile operations. Every message is safe to show to the customer: it never
/// contains a token (adapters keep secrets out of their errors, and the causes kept here are
/// only logged by the caller, never returned).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The marketplace refused the customer's bearer token (HTTP 401).
    #[error("the marketplace refused the bearer token")]
    Unauthorized {
        /// The marketplace client's error.
        #[source]
        source: Error,
    },

    /// The marketplace says the caller may not do this (HTTP 403).
    #[error("forbidden: {reason}")]
    Forbidden {
        /// The marketplace's reason.
        reason: String,
        /// The marketplace client's error.
        #[source]
        source: Error,
    },

    /// No such profile for this caller: missing, of another company, or not a profile id. One
    /// variant for all three, so that another company's profile is indistinguishable from a
    /// missing one.
    #[error("profile not found")]
    NotFound,

    /// A request field is missing or invalid.
    #[error("invalid {field}: {message}")]
    InvalidRequest {
        /// The field, e.g. `ad_account_id`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// The Facebook token is not valid (expired, revoked, of another app, or garbage).
    #[error("the facebook token is not valid: {reason}")]
    InvalidToken {
        /// What to do about it.
        reason: String,
    },

    /// The Facebook token lacks required scopes.
    #[error(
        "the facebook token lacks the required permissions {}: log in to facebook again and grant them",
        missing.join(", ")
    )]
    MissingScopes {
        /// The missing scopes, in [`REQUIRED_SCOPES`](crate::domain::REQUIRED_SCOPES) order.
        missing: Vec<String>,
    },

    /// The ad account cannot be used (not reachable with the token, no business, Custom
    /// Audience terms not accepted).
    #[error("ad account {ad_account}: {reason}")]
    AdAccount {
        /// The ad account id as given.
        ad_account: String,
        /// What is wrong and what to do about it.
        reason: String,
    },

    /// A re-authorisation token belongs to another Facebook user than the profile's.
    #[error(
        "the token belongs to another facebook user than the one who created this profile: log in to facebook as that user, or create a new profile"
    )]
    DifferentUser,

    /// The profile needs re-authorisation before this (e.g. enabling it).
    #[error("the profile's facebook token stopped working: re-authorise first ({reason})")]
    NeedsReauth {
        /// Why the profile needs re-authorisation.
        reason: String,
    },

    /// The profile is not in a state that allows this (e.g. enabling an archived profile).
    #[error("{message}")]
    InvalidState {
        /// What is wrong.
        message: String,
    },

    /// An upstream failed or refused in a way the customer cannot fix by changing the request
    /// (HTTP 502). `message` is the upstream's user-facing message where it helps.
    #[error("{} failed: {message}", service.as_str())]
    Upstream {
        /// Which upstream.
        service: Upstream,
        /// What to tell the customer.
        message: String,
        /// The client's error (logged, never returned).
        #[source]
        source: Error,
    },

    /// A bug or broken deployment (storage failure, key problem) (HTTP 500).
    #[error("internal failure: {what}")]
    Internal {
        /// What was being done.
        what: &'static str,
        /// The cause (logged, never returned).
        #[source]
        source: Error,
    },
}

impl ProfileError {
    /// The snake_case error code of operations.md.
    pub fn code(&self) -> &'static str {
        match self {
            ProfileError::Unauthorized { .. } => "unauthorized",
            ProfileError::Forbidden { .. } => "forbidden",
            ProfileError::NotFound => "not_found",
            ProfileError::InvalidRequest { .. } => "invalid_request",
            ProfileError::InvalidToken { .. } => "invalid_token",
            ProfileError::MissingScopes { .. } => "missing_scopes",
            ProfileError::AdAccount { .. } => "invalid_ad_account",
            ProfileError::DifferentUser => "different_facebook_user",
            ProfileError::NeedsReauth { .. } => "needs_reauth",
            ProfileError::InvalidState { .. } => "invalid_state",
            ProfileError::Upstream { .. } => "upstream_error",
            ProfileError::Internal { .. } => "internal_error",
        }
    }

    /// An error of a marketplace call made with the customer's token.
    pub(crate) fn marketplace(source: Error) -> ProfileError {
        match source {
            Error::InvalidToken { .. } => ProfileError::Unauthorized { source },
            Error::PermissionDenied { ref reason, .. } => ProfileError::Forbidden {
                reason: reason.clone(),
                source,
            },
            Error::Transient { .. } | Error::Throttled { .. } => ProfileError::Upstream {
                service: Upstream::Marketplace,
                message: "the marketplace is unavailable; try again shortly".to_owned(),
                source,
            },
            other => ProfileError::Upstream {
                service: Upstream::Marketplace,
                message: "the marketplace refused the request".to_owned(),
                source: other,
            },
        }
    }

    /// An error of a Graph API call made with a customer's Facebook token.
    pub(crate) fn facebook(source: Error) -> ProfileError {
        match source {
            Error::InvalidToken { .. } => ProfileError::InvalidToken {
                reason: "facebook refused it (expired or revoked): log in to facebook again"
                    .to_owned(),
            },
            Error::PermissionDenied { ref reason, .. } | Error::Rejected { ref reason, .. } => {
                ProfileError::Upstream {
                    service: Upstream::Facebook,
                    message: reason.clone(),
                    source,
                }
            }
            other => ProfileError::Upstream {
                service: Upstream::Facebook,
                message: "facebook is unavailable; try again shortly".to_owned(),
                source: other,
            },
        }
    }

    /// A storage or cipher failure.
    pub(crate) fn internal(what: &'static str) -> impl FnOnce(Error) -> ProfileError {
        move |source| ProfileError::Internal { what, source }
    }
}

impl From<ProfileError> for Error {
    /// For embedders that work with the core's error: refusals the customer can fix become
    /// [`Error::Rejected`] (with the message as reason), a missing profile
    /// [`Error::NotFound`], upstream and internal failures their original error.
    fn from(error: ProfileError) -> Self {
        match error {
            ProfileError::Unauthorized { source }
            | ProfileError::Upstream { source, .. }
            | ProfileError::Internal { source, .. } => source,
            ProfileError::Forbidden { reason, source } => Error::PermissionDenied {
                reason,
                source: Some(Box::new(source)),
            },
            ProfileError::NotFound => Error::NotFound {
                what: "profile".to_owned(),
            },
            other => Error::Rejected {
                reason: other.to_string(),
                source: None,
            },
        }
    }
}
